import { DynamicModule, Module } from '@nestjs/common';
import { AuditModule } from './audit/audit.module';
import { ConfigModule } from './config/config.module';
import type { AppConfig } from './config/config.schema';
import { HostsModule } from './hosts/hosts.module';
import { LifecycleProcessor } from './infra/queue/lifecycle.processor';
import { QueueModule } from './infra/queue/queue.module';
import { PrismaModule } from './infra/prisma/prisma.module';
import { RedisModule } from './infra/redis/redis.module';
import { SshModule } from './infra/ssh/ssh.module';
import { OperationsModule } from './operations/operations.module';
import { RolloutsModule } from './rollouts/rollouts.module';
import { TaskRunnerService } from './operations/task-runner.service';
import { DiscoveryService } from './units/discovery.service';
import { UnitsModule } from './units/units.module';
import { WebhookDeliveryModule } from './webhooks/webhooks.module';

/** The worker process: the same domain modules as the API, queue consumers instead of HTTP. */
@Module({})
export class WorkerModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        PrismaModule,
        RedisModule,
        QueueModule,
        SshModule,
        HostsModule,
        UnitsModule,
        OperationsModule,
        RolloutsModule,
        AuditModule,
        WebhookDeliveryModule,
      ],
      providers: [TaskRunnerService, DiscoveryService, LifecycleProcessor],
    };
  }
}

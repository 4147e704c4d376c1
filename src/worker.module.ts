import { DynamicModule, Module } from '@nestjs/common';
import { AuditModule } from './audit/audit.module';
import { ConfigModule } from './config/config.module';
import type { AppConfig } from './config/config.schema';
import { HostsModule } from './hosts/hosts.module';
import { JobsModule } from './jobs/jobs.module';
import { PrismaModule } from './infra/prisma/prisma.module';
import { RedisModule } from './infra/redis/redis.module';
import { OperationsModule } from './operations/operations.module';
import { RolloutsModule } from './rollouts/rollouts.module';
import { UnitsModule } from './units/units.module';

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
        HostsModule,
        UnitsModule,
        OperationsModule,
        RolloutsModule,
        AuditModule,
        JobsModule,
      ],
    };
  }
}

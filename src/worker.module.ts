import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule } from './config/config.module';
import type { AppConfig } from './config/config.schema';
import { LifecycleProcessor } from './infra/queue/lifecycle.processor';
import { QueueModule } from './infra/queue/queue.module';
import { PrismaModule } from './infra/prisma/prisma.module';

/** The worker process: the same domain modules as the API, BullMQ processors instead of HTTP. */
@Module({})
export class WorkerModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [ConfigModule.forRoot(config), PrismaModule, QueueModule],
      providers: [LifecycleProcessor],
    };
  }
}

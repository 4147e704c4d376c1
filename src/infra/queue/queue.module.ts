import { QueueName } from '@drover/protocol';
import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { JobProducer } from './job-producer';

/** BullMQ connection, the queues (lanes), and the one producer; shared by the API and the worker. */
@Module({
  imports: [
    BullModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => ({
        connection: { url: config.REDIS_URL, maxRetriesPerRequest: null },
        prefix: config.QUEUE_PREFIX,
      }),
    }),
    BullModule.registerQueue({ name: QueueName.Lifecycle }, { name: QueueName.Background }),
  ],
  providers: [JobProducer],
  exports: [BullModule, JobProducer],
})
export class QueueModule {}

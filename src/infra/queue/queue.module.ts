import { QueueName } from '@drover/protocol';
import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import type { ConnectionOptions } from 'bullmq';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { BULLMQ_CONNECTION } from '../redis/redis.token';
import { JobProducer } from './job-producer';
import { LanePresence } from './lane-presence';

/** BullMQ connection, the queues (lanes), the one producer and who consumes each lane; shared by the API and the worker. */
@Module({
  imports: [
    BullModule.forRootAsync({
      inject: [APP_CONFIG, BULLMQ_CONNECTION],
      useFactory: (config: AppConfig, connection: ConnectionOptions) => ({
        connection,
        prefix: config.QUEUE_PREFIX,
      }),
    }),
    BullModule.registerQueue({ name: QueueName.Lifecycle }, { name: QueueName.Background }),
  ],
  providers: [JobProducer, LanePresence],
  exports: [BullModule, JobProducer, LanePresence],
})
export class QueueModule {}

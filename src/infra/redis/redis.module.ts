import { Global, Inject, Logger, Module, OnApplicationShutdown, OnModuleDestroy } from '@nestjs/common';
import type { ConnectionOptions } from 'bullmq';
import { Cluster } from 'ioredis';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { AgentWake } from './agent-wake';
import { bullmqConnection, createRedisClient, type RedisClient } from './redis-connection';
import { BULLMQ_CONNECTION, REDIS } from './redis.token';

export { BULLMQ_CONNECTION, REDIS };

/**
 * The Redis clients of a process, all from one factory: a shared client for health checks and
 * small commands, and the connection BullMQ's queues and workers use.
 */
@Global()
@Module({
  providers: [
    {
      provide: REDIS,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => {
        const redis = createRedisClient(config, {
          lazyConnect: true,
          maxRetriesPerRequest: 1,
          enableOfflineQueue: true,
        });
        // ioredis reconnects on its own; without a listener it would print every failed attempt.
        const logger = new Logger('Redis');
        redis.on('error', (error: Error) => logger.warn(`redis connection: ${error.message}`));
        return redis;
      },
    },
    { provide: BULLMQ_CONNECTION, inject: [APP_CONFIG], useFactory: bullmqConnection },
    AgentWake,
  ],
  exports: [REDIS, BULLMQ_CONNECTION, AgentWake],
})
export class RedisModule implements OnModuleDestroy, OnApplicationShutdown {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(BULLMQ_CONNECTION) private readonly bullmq: ConnectionOptions,
  ) {}

  onModuleDestroy(): void {
    this.redis.disconnect();
  }

  /**
   * A shared Cluster client BullMQ was given is not closed by its queues; workers closed theirs when
   * their modules were destroyed, before this.
   */
  onApplicationShutdown(): void {
    if (this.bullmq instanceof Cluster) this.bullmq.disconnect();
  }
}

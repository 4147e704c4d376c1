import { Global, Inject, Logger, Module, OnApplicationShutdown, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { ConnectionOptions } from 'bullmq';
import { Cluster } from 'ioredis';
import { waitAtMost } from '../../common/concurrency/wait-at-most';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { AgentWake } from './agent-wake';
import { bullmqConnection, createRedisClient, type RedisClient } from './redis-connection';
import { BULLMQ_CONNECTION, REDIS } from './redis.token';

export { BULLMQ_CONNECTION, REDIS };

/** How long a start waits for the shared client to connect before it goes on without it. */
const CONNECT_AT_START_WAIT_MS = 5_000;

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
export class RedisModule implements OnModuleInit, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger('Redis');

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(BULLMQ_CONNECTION) private readonly bullmq: ConnectionOptions,
  ) {}

  /**
   * Connects the shared client now rather than on its first command, which for a worker is its first
   * task's unit lease (at module init: this global module initialises before the consumers start).
   * Best effort, waited for a few seconds at most: a Redis that is away is the readiness probe's
   * news, and the client keeps trying on its own.
   */
  async onModuleInit(): Promise<void> {
    if (this.redis.status !== 'wait') return;
    const connected = this.redis
      .connect()
      .catch((error: unknown) => this.logger.warn({ err: error }, 'could not connect to Redis at start'));
    await waitAtMost(connected, CONNECT_AT_START_WAIT_MS);
  }

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

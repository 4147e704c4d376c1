import { QueueName } from '@drover/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import type { RedisClient } from '../redis/redis-connection';
import { REDIS } from '../redis/redis.token';

// Scores are "counts until", in Redis's own clock: workers on machines whose clocks disagree still
// count the same, and a reader needs no setting of the writers'.
const NOW_MS = `
local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)`;
const ANNOUNCE = `${NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs)
redis.call('ZADD', KEYS[1], nowMs + tonumber(ARGV[2]), ARGV[1])
-- The key outlives its longest-valid member: a worker announcing for less never shortens it.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`;
const COUNT = `${NOW_MS}
return redis.call('ZCOUNT', KEYS[1], nowMs, '+inf')`;

/** A worker that has not said it consumes a lane for this many maintenance intervals no longer counts. */
const MISSED_ANNOUNCEMENTS = 3;

/**
 * Which lanes have a worker. Each worker process says, per lane it consumes, that it does (at start
 * and every RECONCILE_INTERVAL_MS), and withdraws when it stops; one that dies silently stops
 * counting after a few intervals. A lane nobody consumes holds its jobs forever (WORKER_LANES lets
 * an operator leave one out by mistake), so the readiness probe and the workers tell.
 */
@Injectable()
export class LanePresence {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async announce(worker: string, lanes: readonly QueueName[]): Promise<void> {
    const validMs = String(MISSED_ANNOUNCEMENTS * this.config.RECONCILE_INTERVAL_MS);
    for (const lane of lanes) await this.redis.eval(ANNOUNCE, 1, this.key(lane), worker, validMs);
  }

  async withdraw(worker: string, lanes: readonly QueueName[]): Promise<void> {
    for (const lane of lanes) await this.redis.zrem(this.key(lane), worker);
  }

  /** Worker processes consuming each lane now. */
  async workers(): Promise<Record<QueueName, number>> {
    const counts = {} as Record<QueueName, number>;
    for (const lane of Object.values(QueueName)) {
      counts[lane] = Number(await this.redis.eval(COUNT, 1, this.key(lane)));
    }
    return counts;
  }

  private key(lane: QueueName): string {
    return `${this.config.QUEUE_PREFIX}:lane-workers:${lane}`;
  }
}

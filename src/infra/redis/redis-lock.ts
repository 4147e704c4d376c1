import type { RedisClient } from './redis-connection';

const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * A lease on a key shared by every worker: SET NX with an expiry, renewed while held. If the
 * holder dies, the lease lapses after `ttlMs`, so a crashed worker never blocks a unit forever.
 */
export class RedisLease {
  private renewal: NodeJS.Timeout | undefined;

  private constructor(
    private readonly redis: RedisClient,
    readonly key: string,
    private readonly owner: string,
    private readonly ttlMs: number,
  ) {}

  /** Takes the lease, or returns null when someone else holds it. Re-entrant for the same owner. */
  static async acquire(redis: RedisClient, key: string, owner: string, ttlMs: number): Promise<RedisLease | null> {
    const taken = await redis.set(key, owner, 'PX', ttlMs, 'NX');
    if (taken !== 'OK') {
      const holder = await redis.get(key);
      if (holder !== owner) return null;
      await redis.pexpire(key, ttlMs);
    }
    const lease = new RedisLease(redis, key, owner, ttlMs);
    lease.renewal = setInterval(() => void lease.renew(), Math.max(500, Math.floor(ttlMs / 3)));
    lease.renewal.unref();
    return lease;
  }

  /** Who holds a key now (for error messages), or null. */
  static holder(redis: RedisClient, key: string): Promise<string | null> {
    return redis.get(key);
  }

  private async renew(): Promise<void> {
    // A failed renewal is retried on the next tick; if Redis stays away the lease lapses, which is
    // the same outcome as this worker dying.
    await this.redis.eval(RENEW, 1, this.key, this.owner, String(this.ttlMs)).catch(() => 0);
  }

  async release(): Promise<void> {
    clearInterval(this.renewal);
    await this.redis.eval(RELEASE, 1, this.key, this.owner);
  }
}

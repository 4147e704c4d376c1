import type { RedisClient } from '../infra/redis/redis-connection';
import { DomainError } from '../common/errors/domain-errors';

const WINDOW_MS = 60_000;

/**
 * One counter per token whose window opens at its first request and is closed by Redis' own expiry,
 * so API replicas share the count without trusting each other's clocks. Atomic, so concurrent
 * requests can neither lose a count nor leave a counter without an expiry (which would block the
 * token for good); a counter found without one gets it back.
 */
const CONSUME = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}`;

/**
 * The Redis key counting a token's requests in its current window: under drover's prefix like all
 * its keys (QUEUE_PREFIX), which a Redis ACL limiting drover to its own keys relies on.
 */
export function rateLimitKey(keyPrefix: string, tokenId: string): string {
  return `${keyPrefix}:rate-limit:token:${tokenId}`;
}

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  /** Requests left in the current window. */
  remaining: number;
  /** Whole seconds until the window closes (at least 1): what Retry-After says. */
  retryAfterSeconds: number;
}

/** Fixed-window request counter per token, shared by every API replica through Redis. */
export class TokenRateLimiter {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyPrefix: string,
    readonly limit: number,
    private readonly windowMs = WINDOW_MS,
  ) {}

  /** Counts one request of the token and says whether it is within the limit. */
  async consume(tokenId: string): Promise<RateLimitDecision> {
    const reply = (await this.redis.eval(CONSUME, 1, rateLimitKey(this.keyPrefix, tokenId), String(this.windowMs))) as [
      number,
      number,
    ];
    const [count, ttlMs] = reply;
    return {
      allowed: count <= this.limit,
      limit: this.limit,
      remaining: Math.max(0, this.limit - count),
      retryAfterSeconds: Math.max(1, Math.ceil(ttlMs / 1000)),
    };
  }
}

export class TooManyRequestsError extends DomainError {
  readonly status = 429;
  readonly code = 'rate_limited';
  readonly title = 'Too many requests';

  constructor(
    limit: number,
    readonly retryAfterSeconds: number,
  ) {
    super(`this token made more than ${limit} requests in a minute; retry after ${retryAfterSeconds} s`);
  }
}

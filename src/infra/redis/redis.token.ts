/** The shared ioredis connection's injection token (RedisModule provides it). */
export const REDIS = Symbol('REDIS');

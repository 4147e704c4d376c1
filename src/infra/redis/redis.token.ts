/** The shared Redis client's injection token (RedisModule provides it). */
export const REDIS = Symbol('REDIS');

/** BullMQ's connection (options, or a shared Cluster client) for every queue and worker of the process. */
export const BULLMQ_CONNECTION = Symbol('BULLMQ_CONNECTION');

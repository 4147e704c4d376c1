import { readFileSync } from 'node:fs';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import type { ConnectionOptions } from 'bullmq';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { AppConfig } from '../../config/config.schema';

/** One Redis server (given directly or named by sentinels) or a Cluster: every client drover opens. */
export type RedisClient = Redis | Cluster;

type RedisSettings = Pick<
  AppConfig,
  | 'REDIS_URL'
  | 'REDIS_SENTINELS'
  | 'REDIS_SENTINEL_MASTER'
  | 'REDIS_CLUSTER_NODES'
  | 'REDIS_PASSWORD'
  | 'REDIS_USERNAME'
  | 'REDIS_SENTINEL_PASSWORD'
  | 'REDIS_TLS'
  | 'REDIS_TLS_CA_FILE'
>;

/** TLS options of every Redis and sentinel connection: the configured CA, else the system's. */
function tlsOptions(config: RedisSettings): TlsOptions {
  const file = config.REDIS_TLS_CA_FILE;
  if (file === undefined) return {};
  try {
    return { ca: readFileSync(file) };
  } catch (error) {
    throw new Error(`REDIS_TLS_CA_FILE: cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** For REDIS_URL: TLS comes with rediss://, and only a configured CA needs saying. */
function urlTlsOptions(config: RedisSettings): Pick<RedisOptions, 'tls'> {
  return config.REDIS_TLS_CA_FILE === undefined ? {} : { tls: tlsOptions(config) };
}

/** What a connection needs beyond the address: its authentication and TLS. */
function serverOptions(config: RedisSettings): Pick<RedisOptions, 'username' | 'password' | 'tls'> {
  return {
    ...(config.REDIS_USERNAME === undefined ? {} : { username: config.REDIS_USERNAME }),
    ...(config.REDIS_PASSWORD === undefined ? {} : { password: config.REDIS_PASSWORD }),
    ...(config.REDIS_TLS ? { tls: tlsOptions(config) } : {}),
  };
}

/**
 * Options for whatever server the sentinels name as master now. A failover makes the old master a
 * replica: its clients are disconnected by the sentinels, and a write that still reaches it fails
 * with READONLY, which reconnects (to the new master) and sends the command again.
 */
function sentinelOptions(config: RedisSettings, sentinels: NonNullable<RedisSettings['REDIS_SENTINELS']>) {
  return {
    ...serverOptions(config),
    sentinels,
    name: config.REDIS_SENTINEL_MASTER,
    ...(config.REDIS_SENTINEL_PASSWORD === undefined ? {} : { sentinelPassword: config.REDIS_SENTINEL_PASSWORD }),
    // TLS both to the sentinels and to the master they name.
    ...(config.REDIS_TLS ? { sentinelTLS: tlsOptions(config), enableTLSForSentinelMode: true } : {}),
    // Not ioredis's failoverDetector: its subscriptions to the sentinels can outlive disconnect() (they
    // kept a test process alive), and the sentinels already disconnect the old master's clients.
    reconnectOnError: (error: Error): 2 | false => (error.message.startsWith('READONLY') ? 2 : false),
  } satisfies RedisOptions;
}

/**
 * A client of the configured Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES) with the
 * given behaviour options; the only place drover constructs one (`duplicate()` copies of it aside).
 */
export function createRedisClient(config: RedisSettings, options: RedisOptions = {}): RedisClient {
  if (config.REDIS_CLUSTER_NODES !== undefined) {
    return new Cluster(config.REDIS_CLUSTER_NODES, {
      ...(options.lazyConnect === undefined ? {} : { lazyConnect: options.lazyConnect }),
      ...(options.enableOfflineQueue === undefined ? {} : { enableOfflineQueue: options.enableOfflineQueue }),
      redisOptions: { ...serverOptions(config), ...options },
    });
  }
  if (config.REDIS_SENTINELS !== undefined) {
    return new Redis({ ...sentinelOptions(config, config.REDIS_SENTINELS), ...options });
  }
  if (config.REDIS_URL === undefined) throw new Error('no Redis configured (the config schema requires one)');
  return new Redis(config.REDIS_URL, { ...urlTlsOptions(config), ...options });
}

/** A second client to the same Redis (for a subscriber, which can do nothing else). */
export function duplicateRedisClient(client: RedisClient): RedisClient {
  // Both have duplicate(), with signatures TypeScript cannot call on the union: narrowed first.
  return client instanceof Cluster ? client.duplicate() : client.duplicate();
}

/**
 * The connection BullMQ's queues and workers are given. For one server or sentinels these are
 * options, and each queue and worker opens (and closes) its own connections. BullMQ takes a Cluster
 * only as a client: one is made here, shared (workers duplicate it for their blocking reads), and
 * must be closed by whoever asked for it once its queues and workers are closed.
 */
export function bullmqConnection(config: RedisSettings): ConnectionOptions {
  // BullMQ's workers block on Redis: a command must wait for a reconnect rather than fail.
  const blocking = { maxRetriesPerRequest: null };
  // Lazy: BullMQ connects it when a queue or worker first needs it.
  if (config.REDIS_CLUSTER_NODES !== undefined) return createRedisClient(config, { ...blocking, lazyConnect: true });
  if (config.REDIS_SENTINELS !== undefined) return { ...sentinelOptions(config, config.REDIS_SENTINELS), ...blocking };
  return { url: config.REDIS_URL, ...urlTlsOptions(config), ...blocking };
}

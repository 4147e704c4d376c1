import { QueueName } from '@drover/protocol';
import { z } from 'zod';

const booleanString = z.enum(['true', 'false']).transform((value) => value === 'true');

/** A whole number written in decimal digits only ('' or ' ' is not 0). */
const integerString = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, { error: 'must be a whole number' })
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

export interface RedisNode {
  host: string;
  port: number;
}

/** `host:port,host:port` (IPv6 in brackets: `[::1]:26379`) as a list of at least one node. */
const redisNodeList = z.string().transform((text, context): RedisNode[] => {
  const nodes: RedisNode[] = [];
  for (const entry of text.split(',').map((part) => part.trim())) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) {
      context.addIssue({
        code: 'custom',
        message: `must be host:port[,host:port...] (${JSON.stringify(entry)} is not)`,
      });
      return z.NEVER;
    }
    nodes.push({ host: match[1]!.replace(/^\[|\]$/g, ''), port });
  }
  return nodes;
});

/** A comma-separated list of lane names, at least one, each once. */
const workerLanes = z.string().transform((text, context): QueueName[] => {
  const names = Object.values(QueueName) as string[];
  const lanes = text.split(',').map((part) => part.trim());
  for (const lane of lanes) {
    if (!names.includes(lane)) {
      context.addIssue({
        code: 'custom',
        message: `must name lanes among ${names.join(', ')} (${JSON.stringify(lane)} is not one)`,
      });
      return z.NEVER;
    }
  }
  if (new Set(lanes).size !== lanes.length) {
    context.addIssue({ code: 'custom', message: 'names a lane twice' });
    return z.NEVER;
  }
  return lanes as QueueName[];
});

/**
 * BullMQ keeps a queue's keys together only when they hash to one Cluster slot: a `{hash tag}` in the
 * prefix does that. A prefix without one is wrapped whole ('drover' becomes '{drover}').
 */
function withHashTag(prefix: string): string {
  return /\{[^{}]+\}/.test(prefix) ? prefix : `{${prefix}}`;
}

/** The whole environment drover reads. Parsed once at start-up; nothing else reads process.env. */
const environmentSchema = z.object({
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgresql:// URL' }),
  /**
   * Where Redis is: exactly one of REDIS_URL (one server), REDIS_SENTINELS with REDIS_SENTINEL_MASTER
   * (the master a Sentinel set names, followed through failovers) or REDIS_CLUSTER_NODES (a Cluster).
   */
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// URL' }).optional(),
  /** Sentinels to ask for the current master, e.g. `sentinel-1:26379,sentinel-2:26379,sentinel-3:26379`. */
  REDIS_SENTINELS: redisNodeList.optional(),
  /** The master's name in the sentinels' `sentinel monitor NAME ...`. */
  REDIS_SENTINEL_MASTER: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, { error: 'must be a Sentinel master name ([A-Za-z0-9._-])' })
    .optional(),
  /** Some nodes of a Redis Cluster (the rest are discovered), e.g. `redis-1:6379,redis-2:6379`. */
  REDIS_CLUSTER_NODES: redisNodeList.optional(),
  /** Password (requirepass / ACL) of the Redis servers, for REDIS_SENTINELS and REDIS_CLUSTER_NODES. */
  REDIS_PASSWORD: z.string().min(1).optional(),
  /** ACL user of the Redis servers, with REDIS_PASSWORD. */
  REDIS_USERNAME: z.string().min(1).optional(),
  /** Password of the sentinels themselves, when they have one. */
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  /** TLS to the Redis servers (and sentinels) of REDIS_SENTINELS or REDIS_CLUSTER_NODES (rediss:// says it for REDIS_URL). */
  REDIS_TLS: booleanString.default(false),
  /** PEM file of the CA (or CAs) trusted for Redis's TLS instead of the system's, e.g. a private CA. */
  REDIS_TLS_CA_FILE: z.string().regex(/^\//, { error: 'must be an absolute path' }).optional(),
  /** PostgreSQL connections one process keeps at most (its pool); requests wait up to 2 s for one. */
  DATABASE_POOL_SIZE: integerString(1, 1_000).default(10),
  /**
   * PostgreSQL connections one process opens when it starts and keeps open while idle (default 2, at
   * most DATABASE_POOL_SIZE): the first request or task after a start or a quiet spell then finds a
   * connection ready instead of opening one while a burst loads the database.
   */
  DATABASE_POOL_MIN: integerString(0, 1_000).optional(),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: integerString(0, 65535).default(8080),
  /**
   * Connections the kernel queues for the API before it accepts them (Node's own default is 511):
   * thousands of agents reconnecting at once overflowed that. Linux caps it at net.core.somaxconn.
   */
  HTTP_LISTEN_BACKLOG: integerString(1, 1_000_000).default(4_096),
  /**
   * How long an idle client connection is kept open (Node's own default is 5 s). Agents send a
   * heartbeat every 15 s and, during a task, requests beside their held poll: with 5 s each of
   * those opened a new connection (a TLS handshake on both ends in production). Longer than a load
   * balancer's usual idle timeout (60 s), so that the balancer, not the API, closes first.
   */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: integerString(1_000, 600_000).default(65_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Apply pending SQL migrations when the API starts (safe with many replicas: advisory lock). */
  MIGRATE_ON_START: booleanString.default(true),
  /** Upper bound for a graceful shutdown before the process exits anyway. */
  SHUTDOWN_TIMEOUT_MS: integerString(100, 600_000).default(10_000),
  /** Private key drover's SSH executor authenticates with (OpenSSH format, e.g. ed25519). */
  SSH_PRIVATE_KEY_PATH: z.string().min(1).default('/etc/drover/ssh/id_ed25519'),
  SSH_CONNECT_TIMEOUT_MS: integerString(100, 300_000).default(10_000),
  /** Default upper bound for one command on a host; an operation may ask for another. */
  SSH_COMMAND_TIMEOUT_MS: integerString(100, 3_600_000).default(120_000),
  SSH_KEEPALIVE_INTERVAL_MS: integerString(1_000, 300_000).default(10_000),
  /** Open connections kept per worker process (idle ones beyond this are closed, oldest first). */
  SSH_POOL_MAX_CONNECTIONS: integerString(1, 100_000).default(1_000),
  /** Concurrent commands on one pooled connection (OpenSSH's MaxSessions defaults to 10). */
  SSH_MAX_SESSIONS_PER_HOST: integerString(1, 64).default(8),
  SSH_IDLE_TIMEOUT_MS: integerString(1_000, 3_600_000).default(300_000),
  /**
   * SSH handshakes one worker process runs at once; more connections wait for a turn, and their
   * SSH_CONNECT_TIMEOUT_MS starts with it. Key exchanges are CPU-bound on both ends: beyond a few
   * dozen at once they only slow each other down.
   */
  SSH_MAX_HANDSHAKES: integerString(1, 10_000).default(32),
  /** Jobs one worker process runs at once (tasks mostly wait on hosts, so this can be high). */
  WORKER_CONCURRENCY: integerString(1, 1_000).default(50),
  /** Background jobs (discoveries) one worker process runs at once, apart from the tasks' lane. */
  DISCOVERY_CONCURRENCY: integerString(1, 1_000).default(8),
  /**
   * The lanes this worker process consumes: `lifecycle` (tasks, rollout steps, the reconciler) and
   * `background` (discoveries, the discovery sweep, webhook deliveries). Both by default. A process
   * of its own per lane keeps discoveries off the event loop tasks are started on; some worker must
   * consume each lane, or its jobs wait.
   */
  WORKER_LANES: workerLanes.default(() => Object.values(QueueName)),
  /**
   * How long a worker's claim on a job lasts without renewal. A worker that dies (even SIGKILL)
   * loses its jobs to another worker after about this long.
   */
  JOB_LOCK_DURATION_MS: integerString(1_000, 600_000).default(30_000),
  /** How often every host's units are rediscovered; 0 turns periodic discovery off. */
  DISCOVERY_INTERVAL_MS: integerString(0, 86_400_000).default(300_000),
  /**
   * After actions that can change other units' files (enable, disable, daemon-reload), a host's
   * units are all listed again at most this often; in between, and after any other action, only
   * the units whose state changed are. 0: a full listing after every such action.
   */
  FULL_DISCOVERY_MIN_GAP_MS: integerString(0, 86_400_000).default(60_000),
  /** How often unfinished operations are checked for tasks that lost their queue job. */
  RECONCILE_INTERVAL_MS: integerString(1_000, 3_600_000).default(15_000),
  /** Requests per minute one API token may make (0: no limit). */
  TOKEN_RATE_LIMIT_PER_MINUTE: integerString(0, 1_000_000).default(600),
  /**
   * Largest JSON body a route accepts, in bytes. Bodies are read only after the token is checked,
   * and small by default: every route's input is a few KB except the bulk host upsert.
   */
  JSON_BODY_LIMIT_BYTES: integerString(1_024, 1_073_741_824).default(262_144),
  /** Largest JSON body of the bulk host upsert (10,000 hosts are a few MB). */
  BULK_JSON_BODY_LIMIT_BYTES: integerString(1_024, 1_073_741_824).default(16_777_216),
  /**
   * Failed authentications are audited once per source address, token prefix and reason in each
   * window of this length, plus one event with the count of the rest when the window ends.
   */
  AUTH_FAILURE_AUDIT_WINDOW_MS: integerString(1_000, 86_400_000).default(60_000),
  /** Rollout event streams (GET /v1/rollouts/{id}/events) one token may hold open per API process. */
  ROLLOUT_EVENT_STREAMS_PER_TOKEN: integerString(1, 10_000).default(20),
  /** Attempts of one webhook delivery before it is marked failed (it can then be redelivered by hand). */
  WEBHOOK_MAX_ATTEMPTS: integerString(1, 100).default(8),
  /** Wait before a delivery's first retry; each further retry waits twice as long as the last. */
  WEBHOOK_RETRY_BASE_MS: integerString(10, 3_600_000).default(10_000),
  /** The longest wait between two attempts of a delivery. */
  WEBHOOK_RETRY_MAX_MS: integerString(10, 86_400_000).default(3_600_000),
  /** How long one delivery attempt may take (connect, send, response status) before it counts as failed. */
  WEBHOOK_TIMEOUT_MS: integerString(100, 120_000).default(10_000),
  /**
   * Webhook URLs resolving to loopback addresses (127.0.0.0/8, ::1) are refused unless this is true
   * (tests, or a receiver on the worker's own machine). Link-local addresses (169.254.0.0/16 with the
   * cloud metadata services, fe80::/10), unspecified, multicast and broadcast addresses always are.
   */
  WEBHOOK_ALLOW_LOOPBACK: booleanString.default(false),
  /** Whether webhook URLs may resolve to private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7). */
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: booleanString.default(true),
  /** How long an agent's credential is valid; agents obtain a new one at half of it. */
  AGENT_CREDENTIAL_TTL_MS: integerString(10_000, 86_400_000).default(900_000),
  /** An agent not heard of for this long is shown offline. */
  AGENT_OFFLINE_AFTER_MS: integerString(1_000, 86_400_000).default(60_000),
  /** How long an agent's claim of a running task holds without renewal (the agent renews it every third of this). */
  AGENT_TASK_LEASE_MS: integerString(1_000, 600_000).default(30_000),
  /**
   * Agents' unit reports one API process stores at once (default: a quarter of DATABASE_POOL_SIZE,
   * at least 1); the others wait for a turn, so that a burst of listings (agents starting, a fleet
   * enrolling) never takes every database connection from operators' requests and agents' claims.
   */
  AGENT_REPORT_CONCURRENCY: integerString(1, 1_000).optional(),
  /** The longest an agent's request for its next command is held open (under a proxy's idle timeout). */
  AGENT_POLL_MAX_WAIT_MS: integerString(0, 120_000).default(25_000),
  /** Where the API finds the agent's bundle and packaging files (built by `npm run build`). */
  AGENT_BUNDLE_DIR: z.string().min(1).default('dist/agent'),
  /**
   * Prefix of every BullMQ key, so several drover installations can share one Redis. With
   * REDIS_CLUSTER_NODES it gets braces (a hash tag) unless it has some: 'drover' is used as '{drover}'.
   */
  QUEUE_PREFIX: z
    .string()
    .max(64)
    .regex(/^[a-zA-Z0-9:_-]*(\{[a-zA-Z0-9:_-]+\})?[a-zA-Z0-9:_-]*$/, {
      error: 'must be [a-zA-Z0-9:_-], with at most one {hash tag}',
    })
    .min(1)
    .default('drover'),
});

type Environment = z.output<typeof environmentSchema>;

/** Exactly one way to Redis, complete; checked even when other variables are wrong, to name them all. */
function checkRedisTarget(env: Environment, context: z.RefinementCtx): void {
  const given = (['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const).filter(
    (name) => env[name] !== undefined,
  );
  const problem = (path: string, message: string) => context.addIssue({ code: 'custom', path: [path], message });
  if (given.length === 0) {
    problem('REDIS_URL', 'is required (or REDIS_SENTINELS with REDIS_SENTINEL_MASTER, or REDIS_CLUSTER_NODES)');
  } else if (given.length > 1) {
    problem(given[1]!, `cannot be combined with ${given[0]!}: set one way to Redis`);
  }
  if (env.REDIS_SENTINELS !== undefined && env.REDIS_SENTINEL_MASTER === undefined) {
    problem('REDIS_SENTINEL_MASTER', 'is required with REDIS_SENTINELS');
  }
  if (env.REDIS_SENTINEL_MASTER !== undefined && env.REDIS_SENTINELS === undefined) {
    problem('REDIS_SENTINEL_MASTER', 'is only meaningful with REDIS_SENTINELS');
  }
  if (env.REDIS_SENTINEL_PASSWORD !== undefined && env.REDIS_SENTINELS === undefined) {
    problem('REDIS_SENTINEL_PASSWORD', 'is only meaningful with REDIS_SENTINELS');
  }
  if (env.REDIS_TLS_CA_FILE !== undefined) {
    const tls = env.REDIS_URL === undefined ? env.REDIS_TLS : env.REDIS_URL.startsWith('rediss://');
    if (!tls) problem('REDIS_TLS_CA_FILE', 'needs TLS: REDIS_TLS=true, or a rediss:// REDIS_URL');
  }
  if (env.REDIS_URL !== undefined) {
    for (const name of ['REDIS_PASSWORD', 'REDIS_USERNAME', 'REDIS_TLS'] as const) {
      if (name === 'REDIS_TLS' ? env.REDIS_TLS : env[name] !== undefined) {
        problem(name, 'does not apply to REDIS_URL (put it in the URL: rediss://user:password@host:port)');
      }
    }
  }
}

function checkPoolBounds(env: Environment, context: z.RefinementCtx): void {
  if (env.DATABASE_POOL_MIN !== undefined && env.DATABASE_POOL_MIN > env.DATABASE_POOL_SIZE) {
    context.addIssue({
      code: 'custom',
      path: ['DATABASE_POOL_MIN'],
      message: `must be at most DATABASE_POOL_SIZE (${env.DATABASE_POOL_SIZE})`,
    });
  }
}

export const configSchema = environmentSchema
  .superRefine(checkRedisTarget, { when: () => true })
  .superRefine(checkPoolBounds)
  .transform((env) => ({
    ...env,
    QUEUE_PREFIX: env.REDIS_CLUSTER_NODES === undefined ? env.QUEUE_PREFIX : withHashTag(env.QUEUE_PREFIX),
    DATABASE_POOL_MIN: env.DATABASE_POOL_MIN ?? Math.min(2, env.DATABASE_POOL_SIZE),
    AGENT_REPORT_CONCURRENCY: env.AGENT_REPORT_CONCURRENCY ?? Math.max(1, Math.floor(env.DATABASE_POOL_SIZE / 4)),
  }));

export type AppConfig = z.output<typeof configSchema>;

export class ConfigError extends Error {}

/**
 * Parses an environment into the typed config. Throws one ConfigError whose message is a single
 * line naming each bad variable, so the entrypoint can print it and stop.
 */
export function parseConfig(env: Record<string, string | undefined>): AppConfig {
  const result = configSchema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const variable = issue.path.join('.');
    // A custom issue says itself what is missing or conflicting; a variable's own check fails on absence.
    const message = env[variable] === undefined && issue.code !== 'custom' ? 'is required' : issue.message;
    return `${variable} ${message}`;
  });
  throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
}

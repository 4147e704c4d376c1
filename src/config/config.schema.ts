import { z } from 'zod';

const booleanString = z.enum(['true', 'false']).transform((value) => value === 'true');

/** A whole number written in decimal digits only ('' or ' ' is not 0). */
const integerString = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, { error: 'must be a whole number' })
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** The whole environment drover reads. Parsed once at start-up; nothing else reads process.env. */
export const configSchema = z.object({
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgresql:// URL' }),
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// URL' }),
  /** PostgreSQL connections one process keeps at most (its pool); requests wait up to 2 s for one. */
  DATABASE_POOL_SIZE: integerString(1, 1_000).default(10),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: integerString(0, 65535).default(8080),
  /**
   * Connections the kernel queues for the API before it accepts them (Node's own default is 511):
   * thousands of agents reconnecting at once overflowed that. Linux caps it at net.core.somaxconn.
   */
  HTTP_LISTEN_BACKLOG: integerString(1, 1_000_000).default(4_096),
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
  /** Jobs one worker process runs at once (tasks mostly wait on hosts, so this can be high). */
  WORKER_CONCURRENCY: integerString(1, 1_000).default(50),
  /** Background jobs (discoveries) one worker process runs at once, apart from the tasks' lane. */
  DISCOVERY_CONCURRENCY: integerString(1, 1_000).default(8),
  /**
   * How long a worker's claim on a job lasts without renewal. A worker that dies (even SIGKILL)
   * loses its jobs to another worker after about this long.
   */
  JOB_LOCK_DURATION_MS: integerString(1_000, 600_000).default(30_000),
  /** How often every host's units are rediscovered; 0 turns periodic discovery off. */
  DISCOVERY_INTERVAL_MS: integerString(0, 86_400_000).default(300_000),
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
  /** The longest an agent's request for its next command is held open (under a proxy's idle timeout). */
  AGENT_POLL_MAX_WAIT_MS: integerString(0, 120_000).default(25_000),
  /** Where the API finds the agent's bundle and packaging files (built by `npm run build`). */
  AGENT_BUNDLE_DIR: z.string().min(1).default('dist/agent'),
  /** Prefix of every BullMQ key, so several drover installations can share one Redis. */
  QUEUE_PREFIX: z
    .string()
    .regex(/^[a-zA-Z0-9:_-]{1,64}$/)
    .default('drover'),
});

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
    const message = env[variable] === undefined ? 'is required' : issue.message;
    return `${variable} ${message}`;
  });
  throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
}

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigError, parseConfig } from './config.schema';

const required = { DATABASE_URL: 'postgresql://drover:secret@db:5432/drover', REDIS_URL: 'redis://redis:6379' };

/** The ConfigError message parseConfig throws for `env`. */
function configErrorMessage(env: Record<string, string | undefined>): string {
  try {
    parseConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    assert.doesNotMatch(error.message, /[\r\n]/, 'message must be a single line');
    return error.message;
  }
  assert.fail(`expected ${JSON.stringify(env)} to be rejected`);
}

describe('parseConfig', () => {
  it('applies the defaults when only the required variables are set', () => {
    assert.deepEqual(parseConfig(required), {
      ...required,
      REDIS_TLS: false,
      DATABASE_POOL_SIZE: 10,
      DATABASE_POOL_MIN: 2,
      HOST: '127.0.0.1',
      PORT: 8080,
      HTTP_LISTEN_BACKLOG: 4_096,
      HTTP_KEEP_ALIVE_TIMEOUT_MS: 65_000,
      LOG_LEVEL: 'info',
      MIGRATE_ON_START: true,
      SHUTDOWN_TIMEOUT_MS: 10_000,
      SSH_PRIVATE_KEY_PATH: '/etc/drover/ssh/id_ed25519',
      SSH_CONNECT_TIMEOUT_MS: 10_000,
      SSH_COMMAND_TIMEOUT_MS: 120_000,
      SSH_KEEPALIVE_INTERVAL_MS: 10_000,
      SSH_POOL_MAX_CONNECTIONS: 1_000,
      SSH_MAX_SESSIONS_PER_HOST: 8,
      SSH_IDLE_TIMEOUT_MS: 300_000,
      SSH_MAX_HANDSHAKES: 32,
      WORKER_CONCURRENCY: 50,
      DISCOVERY_CONCURRENCY: 8,
      WORKER_LANES: ['lifecycle', 'background'],
      JOB_LOCK_DURATION_MS: 30_000,
      DISCOVERY_INTERVAL_MS: 300_000,
      FULL_DISCOVERY_MIN_GAP_MS: 60_000,
      RECONCILE_INTERVAL_MS: 15_000,
      TOKEN_RATE_LIMIT_PER_MINUTE: 600,
      JSON_BODY_LIMIT_BYTES: 262_144,
      BULK_JSON_BODY_LIMIT_BYTES: 16_777_216,
      AUTH_FAILURE_AUDIT_WINDOW_MS: 60_000,
      ROLLOUT_EVENT_STREAMS_PER_TOKEN: 20,
      WEBHOOK_MAX_ATTEMPTS: 8,
      WEBHOOK_RETRY_BASE_MS: 10_000,
      WEBHOOK_RETRY_MAX_MS: 3_600_000,
      WEBHOOK_TIMEOUT_MS: 10_000,
      WEBHOOK_ALLOW_LOOPBACK: false,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: true,
      AGENT_CREDENTIAL_TTL_MS: 900_000,
      AGENT_OFFLINE_AFTER_MS: 60_000,
      AGENT_TASK_LEASE_MS: 30_000,
      AGENT_REPORT_CONCURRENCY: 2,
      AGENT_POLL_MAX_WAIT_MS: 25_000,
      AGENT_BUNDLE_DIR: 'dist/agent',
      QUEUE_PREFIX: 'drover',
    });
  });

  it('treats undefined variables as unset', () => {
    assert.equal(parseConfig({ ...required, PORT: undefined, MIGRATE_ON_START: undefined }).PORT, 8080);
  });

  it('parses every variable from its string form', () => {
    const config = parseConfig({
      DATABASE_URL: 'postgres://db/drover',
      REDIS_URL: 'rediss://redis:6380/1',
      DATABASE_POOL_SIZE: '40',
      DATABASE_POOL_MIN: '5',
      HOST: '0.0.0.0',
      PORT: '9000',
      HTTP_LISTEN_BACKLOG: '16384',
      HTTP_KEEP_ALIVE_TIMEOUT_MS: '75000',
      LOG_LEVEL: 'debug',
      MIGRATE_ON_START: 'false',
      SHUTDOWN_TIMEOUT_MS: '30000',
      SSH_PRIVATE_KEY_PATH: '/srv/drover/key',
      SSH_CONNECT_TIMEOUT_MS: '5000',
      SSH_COMMAND_TIMEOUT_MS: '60000',
      SSH_KEEPALIVE_INTERVAL_MS: '5000',
      SSH_POOL_MAX_CONNECTIONS: '200',
      SSH_MAX_SESSIONS_PER_HOST: '4',
      SSH_IDLE_TIMEOUT_MS: '60000',
      SSH_MAX_HANDSHAKES: '12',
      WORKER_CONCURRENCY: '20',
      DISCOVERY_CONCURRENCY: '3',
      WORKER_LANES: ' background ',
      JOB_LOCK_DURATION_MS: '10000',
      DISCOVERY_INTERVAL_MS: '0',
      FULL_DISCOVERY_MIN_GAP_MS: '0',
      RECONCILE_INTERVAL_MS: '5000',
      TOKEN_RATE_LIMIT_PER_MINUTE: '100',
      JSON_BODY_LIMIT_BYTES: '65536',
      BULK_JSON_BODY_LIMIT_BYTES: '1048576',
      AUTH_FAILURE_AUDIT_WINDOW_MS: '300000',
      ROLLOUT_EVENT_STREAMS_PER_TOKEN: '5',
      WEBHOOK_MAX_ATTEMPTS: '3',
      WEBHOOK_RETRY_BASE_MS: '500',
      WEBHOOK_RETRY_MAX_MS: '60000',
      WEBHOOK_TIMEOUT_MS: '2000',
      WEBHOOK_ALLOW_LOOPBACK: 'true',
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'false',
      AGENT_CREDENTIAL_TTL_MS: '60000',
      AGENT_OFFLINE_AFTER_MS: '30000',
      AGENT_TASK_LEASE_MS: '10000',
      AGENT_REPORT_CONCURRENCY: '3',
      AGENT_POLL_MAX_WAIT_MS: '20000',
      AGENT_BUNDLE_DIR: '/opt/drover/agent',
      QUEUE_PREFIX: 'drover:staging',
    });
    assert.deepEqual(config, {
      DATABASE_URL: 'postgres://db/drover',
      REDIS_URL: 'rediss://redis:6380/1',
      REDIS_TLS: false,
      DATABASE_POOL_SIZE: 40,
      DATABASE_POOL_MIN: 5,
      HOST: '0.0.0.0',
      PORT: 9000,
      HTTP_LISTEN_BACKLOG: 16_384,
      HTTP_KEEP_ALIVE_TIMEOUT_MS: 75_000,
      LOG_LEVEL: 'debug',
      MIGRATE_ON_START: false,
      SHUTDOWN_TIMEOUT_MS: 30_000,
      SSH_PRIVATE_KEY_PATH: '/srv/drover/key',
      SSH_CONNECT_TIMEOUT_MS: 5_000,
      SSH_COMMAND_TIMEOUT_MS: 60_000,
      SSH_KEEPALIVE_INTERVAL_MS: 5_000,
      SSH_POOL_MAX_CONNECTIONS: 200,
      SSH_MAX_SESSIONS_PER_HOST: 4,
      SSH_IDLE_TIMEOUT_MS: 60_000,
      SSH_MAX_HANDSHAKES: 12,
      WORKER_CONCURRENCY: 20,
      DISCOVERY_CONCURRENCY: 3,
      WORKER_LANES: ['background'],
      JOB_LOCK_DURATION_MS: 10_000,
      DISCOVERY_INTERVAL_MS: 0,
      FULL_DISCOVERY_MIN_GAP_MS: 0,
      RECONCILE_INTERVAL_MS: 5_000,
      TOKEN_RATE_LIMIT_PER_MINUTE: 100,
      JSON_BODY_LIMIT_BYTES: 65_536,
      BULK_JSON_BODY_LIMIT_BYTES: 1_048_576,
      AUTH_FAILURE_AUDIT_WINDOW_MS: 300_000,
      ROLLOUT_EVENT_STREAMS_PER_TOKEN: 5,
      WEBHOOK_MAX_ATTEMPTS: 3,
      WEBHOOK_RETRY_BASE_MS: 500,
      WEBHOOK_RETRY_MAX_MS: 60_000,
      WEBHOOK_TIMEOUT_MS: 2_000,
      WEBHOOK_ALLOW_LOOPBACK: true,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: false,
      AGENT_CREDENTIAL_TTL_MS: 60_000,
      AGENT_OFFLINE_AFTER_MS: 30_000,
      AGENT_TASK_LEASE_MS: 10_000,
      AGENT_REPORT_CONCURRENCY: 3,
      AGENT_POLL_MAX_WAIT_MS: 20_000,
      AGENT_BUNDLE_DIR: '/opt/drover/agent',
      QUEUE_PREFIX: 'drover:staging',
    });
  });

  it("stores agents' unit reports a quarter of the pool at a time unless told, at least one", () => {
    assert.equal(parseConfig({ ...required, DATABASE_POOL_SIZE: '40' }).AGENT_REPORT_CONCURRENCY, 10);
    assert.equal(parseConfig({ ...required, DATABASE_POOL_SIZE: '3' }).AGENT_REPORT_CONCURRENCY, 1);
    assert.equal(
      parseConfig({ ...required, DATABASE_POOL_SIZE: '3', AGENT_REPORT_CONCURRENCY: '2' }).AGENT_REPORT_CONCURRENCY,
      2,
    );
  });

  it('keeps two database connections open unless told, never more than the pool, and names DATABASE_POOL_MIN above it', () => {
    assert.equal(parseConfig({ ...required, DATABASE_POOL_SIZE: '1' }).DATABASE_POOL_MIN, 1);
    assert.equal(parseConfig({ ...required, DATABASE_POOL_MIN: '0' }).DATABASE_POOL_MIN, 0);
    assert.equal(
      configErrorMessage({ ...required, DATABASE_POOL_SIZE: '4', DATABASE_POOL_MIN: '5' }),
      'invalid configuration: DATABASE_POOL_MIN must be at most DATABASE_POOL_SIZE (4)',
    );
  });

  it('takes the lanes a worker consumes, and names WORKER_LANES when one is unknown, repeated or missing', () => {
    assert.deepEqual(parseConfig({ ...required, WORKER_LANES: 'lifecycle' }).WORKER_LANES, ['lifecycle']);
    assert.deepEqual(parseConfig({ ...required, WORKER_LANES: 'background,lifecycle' }).WORKER_LANES, [
      'background',
      'lifecycle',
    ]);
    assert.match(
      configErrorMessage({ ...required, WORKER_LANES: 'lifecycle,tasks' }),
      /WORKER_LANES must name lanes among lifecycle, background \("tasks" is not one\)/,
    );
    assert.match(
      configErrorMessage({ ...required, WORKER_LANES: 'lifecycle,lifecycle' }),
      /WORKER_LANES names a lane twice/,
    );
    assert.match(configErrorMessage({ ...required, WORKER_LANES: '' }), /WORKER_LANES must name lanes/);
  });

  it('ignores variables it does not know', () => {
    const config = parseConfig({ ...required, PATH: '/usr/bin', HOME: '/root' });
    assert.equal(Object.hasOwn(config, 'PATH'), false);
  });

  it('says DATABASE_URL is required when it is missing', () => {
    assert.equal(
      configErrorMessage({ REDIS_URL: required.REDIS_URL }),
      'invalid configuration: DATABASE_URL is required',
    );
  });

  it('names every missing variable in one line', () => {
    const message = configErrorMessage({});
    assert.match(message, /DATABASE_URL is required/);
    assert.match(message, /REDIS_URL is required/);
  });

  it('names DATABASE_URL when it is not a PostgreSQL URL', () => {
    for (const url of ['mysql://db/drover', 'http://db/drover', 'not a url', '', 'postgresqlx://db/drover']) {
      const message = configErrorMessage({ ...required, DATABASE_URL: url });
      assert.match(message, /DATABASE_URL must be a postgresql:\/\/ URL/, url);
      assert.doesNotMatch(message, /is required/, url);
    }
  });

  it('names REDIS_URL when it is not a Redis URL', () => {
    assert.match(
      configErrorMessage({ ...required, REDIS_URL: 'memcached://cache' }),
      /REDIS_URL must be a redis:\/\/ URL/,
    );
  });

  it('takes sentinels and their master name instead of REDIS_URL', () => {
    const config = parseConfig({
      DATABASE_URL: required.DATABASE_URL,
      REDIS_SENTINELS: 'sentinel-1:26379, 10.0.0.7:26380,[fd00::5]:26381',
      REDIS_SENTINEL_MASTER: 'drover-main',
      REDIS_PASSWORD: 'pw',
      REDIS_SENTINEL_PASSWORD: 'spw',
    });
    assert.deepEqual(config.REDIS_SENTINELS, [
      { host: 'sentinel-1', port: 26379 },
      { host: '10.0.0.7', port: 26380 },
      { host: 'fd00::5', port: 26381 },
    ]);
    assert.equal(config.REDIS_SENTINEL_MASTER, 'drover-main');
    assert.equal(config.REDIS_URL, undefined);
    assert.equal(config.QUEUE_PREFIX, 'drover', 'no hash tag needed without a Cluster');
  });

  it('takes Cluster nodes, and puts the queue prefix in a hash tag unless it has one', () => {
    const cluster = { DATABASE_URL: required.DATABASE_URL, REDIS_CLUSTER_NODES: 'redis-1:7000,redis-2:7001' };
    const config = parseConfig(cluster);
    assert.deepEqual(config.REDIS_CLUSTER_NODES, [
      { host: 'redis-1', port: 7000 },
      { host: 'redis-2', port: 7001 },
    ]);
    assert.equal(config.QUEUE_PREFIX, '{drover}');
    assert.equal(parseConfig({ ...cluster, QUEUE_PREFIX: 'staging' }).QUEUE_PREFIX, '{staging}');
    assert.equal(parseConfig({ ...cluster, QUEUE_PREFIX: 'drover:{staging}' }).QUEUE_PREFIX, 'drover:{staging}');
    assert.equal(parseConfig({ ...required, QUEUE_PREFIX: '{drover}' }).QUEUE_PREFIX, '{drover}');
    assert.match(configErrorMessage({ ...cluster, QUEUE_PREFIX: '{a}{b}' }), /QUEUE_PREFIX must be .*one \{hash tag\}/);
    assert.match(configErrorMessage({ ...cluster, QUEUE_PREFIX: '{}' }), /QUEUE_PREFIX /);
  });

  it('names what is missing or conflicting in the way to Redis', () => {
    const database = { DATABASE_URL: required.DATABASE_URL };
    assert.equal(
      configErrorMessage(database),
      'invalid configuration: REDIS_URL is required (or REDIS_SENTINELS with REDIS_SENTINEL_MASTER, or REDIS_CLUSTER_NODES)',
    );
    assert.equal(
      configErrorMessage({ ...database, REDIS_SENTINELS: 's:26379' }),
      'invalid configuration: REDIS_SENTINEL_MASTER is required with REDIS_SENTINELS',
    );
    assert.match(
      configErrorMessage({ ...required, REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_MASTER: 'm' }),
      /REDIS_SENTINELS cannot be combined with REDIS_URL/,
    );
    assert.match(
      configErrorMessage({
        ...database,
        REDIS_SENTINELS: 's:26379',
        REDIS_SENTINEL_MASTER: 'm',
        REDIS_CLUSTER_NODES: 'c:7000',
      }),
      /REDIS_CLUSTER_NODES cannot be combined with REDIS_SENTINELS/,
    );
    assert.match(
      configErrorMessage({ ...required, REDIS_SENTINEL_MASTER: 'm' }),
      /REDIS_SENTINEL_MASTER is only meaningful/,
    );
    assert.match(
      configErrorMessage({ ...required, REDIS_PASSWORD: 'pw' }),
      /REDIS_PASSWORD does not apply to REDIS_URL/,
    );
    assert.match(configErrorMessage({ ...required, REDIS_TLS: 'true' }), /REDIS_TLS does not apply to REDIS_URL/);
  });

  it('takes a CA file for Redis only with TLS on, and only as an absolute path', () => {
    const ca = '/etc/drover/redis-ca.pem';
    assert.match(
      configErrorMessage({ ...required, REDIS_TLS_CA_FILE: ca }),
      /REDIS_TLS_CA_FILE needs TLS: REDIS_TLS=true, or a rediss:\/\/ REDIS_URL/,
    );
    const cluster = { DATABASE_URL: required.DATABASE_URL, REDIS_CLUSTER_NODES: 'redis-1:7000' };
    assert.match(configErrorMessage({ ...cluster, REDIS_TLS_CA_FILE: ca }), /REDIS_TLS_CA_FILE needs TLS/);
    assert.match(
      configErrorMessage({ ...cluster, REDIS_TLS: 'true', REDIS_TLS_CA_FILE: 'redis-ca.pem' }),
      /REDIS_TLS_CA_FILE must be an absolute path/,
    );
    assert.equal(parseConfig({ ...cluster, REDIS_TLS: 'true', REDIS_TLS_CA_FILE: ca }).REDIS_TLS_CA_FILE, ca);
    const url = { ...required, REDIS_URL: 'rediss://cache:6380' };
    assert.equal(parseConfig({ ...url, REDIS_TLS_CA_FILE: ca }).REDIS_TLS_CA_FILE, ca);
  });

  it('names a node list that is not host:port pairs', () => {
    for (const nodes of ['', 'redis', 'redis:', 'redis:0', 'redis:65536', 'a:1,,b:2', 'redis:6379/0', 'fd00::5:7000']) {
      const message = configErrorMessage({ DATABASE_URL: required.DATABASE_URL, REDIS_CLUSTER_NODES: nodes });
      assert.match(message, /^invalid configuration: REDIS_CLUSTER_NODES must be host:port/, nodes);
    }
    assert.match(
      configErrorMessage({
        DATABASE_URL: required.DATABASE_URL,
        REDIS_SENTINELS: 's 1:26379',
        REDIS_SENTINEL_MASTER: 'm',
      }),
      /REDIS_SENTINELS must be host:port/,
    );
  });

  it('names PORT when it is not a port number', () => {
    for (const port of ['abc', '70000', '65536', '-1', '8.5', '80a']) {
      const message = configErrorMessage({ ...required, PORT: port });
      assert.match(message, /^invalid configuration: PORT /, port);
      assert.doesNotMatch(message, /DATABASE_URL|REDIS_URL/, port);
    }
  });

  it('accepts the port range boundaries', () => {
    assert.equal(parseConfig({ ...required, PORT: '65535' }).PORT, 65535);
    assert.equal(parseConfig({ ...required, PORT: '1' }).PORT, 1);
  });

  it('names MIGRATE_ON_START when it is not exactly true or false', () => {
    for (const value of ['yes', 'TRUE', '1', '0', 'False', '']) {
      assert.match(configErrorMessage({ ...required, MIGRATE_ON_START: value }), /MIGRATE_ON_START /, value);
    }
  });

  it('names LOG_LEVEL, SHUTDOWN_TIMEOUT_MS, QUEUE_PREFIX and HOST when they are invalid', () => {
    assert.match(configErrorMessage({ ...required, LOG_LEVEL: 'verbose' }), /LOG_LEVEL /);
    assert.match(configErrorMessage({ ...required, SHUTDOWN_TIMEOUT_MS: '50' }), /SHUTDOWN_TIMEOUT_MS /);
    assert.match(configErrorMessage({ ...required, SHUTDOWN_TIMEOUT_MS: '600001' }), /SHUTDOWN_TIMEOUT_MS /);
    assert.match(configErrorMessage({ ...required, QUEUE_PREFIX: 'has space' }), /QUEUE_PREFIX /);
    assert.match(configErrorMessage({ ...required, QUEUE_PREFIX: 'q'.repeat(65) }), /QUEUE_PREFIX /);
    assert.match(configErrorMessage({ ...required, HOST: '' }), /HOST /);
  });

  it('joins several problems with semicolons', () => {
    const message = configErrorMessage({ REDIS_URL: required.REDIS_URL, PORT: 'abc', MIGRATE_ON_START: 'yes' });
    assert.match(message, /^invalid configuration: DATABASE_URL is required; PORT .+; MIGRATE_ON_START .+$/);
  });

  it('returns a config or throws a single-line ConfigError for any environment', () => {
    const variables = [
      'DATABASE_URL',
      'REDIS_URL',
      'HOST',
      'PORT',
      'LOG_LEVEL',
      'MIGRATE_ON_START',
      'SHUTDOWN_TIMEOUT_MS',
      'QUEUE_PREFIX',
      'REDIS_SENTINELS',
      'REDIS_SENTINEL_MASTER',
      'REDIS_CLUSTER_NODES',
    ] as const;
    const value = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom('true', 'false', '8080', 'info', 'line\nbreak', 'postgres://db/x', 'redis://r', 'r:26379', '{q}'),
    );
    const env = fc.record(Object.fromEntries(variables.map((name) => [name, fc.option(value, { nil: undefined })])));
    fc.assert(
      fc.property(env, (generated) => {
        try {
          const config = parseConfig(generated);
          assert.equal(typeof config.PORT, 'number');
        } catch (error) {
          assert.ok(error instanceof ConfigError, `unexpected ${String(error)}`);
          assert.doesNotMatch(error.message, /[\r\n]/);
          assert.match(error.message, /^invalid configuration: [A-Z_]+ /);
        }
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * drover as a benchmark runs it: PostgreSQL and Redis ready, a scratch database and queue prefix
 * of its own, one API and one worker started from dist/ with an admin token, the fleet imported;
 * calls to its HTTP API and its rollout event stream.
 */
import { ChildProcess, execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { Client as PgClient } from 'pg';
import { QueueName } from '@drover/protocol';
import { FLEET_KEY, FleetHost } from './fleet';
import {
  portTaken,
  progress,
  ROOT,
  runOrFail,
  secs,
  START_TIMEOUT_MS,
  startNode,
  stopProcess,
  Teardown,
  waitUntil,
} from './harness';

const SERVER_URL = 'postgresql://drover:drover@127.0.0.1:5432/postgres';
export const REDIS_URL = 'redis://127.0.0.1:6379';
const POLL_MS = 100;
/** How much longer the first discovery of the hosts may take per host (a loaded 2-core machine). */
const FIRST_DISCOVERY_ALLOWANCE_MS = 2_000;
const execFileAsync = promisify(execFile);

export const databaseUrl = (database: string): string => `postgresql://drover:drover@127.0.0.1:5432/${database}`;

/** Where and how a benchmark runs its drover. */
export interface DroverSetup {
  /** The scratch database, dropped and created first. */
  database: string;
  /** The Redis key prefix of its queues, cleared first. */
  queuePrefix: string;
  port: number;
  /** The address the API listens on (127.0.0.1 unless hosts must reach it, e.g. the fleet's gateway). */
  listenAddress?: string;
  /** api.log and worker.log go here. */
  workDir: string;
  /** Before the names of the logs, when several drovers share workDir. */
  logPrefix?: string;
  /** A directory for V8 CPU profiles of the API and worker (written when they stop), or null. */
  profileDir?: string | null;
  /** Settings on top of the benchmark's defaults (WORKER_CONCURRENCY 64, no discovery sweeps, no rate limit). */
  env?: Record<string, string>;
  /** The worker's entry file (default dist/src/worker.js), e.g. a benchmark's worker on a simulated fleet. */
  workerScript?: string;
  /**
   * Discover every imported host before returning, as the periodic discovery would have by the
   * time anyone acts: the runs then find each host's units known (a host never discovered gets
   * a full listing after its first action) and do not share the machine with these listings.
   */
  discoverHosts?: boolean;
}

export interface Drover {
  api: ChildProcess;
  worker: ChildProcess;
  /** The environment both were started with, for more workers (startWorker). */
  env: NodeJS.ProcessEnv;
  profileDir: string | null;
  workerScript: string;
  /** The API's base URL, http://127.0.0.1:PORT. */
  url: string;
  /** An admin token. */
  token: string;
  db: PgClient;
  /** drover's job queues (lifecycle, background), to see them idle again after a run. */
  queues: Queue[];
}

export interface Rollout {
  id: string;
  status: string;
  reason?: string | null;
  hosts: { name: string; state: string }[];
}

/** PostgreSQL with the drover role and Redis, started or installed when absent (scripts/lib/stack.sh). */
export async function ensureServices(): Promise<void> {
  await runOrFail('bash', [
    '-c',
    'source scripts/lib/stack.sh && ensure_postgres && ensure_postgres_role drover drover && ensure_redis',
  ]);
}

async function recreateDatabase(database: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`database name ${database}: a-z, 0-9 and _ only`);
  const server = new PgClient({ connectionString: SERVER_URL });
  await server.connect();
  try {
    await server.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await server.query(`CREATE DATABASE ${database}`);
  } finally {
    await server.end();
  }
}

/** Queue keys an earlier run left behind would hand its jobs to this run's worker. */
async function clearQueues(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL);
  try {
    let removed = 0;
    for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 1000 })) {
      const batch = keys as string[];
      if (batch.length > 0) removed += await redis.unlink(...batch);
    }
    return removed;
  } finally {
    redis.disconnect();
  }
}

/**
 * Recreates the database, clears the queues, starts the API (which applies the migrations) and a
 * worker, creates an admin token and imports `hosts` (none: no import) with their pinned host keys. Both processes
 * stop, and the connections close, on the teardown.
 */
export async function startDrover(hosts: FleetHost[], setup: DroverSetup, teardown: Teardown): Promise<Drover> {
  if (await portTaken(setup.port)) throw new Error(`port ${setup.port} is taken by another program`);
  await recreateDatabase(setup.database);
  const stale = await clearQueues(setup.queuePrefix);
  progress(`recreated database ${setup.database}; removed ${stale} stale queue keys under ${setup.queuePrefix}:`);
  const env = {
    ...process.env,
    DATABASE_URL: databaseUrl(setup.database),
    REDIS_URL,
    QUEUE_PREFIX: setup.queuePrefix,
    HOST: setup.listenAddress ?? '127.0.0.1',
    PORT: String(setup.port),
    SSH_PRIVATE_KEY_PATH: FLEET_KEY,
    WORKER_CONCURRENCY: '64',
    // More database connections than the default 10 (hundreds of agents' polls on an API, 64 jobs
    // on a worker), but two drovers' APIs and workers must stay within PostgreSQL's 100 connections.
    DATABASE_POOL_SIZE: '20',
    // One pooled connection per host at least, so no run waits for one to close to open another.
    SSH_POOL_MAX_CONNECTIONS: String(Math.max(1_000, hosts.length)),
    // Discovery sweeps would compete with the runs they are not part of.
    DISCOVERY_INTERVAL_MS: '0',
    // A benchmark calls faster than a person would: no per-token rate limit.
    TOKEN_RATE_LIMIT_PER_MINUTE: '0',
    ...setup.env,
  };
  const url = `http://${setup.listenAddress ?? '127.0.0.1'}:${setup.port}`;
  const profileDir = setup.profileDir ?? null;
  const logPrefix = setup.logPrefix ?? '';
  const apiLog = path.join(setup.workDir, `${logPrefix}api.log`);
  const workerLog = path.join(setup.workDir, `${logPrefix}worker.log`);
  const api = startNode('dist/src/main.js', env, apiLog, profileDir);
  teardown.add('stopping the drover API', () => stopProcess(api));
  await waitUntil(
    `the API (see ${apiLog})`,
    () =>
      fetch(`${url}/healthz/ready`).then(
        (response) => response.ok,
        () => false,
      ),
    [api],
  );
  const workerScript = setup.workerScript ?? 'dist/src/worker.js';
  const worker = await startWorker({ env, profileDir, workerScript }, workerLog, teardown);
  const { stdout } = await execFileAsync(
    process.execPath,
    [path.join(ROOT, 'dist/src/admin.js'), 'create-token', '--name', 'bench', '--scope', 'admin'],
    { cwd: ROOT, env },
  );
  const token = stdout.trim();
  const db = new PgClient({ connectionString: env.DATABASE_URL });
  await db.connect();
  teardown.add('closing the database connection', () => db.end());
  const queues = [QueueName.Lifecycle, QueueName.Background].map(
    (name) => new Queue(name, { connection: { url: REDIS_URL }, prefix: setup.queuePrefix }),
  );
  teardown.add('closing the queue connections', async () => {
    await Promise.all(queues.map((queue) => queue.close()));
  });
  const drover: Drover = { api, worker, env, profileDir, workerScript, url, token, db, queues };
  if (hosts.length === 0) {
    progress(`drover is up on ${url} (${setup.database}); no SSH hosts imported`);
    return drover;
  }
  const imported = await call<{ total: number }>(drover, 'POST', '/v1/hosts/bulk-upsert', { hosts }, 200);
  progress(`drover is up on ${url} (${setup.database}); imported ${imported.total} hosts with their pinned host keys`);
  if (!setup.discoverHosts) return drover;
  const discovering = performance.now();
  for (const host of hosts) {
    await call(drover, 'POST', `/v1/hosts/${encodeURIComponent(host.name)}/discover`, undefined, 202);
  }
  await waitForIdleQueues(queues, START_TIMEOUT_MS + hosts.length * FIRST_DISCOVERY_ALLOWANCE_MS);
  progress(`discovered the units of every host (${secs((performance.now() - discovering) / 1000)} s)`);
  return drover;
}

/**
 * Starts a worker of this drover (one more, or one replacing a stopped one), its output appended
 * to `logFile`; resolves once it consumes. It stops on the teardown.
 */
export async function startWorker(
  drover: Pick<Drover, 'env' | 'profileDir' | 'workerScript'>,
  logFile: string,
  teardown: Teardown,
): Promise<ChildProcess> {
  const consuming = async () =>
    (await readFile(logFile, 'utf8').catch(() => '')).split('connected and consuming').length;
  const before = await consuming();
  const worker = startNode(drover.workerScript, drover.env, logFile, drover.profileDir);
  teardown.add('stopping a drover worker', () => stopProcess(worker));
  await waitUntil(`the worker (see ${logFile})`, async () => (await consuming()) > before, [worker]);
  return worker;
}

/** The processes whose CPU is drover's: the API, the worker and any more workers started beside it. */
export const droverPids = (drover: Pick<Drover, 'api' | 'worker'>, moreWorkers: ChildProcess[] = []): number[] => [
  drover.api.pid!,
  drover.worker.pid!,
  ...moreWorkers.map((worker) => worker.pid!),
];

/** One call to drover's API with the admin token; any status but `expect` is an error. */
/** How often `call` asks again after a 503 with Retry-After (the database busy), as a client should. */
const RETRIES_WHEN_UNAVAILABLE = 5;

export async function call<T>(
  drover: Pick<Drover, 'url' | 'token'>,
  method: string,
  route: string,
  body: unknown,
  expect: number,
): Promise<T> {
  for (let retries = 0; ; retries += 1) {
    const response = await fetch(`${drover.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${drover.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).catch((error: Error) => {
      // fetch's own message ("fetch failed") hides what failed.
      return new Error(`${method} ${route}: ${error.message} (${String(error.cause)})`);
    });
    if (response instanceof Error) {
      // A kept-alive connection the API closed as idle just as this request went out (a busy
      // machine notices the close late) resets the request before the API read it: ask once more.
      if (/ECONNRESET|other side closed/.test(response.message) && retries === 0) {
        progress(`${response.message}: asking again on a new connection`);
        continue;
      }
      throw response;
    }
    const text = await response.text();
    const retryAfter = Number(response.headers.get('retry-after'));
    if (response.status === 503 && retryAfter > 0 && retries < RETRIES_WHEN_UNAVAILABLE) {
      // Shown, not hidden: a busy database during a benchmark is part of what it saw.
      progress(`${method} ${route}: 503, asking again in ${retryAfter} s (${text.slice(0, 200)})`);
      await sleep(retryAfter * 1000);
      continue;
    }
    if (response.status !== expect) throw new Error(`${method} ${route}: ${response.status} ${text.slice(0, 1000)}`);
    return JSON.parse(text) as T;
  }
}

/** Follows the rollout's event stream, as `drover rollout --wait` does, until its finished event. */
export async function finishedEvent(drover: Pick<Drover, 'url' | 'token'>, rolloutId: string): Promise<void> {
  const response = await fetch(`${drover.url}/v1/rollouts/${rolloutId}/events`, {
    headers: { authorization: `Bearer ${drover.token}`, accept: 'text/event-stream' },
  });
  if (!response.ok || !response.body) throw new Error(`events of rollout ${rolloutId}: ${response.status}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    text += decoder.decode(read.value as Uint8Array, { stream: true });
    if (/^event: rollout\.finished$/m.test(text)) {
      await reader.cancel();
      return;
    }
  }
  throw new Error(`the event stream of rollout ${rolloutId} ended before its finished event`);
}

/**
 * Waits until drover is quiet again after a run: nothing waiting, running or delayed in any of its
 * queues, so the next run does not share the machine with this one's follow-up work (the discovery
 * each action is followed by, one second later, on the background queue). Repeatable schedules
 * (the periodic sweeps) are always delayed and do not count.
 */
export async function waitForIdleQueues(queues: Queue[], timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const busy: Record<string, number> = {};
    for (const queue of queues) {
      const counts = await queue.getJobCounts('wait', 'active', 'prioritized');
      const delayed = (await queue.getDelayed()).filter((job) => !job.id?.startsWith('repeat:')).length;
      for (const [state, count] of Object.entries({ ...counts, delayed })) {
        if (count > 0) busy[`${queue.name}.${state}`] = count;
      }
    }
    if (Object.keys(busy).length === 0) return;
    if (Date.now() > deadline) throw new Error(`drover's queues still busy after a run: ${JSON.stringify(busy)}`);
    await sleep(POLL_MS);
  }
}

/** The machine, for a report: CPU, memory, OS, Node.js, PostgreSQL, and `tools` (e.g. Ansible's version). */
export async function machine(db: PgClient, tools: string[] = []): Promise<string[]> {
  const cpu = os.cpus();
  const debian = await readFile('/etc/debian_version', 'utf8').catch(() => 'unknown');
  const { rows } = await db.query<{ version: string }>(`SELECT current_setting('server_version') AS version`);
  return [
    `- CPU: ${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown'}; memory ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- ${os.type()} ${os.release()}, Debian ${debian.trim()}; Node.js ${process.version}; ${[...tools, ''].join('; ')}` +
      `PostgreSQL ${rows[0]?.version ?? 'unknown'} and Redis on the same machine`,
  ];
}

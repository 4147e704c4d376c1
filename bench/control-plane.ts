/**
 * The control plane at 100,000 hosts (issue 15, item 4), with no host's cost in it: hosts and
 * their units seeded by SQL, drover's real API (over HTTP, with a token) and its real worker whose
 * SSH executor is replaced by a simulated fleet answering at once (bench/control-plane-worker.ts).
 * Measures dispatch and settle of 10,000 tasks (an operation, then a rollout with large batches) in
 * tasks per second and per CPU-second of the worker, the rollout plan over 10,000 hosts, host
 * listings by selector over 100,000 hosts, and the API's and worker's memory in each part.
 * Progress on stderr; the Markdown report on stdout and in --out.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import type { Client as PgClient } from 'pg';
import { QueueName } from '@drover/protocol';
import { call, Drover, ensureServices, machine, REDIS_URL, startDrover } from './lib/drover';
import {
  cpuSeconds,
  fail,
  mib,
  positiveInteger,
  progress,
  ROOT,
  rssBytes,
  runBenchmark,
  START_TIMEOUT_MS,
  Teardown,
  writeReport,
} from './lib/harness';

const DATABASE = 'drover_cp_bench';
const QUEUE_PREFIX = 'drover-cp-bench';
const PORT = 8096;
const UNIT = 'nginx.service';
/** Every host has these units (a real host has a hundred; the plan and the tasks read one). */
const UNITS = ['nginx.service', 'sshd.service', 'cron.service', 'drover-probe.service'];
/** One cell of ten: every tenth host, so --targets of --hosts (10,000 of 100,000) by default. */
const TARGET_SELECTOR = 'cell=c3';
const GOALS = { tasksPerCpuSecond: 2_000, planP95Ms: 1_000, listP95Ms: 50 };

interface Options {
  hosts: number;
  planRuns: number;
  listRuns: number;
  out: string;
  /** A directory for V8 CPU profiles of the API and the worker, or null. */
  cpuProf: string | null;
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    hosts: 100_000,
    planRuns: 10,
    listRuns: 30,
    out: path.join(ROOT, 'bench/results/control-plane.md'),
    cpuProf: null,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--hosts':
        options.hosts = positiveInteger('--hosts', value);
        if (options.hosts % 10 !== 0) fail('--hosts must be a multiple of 10 (the target is one cell of ten)');
        break;
      case '--plan-runs':
        options.planRuns = positiveInteger('--plan-runs', value);
        break;
      case '--list-runs':
        options.listRuns = positiveInteger('--list-runs', value);
        break;
      case '--cpu-prof':
        options.cpuProf = path.resolve(value ?? fail('--cpu-prof needs a directory'));
        break;
      case '--out':
        options.out = path.resolve(value ?? fail('--out needs a file'));
        break;
      default:
        fail(`unknown option ${argv[i]}`);
    }
    i += 1;
  }
  return options;
}

// ---------------------------------------------------------------------------------------------
// seeding

/**
 * Deterministic hosts: `u(h, salt)` is a uniform number in [0, 1) from a hash, so the skew is the
 * same every run. role web 40%, api 25%, worker 15%, db 10%, cache 10%; env prod 70%, staging 20%,
 * dev 10%; six regions from 35% down to 4%; 40 hosts per rack; ten cells of equal size; 2% canary.
 */
const SEED_HOSTS = `
CREATE FUNCTION pg_temp.u(h int, salt int) RETURNS float8 LANGUAGE sql IMMUTABLE AS
  $$ SELECT ('x' || substr(md5(h || ':' || salt), 1, 8))::bit(32)::bigint / 4294967296.0 $$;
INSERT INTO hosts (id, name, address, port, transport, ssh_user, host_key_fingerprint, labels, status, last_seen_at)
SELECT gen_random_uuid(), 'host-' || lpad(h::text, 6, '0'),
       '10.' || (h / 65536) || '.' || (h / 256 % 256) || '.' || (h % 256), 22, 'ssh', 'root',
       'SHA256:' || rtrim(encode(sha256(('host-' || h)::bytea), 'base64'), '='),
       jsonb_build_object(
         'role', CASE WHEN pg_temp.u(h, 1) < 0.40 THEN 'web' WHEN pg_temp.u(h, 1) < 0.65 THEN 'api'
                      WHEN pg_temp.u(h, 1) < 0.80 THEN 'worker' WHEN pg_temp.u(h, 1) < 0.90 THEN 'db' ELSE 'cache' END,
         'env', CASE WHEN pg_temp.u(h, 2) < 0.70 THEN 'prod' WHEN pg_temp.u(h, 2) < 0.90 THEN 'staging' ELSE 'dev' END,
         'region', CASE WHEN pg_temp.u(h, 3) < 0.35 THEN 'eu-west-1' WHEN pg_temp.u(h, 3) < 0.65 THEN 'us-east-1'
                        WHEN pg_temp.u(h, 3) < 0.80 THEN 'us-west-2' WHEN pg_temp.u(h, 3) < 0.90 THEN 'eu-central-1'
                        WHEN pg_temp.u(h, 3) < 0.96 THEN 'ap-south-1' ELSE 'ap-northeast-1' END,
         'rack', 'r' || lpad((h / 40)::text, 4, '0'),
         'cell', 'c' || (h % 10))
         || CASE WHEN pg_temp.u(h, 4) < 0.02 THEN '{"canary": "true"}'::jsonb ELSE '{}'::jsonb END,
       'reachable', now()
FROM generate_series(1, $1::int) AS h`;

/** Each host's units as a discovery stores them; 1% of the nginx units failed. */
const SEED_UNITS = `
INSERT INTO units (id, host_id, name, description, load_state, active_state, sub_state, unit_file_state, main_pid)
SELECT gen_random_uuid(), h.id, u.name, u.name, 'loaded',
       CASE WHEN u.name = 'nginx.service' AND substr(md5(h.name), 1, 2) < '03' THEN 'failed' ELSE 'active' END,
       CASE WHEN u.name = 'nginx.service' AND substr(md5(h.name), 1, 2) < '03' THEN 'failed' ELSE 'running' END,
       'enabled', 1000 + u.n
FROM hosts h CROSS JOIN unnest($1::text[]) WITH ORDINALITY AS u(name, n)`;

async function seed(db: PgClient, hosts: number): Promise<number> {
  const started = performance.now();
  await db.query('BEGIN');
  // The temporary function lives in this session only; the simple protocol runs both statements.
  await db.query(SEED_HOSTS.replace('$1::int', String(hosts)));
  await db.query(SEED_UNITS, [UNITS]);
  await db.query('COMMIT');
  await db.query('VACUUM (ANALYZE) hosts, units');
  return (performance.now() - started) / 1000;
}

// ---------------------------------------------------------------------------------------------
// measuring

/** The API's and the worker's resident memory, sampled every 50 ms while a part runs: its peak. */
class MemoryWatch {
  private peaks = { api: 0, worker: 0 };
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly drover: Drover) {
    this.timer = setInterval(() => this.sample(), 50);
    this.sample();
  }

  stop(): { api: number; worker: number } {
    clearInterval(this.timer);
    this.sample();
    return this.peaks;
  }

  private sample(): void {
    // A process that exited (the benchmark failing, its teardown stopping both) has nothing to read.
    if (this.drover.api.exitCode !== null || this.drover.worker.exitCode !== null) return;
    if (this.drover.api.signalCode !== null || this.drover.worker.signalCode !== null) return;
    this.peaks = {
      api: Math.max(this.peaks.api, rssBytes(this.drover.api.pid!)),
      worker: Math.max(this.peaks.worker, rssBytes(this.drover.worker.pid!)),
    };
  }
}

interface Cpu {
  api: number;
  worker: number;
}

function cpuOf(drover: Drover): Cpu {
  return { api: cpuSeconds(drover.api.pid!), worker: cpuSeconds(drover.worker.pid!) };
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const ms = (value: number): string => value.toFixed(value < 10 ? 1 : 0);
const int = (value: number): string => Math.round(value).toLocaleString('en-US');
const met = (ok: boolean): string => (ok ? '**met**' : '**not met**');

function loadAverage(): string {
  return os
    .loadavg()
    .map((value) => value.toFixed(2))
    .join(' / ');
}

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await run();
  return { ms: performance.now() - started, value };
}

// list -----------------------------------------------------------------------------------------

interface ListRow {
  selector: string;
  page: string;
  matched: number;
  items: number;
  p50: number;
  p95: number;
  max: number;
}

const LIST_SELECTORS = [
  '',
  'role=web',
  'env=prod,role=db',
  'region in (eu-west-1,eu-central-1),role!=web',
  'role=cache,env=dev,region=ap-northeast-1',
  'rack=r0421',
  'cell=c3',
  'canary',
  '!canary,env=staging',
];

interface HostPage {
  items: { name: string }[];
  nextCursor: string | null;
}

async function measureList(drover: Drover, runs: number): Promise<ListRow[]> {
  const rows: ListRow[] = [];
  const get = (selector: string, limit: number, cursor?: string) =>
    call<HostPage>(
      drover,
      'GET',
      `/v1/hosts?${new URLSearchParams({ selector, limit: String(limit), ...(cursor ? { cursor } : {}) }).toString()}`,
      undefined,
      200,
    );
  for (const selector of LIST_SELECTORS) {
    const matched = await drover.db.query<{ count: string }>(
      `SELECT count(*) FROM hosts WHERE ${selectorWhere(selector)}`,
    );
    for (const limit of [100, 1000]) {
      // The first page, `runs` times (after 3 unmeasured).
      for (let i = 0; i < 3; i += 1) await get(selector, limit);
      const first: number[] = [];
      let items = 0;
      for (let i = 0; i < runs; i += 1) {
        const { ms: took, value } = await timed(() => get(selector, limit));
        first.push(took);
        items = value.items.length;
      }
      rows.push(row(selector, `first, limit ${limit}`, Number(matched.rows[0]!.count), items, first));
    }
    // Walking the pages with the cursor: each of the first `runs` pages of 100 once.
    const walk: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const { ms: took, value } = await timed(() => get(selector, 100, cursor));
      walk.push(took);
      cursor = value.nextCursor ?? undefined;
      pages += 1;
    } while (cursor && pages < runs);
    rows.push(row(selector, `pages 1–${pages} by cursor, limit 100`, Number(matched.rows[0]!.count), 100, walk));
    progress(`list '${selector}': p95 ${ms(rows[rows.length - 1]!.p95)} ms walking ${pages} pages`);
  }
  return rows;
}

function row(selector: string, page: string, matched: number, items: number, times: number[]): ListRow {
  return {
    selector,
    page,
    matched,
    items,
    p50: percentile(times, 50),
    p95: percentile(times, 95),
    max: Math.max(...times),
  };
}

/** The selectors above in SQL, only to count what each matches (the API's own SQL is what is timed). */
function selectorWhere(selector: string): string {
  if (selector === '') return 'TRUE';
  return selector
    .split(/,(?![^(]*\))/)
    .map((term) => {
      const inList = /^(\w+) in \((.*)\)$/.exec(term);
      if (inList)
        return `labels->>'${inList[1]}' IN (${inList[2]!
          .split(',')
          .map((v) => `'${v}'`)
          .join(',')})`;
      const notEqual = /^(\w+)!=(.*)$/.exec(term);
      if (notEqual) return `labels->>'${notEqual[1]}' IS DISTINCT FROM '${notEqual[2]}'`;
      const equal = /^(\w+)=(.*)$/.exec(term);
      if (equal) return `labels->>'${equal[1]}' = '${equal[2]}'`;
      if (term.startsWith('!')) return `NOT labels ? '${term.slice(1)}'`;
      return `labels ? '${term}'`;
    })
    .join(' AND ');
}

// plan -----------------------------------------------------------------------------------------

const strategy = (batches: (number | string)[]) => ({
  verb: 'restart',
  unit: UNIT,
  selector: TARGET_SELECTOR,
  batches: { sizes: batches },
  maxFailures: 0,
  healthGate: { minHealthyTimeMs: 0 },
});

interface PlanResult {
  hosts: number;
  batches: number;
  bytes: number;
  p50: number;
  p95: number;
  max: number;
  apiCpuPerRun: number;
}

async function measurePlan(drover: Drover, runs: number): Promise<PlanResult> {
  const body = strategy([1, '10%']);
  const plan = () =>
    fetch(`${drover.url}/v1/rollouts/plan`, {
      method: 'POST',
      headers: { authorization: `Bearer ${drover.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).then(async (response) => {
      const text = await response.text();
      if (response.status !== 200) throw new Error(`plan: ${response.status} ${text.slice(0, 500)}`);
      return text;
    });
  for (let i = 0; i < 2; i += 1) await plan();
  const times: number[] = [];
  let text = '';
  const cpu = cpuOf(drover);
  for (let i = 0; i < runs; i += 1) {
    const { ms: took, value } = await timed(plan);
    times.push(took);
    text = value;
  }
  const apiCpu = cpuOf(drover).api - cpu.api;
  const parsed = JSON.parse(text) as { ok: boolean; total: number; batches: unknown[]; problems: string[] };
  if (!parsed.ok) fail(`the plan is not ok: ${parsed.problems.join('; ')}`);
  return {
    hosts: parsed.total,
    batches: parsed.batches.length,
    bytes: text.length,
    p50: percentile(times, 50),
    p95: percentile(times, 95),
    max: Math.max(...times),
    apiCpuPerRun: apiCpu / runs,
  };
}

// dispatch and settle ----------------------------------------------------------------------------

interface SettleResult {
  what: string;
  tasks: number;
  wallSeconds: number;
  workerCpu: number;
  apiCpu: number;
  /** Worker CPU until both queues are idle again (the post-action discoveries included). */
  workerCpuUntilIdle: number;
  states: Record<string, number>;
  sameMainPid: number;
  load: string;
}

/** Polls the database (not the API: reading 10,000 tasks over HTTP would load what is measured). */
async function waitFor(db: PgClient, sql: string, id: string): Promise<{ status: string; seconds: number }> {
  const deadline = Date.now() + 20 * START_TIMEOUT_MS;
  for (;;) {
    const { rows } = await db.query<{ status: string; seconds: number | null }>(sql, [id]);
    const found = rows[0];
    if (found && found.seconds !== null) return { status: found.status, seconds: found.seconds };
    if (Date.now() > deadline) fail(`${id} did not finish: ${found?.status ?? 'missing'}`);
    await sleep(50);
  }
}

async function idle(queues: Queue[]): Promise<void> {
  const deadline = Date.now() + 20 * START_TIMEOUT_MS;
  for (;;) {
    const counts = await Promise.all(
      queues.map(async (queue) => {
        const { delayed = 0, ...now } = await queue.getJobCounts('wait', 'active', 'prioritized', 'delayed');
        // The periodic jobs' schedulers each keep their next run delayed: those never end.
        return { ...now, delayed: delayed - (await queue.getJobSchedulersCount()) };
      }),
    );
    if (counts.every((count) => Object.values(count).every((n) => n <= 0))) return;
    if (Date.now() > deadline) fail(`the queues are still busy: ${JSON.stringify(counts)}`);
    await sleep(100);
  }
}

async function settle(
  drover: Drover,
  queues: Queue[],
  what: string,
  start: () => Promise<string>,
  finished: string,
  taskFilter: string,
): Promise<SettleResult> {
  const load = loadAverage();
  const cpu = cpuOf(drover);
  const id = await start();
  const done = await waitFor(drover.db, finished, id);
  const after = cpuOf(drover);
  await idle(queues);
  const afterIdle = cpuOf(drover);
  const { rows: states } = await drover.db.query<{ state: string; count: string }>(
    `SELECT state::text, count(*) FROM tasks t WHERE ${taskFilter} GROUP BY state`,
    [id],
  );
  // A restart is verified on the host by a new MainPID: the simulated host gives one, and the
  // task must have seen it.
  const { rows: same } = await drover.db.query<{ count: string }>(
    `SELECT count(*) FROM tasks t WHERE ${taskFilter}
       AND (t.after IS NULL OR t.before IS NULL OR t.after->'mainPid' = t.before->'mainPid')`,
    [id],
  );
  const result: SettleResult = {
    what,
    tasks: states.reduce((sum, state) => sum + Number(state.count), 0),
    wallSeconds: done.seconds,
    workerCpu: after.worker - cpu.worker,
    apiCpu: after.api - cpu.api,
    workerCpuUntilIdle: afterIdle.worker - cpu.worker,
    states: Object.fromEntries(states.map((state) => [state.state, Number(state.count)])),
    sameMainPid: Number(same[0]!.count),
    load,
  };
  progress(
    `${what}: ${done.status}, ${int(result.tasks)} tasks in ${result.wallSeconds.toFixed(2)} s, ` +
      `worker ${result.workerCpu.toFixed(2)} CPU-s (${int(result.tasks / result.workerCpu)} tasks per CPU-s)`,
  );
  if (result.states.succeeded !== result.tasks)
    fail(`${what}: not every task succeeded: ${JSON.stringify(result.states)}`);
  if (result.sameMainPid !== 0) fail(`${what}: ${result.sameMainPid} tasks did not see a new MainPID`);
  return result;
}

async function measureOperation(drover: Drover, queues: Queue[]): Promise<SettleResult> {
  return settle(
    drover,
    queues,
    'operation (restart, concurrency = all hosts)',
    async () =>
      (
        await call<{ id: string }>(
          drover,
          'POST',
          '/v1/operations',
          { verb: 'restart', unit: UNIT, selector: TARGET_SELECTOR },
          202,
        )
      ).id,
    `SELECT status::text AS status, EXTRACT(EPOCH FROM finished_at - created_at)::float8 AS seconds
       FROM operations WHERE id = $1::uuid`,
    't.operation_id = $1::uuid',
  );
}

async function measureRollout(drover: Drover, queues: Queue[], batches: (number | string)[]): Promise<SettleResult> {
  return settle(
    drover,
    queues,
    `rollout (restart, batches ${JSON.stringify(batches)}, no probes, minHealthyTimeMs 0)`,
    async () => (await call<{ id: string }>(drover, 'POST', '/v1/rollouts', strategy(batches), 201)).id,
    `SELECT status::text AS status, EXTRACT(EPOCH FROM finished_at - created_at)::float8 AS seconds
       FROM rollouts WHERE id = $1::uuid`,
    't.operation_id IN (SELECT id FROM operations WHERE rollout_id = $1::uuid)',
  );
}

// ---------------------------------------------------------------------------------------------

runBenchmark('control-plane', async (teardown: Teardown) => {
  const options = parseOptions(process.argv.slice(2));
  await ensureServices();
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'drover-bench-control-plane-'));
  let succeeded = false;
  teardown.add('removing the logs of a successful run', async () => {
    if (succeeded) await rm(workDir, { recursive: true, force: true });
    else progress(`logs kept in ${workDir}`);
  });
  const drover = await startDrover(
    [],
    {
      database: DATABASE,
      queuePrefix: QUEUE_PREFIX,
      port: PORT,
      workDir,
      workerScript: 'dist/bench/control-plane-worker.js',
      profileDir: options.cpuProf,
    },
    teardown,
  );
  const queues = [QueueName.Lifecycle, QueueName.Background].map(
    (name) => new Queue(name, { connection: { url: REDIS_URL }, prefix: QUEUE_PREFIX }),
  );
  teardown.add('closing the queues', () => Promise.all(queues.map((queue) => queue.close())).then(() => undefined));
  const env = { ...(await drover.db.query<{ v: string }>(`SELECT current_setting('shared_buffers') AS v`)).rows[0] };
  const seedSeconds = await seed(drover.db, options.hosts);
  progress(
    `seeded ${int(options.hosts)} hosts and ${int(options.hosts * UNITS.length)} units in ${seedSeconds.toFixed(1)} s`,
  );
  const idleMemory = { api: rssBytes(drover.api.pid!), worker: rssBytes(drover.worker.pid!) };

  let watch = new MemoryWatch(drover);
  const listLoad = loadAverage();
  const list = await measureList(drover, options.listRuns);
  const listMemory = watch.stop();

  watch = new MemoryWatch(drover);
  const planLoad = loadAverage();
  const plan = await measurePlan(drover, options.planRuns);
  const planMemory = watch.stop();
  progress(`plan over ${int(plan.hosts)} hosts: p50 ${ms(plan.p50)} ms, p95 ${ms(plan.p95)} ms`);

  watch = new MemoryWatch(drover);
  const operation = await measureOperation(drover, queues);
  const operationMemory = watch.stop();
  // systemd's start limit (5 starts in 10 s) holds on the simulated hosts too: the next restart
  // of the same units waits until the operation's starts are 10 s old rather than queue behind it.
  await sleep(10_000);
  watch = new MemoryWatch(drover);
  const rollout = await measureRollout(drover, queues, [1, 2_500]);
  const rolloutMemory = watch.stop();

  const verification = await call<{ ok: boolean; checked: number; firstBroken: unknown }>(
    drover,
    'GET',
    '/v1/audit/verify',
    undefined,
    200,
  );
  if (!verification.ok) fail(`the audit chain does not verify: ${JSON.stringify(verification.firstBroken)}`);

  const settled = [operation, rollout];
  const listWorst = Math.max(...list.map((entry) => entry.p95));
  const report = [
    '# Control plane at 100,000 hosts',
    '',
    `Run on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC with \`npm run bench:control-plane\` ` +
      '(bench/control-plane.ts). Issue 15, item 4: drover without its hosts — the API over HTTP with a token, the ' +
      'worker (its real queue consumers, task runner, dispatcher and rollout runner) with its SSH executor replaced ' +
      'by a simulated fleet whose hosts answer at once (`bench/lib/simulated-fleet.ts`, the unit action specs’ ' +
      '`FakeHost`), real PostgreSQL and Redis.',
    '',
    '## Machine',
    '',
    ...(await machine(drover.db)),
    `- PostgreSQL shared_buffers ${env.v ?? '?'}; the worker: WORKER_CONCURRENCY 64, DATABASE_POOL_SIZE 20 (the benchmarks' defaults)`,
    '- 2 cores shared with other people’s benchmarks and tests: load averages (1/5/15 min) are given per part; CPU-seconds matter more than wall time.',
    '',
    '## Goals',
    '',
    '| goal | measured | verdict |',
    '|---|---|---|',
    ...settled.map(
      (entry) =>
        `| dispatch + settle ≥ ${int(GOALS.tasksPerCpuSecond)} tasks per worker CPU-second: ${entry.what} | ${int(entry.tasks / entry.workerCpu)} tasks/CPU-s (${int(entry.tasks / entry.wallSeconds)} tasks/s wall) | ${met(entry.tasks / entry.workerCpu >= GOALS.tasksPerCpuSecond)} |`,
    ),
    `| plan a rollout over ${int(plan.hosts)} hosts in < 1 s | p95 ${ms(plan.p95)} ms | ${met(plan.p95 < GOALS.planP95Ms)} |`,
    `| list hosts by selector over ${int(options.hosts)} hosts, p95 < 50 ms | worst p95 ${ms(listWorst)} ms | ${met(listWorst < GOALS.listP95Ms)} |`,
    '',
    '## Seed',
    '',
    `${int(options.hosts)} hosts (labels role web 40% / api 25% / worker 15% / db 10% / cache 10%, env prod 70% / ` +
      'staging 20% / dev 10%, six regions from 35% to 4%, 40 hosts per rack, ten equal cells, 2% canary) and ' +
      `${int(options.hosts * UNITS.length)} units rows (${UNITS.join(', ')}; 1% of nginx failed), by SQL in ` +
      `${seedSeconds.toFixed(1)} s. Targets of the plan, the operation and the rollout: \`${TARGET_SELECTOR}\` ` +
      `(${int(options.hosts / 10)} hosts).`,
    '',
    '## Dispatch and settle',
    '',
    'Restart of nginx.service on every target host; wall time from the row’s created_at to its finished_at ' +
      '(database clock); CPU-seconds are utime + stime from /proc over the same span (until the finished row ' +
      'was seen, polled every 50 ms). "until idle" adds the post-action discoveries of the operation’s hosts, ' +
      'which the simulated hosts refuse (their listings are not modelled), so that column is a lower bound.',
    '',
    '| run | tasks | wall s | tasks/s | worker CPU-s | tasks per worker CPU-s | worker CPU-s until idle | API CPU-s | load |',
    '|---|--:|--:|--:|--:|--:|--:|--:|---|',
    ...settled.map(
      (entry) =>
        `| ${entry.what} | ${int(entry.tasks)} | ${entry.wallSeconds.toFixed(2)} | ${int(entry.tasks / entry.wallSeconds)} | ${entry.workerCpu.toFixed(2)} | ${int(entry.tasks / entry.workerCpu)} | ${entry.workerCpuUntilIdle.toFixed(2)} | ${entry.apiCpu.toFixed(2)} | ${entry.load} |`,
    ),
    '',
    `Every task succeeded and saw a new MainPID; the audit chain verifies (${int(verification.checked)} events checked).`,
    '',
    '## Plan',
    '',
    `\`POST /v1/rollouts/plan\` restarting ${UNIT} on \`${TARGET_SELECTOR}\`, batches [1, "10%"]: ${int(plan.hosts)} ` +
      `hosts in ${plan.batches} batches, ${int(plan.bytes / 1024)} KiB of JSON; ${options.planRuns} runs after 2 ` +
      `unmeasured, one after the other. Load ${planLoad}.`,
    '',
    '| p50 ms | p95 ms | max ms | API CPU-s per plan |',
    '|--:|--:|--:|--:|',
    `| ${ms(plan.p50)} | ${ms(plan.p95)} | ${ms(plan.max)} | ${plan.apiCpuPerRun.toFixed(3)} |`,
    '',
    '## List',
    '',
    `\`GET /v1/hosts?selector=…\` over ${int(options.hosts)} hosts, measured at the client (HTTP included): the ` +
      `first page ${options.listRuns} times after 3 unmeasured, and up to ${options.listRuns} pages walked with the ` +
      `cursor. Load ${listLoad}.`,
    '',
    '| selector | page | hosts matched | items | p50 ms | p95 ms | max ms |',
    '|---|---|--:|--:|--:|--:|--:|',
    ...list.map(
      (entry) =>
        `| \`${entry.selector === '' ? '(all)' : entry.selector}\` | ${entry.page} | ${int(entry.matched)} | ${entry.items} | ${ms(entry.p50)} | ${ms(entry.p95)} | ${ms(entry.max)} |`,
    ),
    '',
    '## Memory',
    '',
    'Peak resident memory (VmRSS sampled every 50 ms) of each process during each part; idle is after start-up and the seed.',
    '',
    '| part | API | worker |',
    '|---|--:|--:|',
    `| idle | ${mib(idleMemory.api)} | ${mib(idleMemory.worker)} |`,
    `| list | ${mib(listMemory.api)} | ${mib(listMemory.worker)} |`,
    `| plan | ${mib(planMemory.api)} | ${mib(planMemory.worker)} |`,
    `| operation | ${mib(operationMemory.api)} | ${mib(operationMemory.worker)} |`,
    `| rollout | ${mib(rolloutMemory.api)} | ${mib(rolloutMemory.worker)} |`,
    '',
  ];
  await writeReport(report.join('\n'), options.out);
  succeeded = true;
});

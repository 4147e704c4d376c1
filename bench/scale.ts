/**
 * The scale benchmark (issue 15) on real systemd hosts (test/fleet/fleet.sh), four parts in one run
 * and one report, each figure side by side with the bare ssh2 script on the same hosts:
 *
 *   fanout         restart drover-probe.service on N hosts (--hosts: 200 and 400) with one operation,
 *                  all at once: drover cold (its worker just started: no pooled connection), drover warm
 *                  (its pool open from the run before), bare ssh2 cold (a new connection per host, at
 *                  most --connect-parallel handshakes at once) and bare ssh2 warm (connections opened
 *                  before the clock starts); the order rotates every round. Goal: drover within 1.3×
 *                  of the bare script, cold against cold and warm against warm.
 *   first-task     while --discoveries discoveries wait in the background lane (hosts that never answer,
 *                  each waiting out its connect timeout, and every host of the fleet), operations
 *                  restarting the probe on one host: from the operation's creation to its task's start,
 *                  both PostgreSQL's clock; with one worker consuming both lanes, then with a worker per
 *                  lane (WORKER_LANES). Goal: within 100 ms.
 *   first-rollout  a rolling restart (batches 1, then 25 %) of --rollout-hosts hosts by a worker that
 *                  has just started, against the bare script running the same batches after
 *                  connecting. Goal: within 1.5×.
 *   workers        the restart on the largest N again with 1, 2 and 4 workers (--workers) sharing one
 *                  Redis: wall time and tasks per second.
 *
 * After every drover or bare run, inside every host it acted on (nsenter, no SSH): a new MainPID and
 * exactly one more start recorded by the probe.
 *
 *   npm run bench:scale                     # build, boot 400 hosts, every part, tear down
 *   DROVER_FLEET_STATE=/var/lib/drover-fleet/scale node dist/bench/scale.js --keep-fleet
 *   node dist/bench/scale.js --hosts 20,40 --runs 1 --rollout-hosts 20 --out /tmp/scale.md   # quicker
 *
 * Options: --hosts N[,N...] (200,400), --runs R (3 timed rounds after a warm-up), --connect-parallel P
 * (50), --discoveries D (5000), --first-tasks K (10), --rollout-hosts H (50), --workers W[,W...]
 * (1,2,4), --worker-concurrency C (the product's default), --parts fanout,first-task,first-rollout,workers
 * (all), --keep-fleet, --out FILE
 * (bench/results/scale.md), --cpu-prof DIR (V8 CPU profiles of drover's API and every worker). DROVER_FLEET_STATE and DROVER_FLEET_BOOT_PARALLEL are fleet.sh's.
 */
import { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { JobName, QueueName } from '@drover/protocol';
import { parseConfig } from '../src/config/config.schema';
import {
  call,
  droverPids,
  Drover,
  ensureServices,
  finishedEvent,
  machine,
  REDIS_URL,
  Rollout,
  startDrover,
  startWorker,
  waitForIdleQueues,
} from './lib/drover';
import {
  bareSsh2ColdRun,
  COLD_HANDSHAKE_TIMEOUT_MS,
  connectAll,
  Measured,
  operationRun,
  PROBE_UNIT,
  probeStates,
  restartOver,
  restartProblems,
  subsetLabel,
  subsetLabels,
} from './lib/fanout';
import { FLEET_KEY, FleetHost, FleetInstance, provideFleet, readFleetInstance, readInventory } from './lib/fleet';
import {
  cpuSeconds,
  fail,
  mib,
  peakRssBytes,
  partList,
  positiveInteger,
  positiveIntegers,
  progress,
  ROOT,
  runBenchmark,
  secs,
  stats,
  stopProcess,
  Teardown,
  writeReport,
} from './lib/harness';

const DEFAULT_OUT = path.join(ROOT, 'bench/results/scale.md');
/** What drover runs with when nothing is set (the benchmark measures the product as shipped). */
const PRODUCT_DEFAULTS = parseConfig({ DATABASE_URL: 'postgresql://unused', REDIS_URL: 'redis://unused' });
const DROVER = { database: 'drover_bench_scale', queuePrefix: 'drover-bench-scale', port: 8098 };
/** The pause before every run, so no contender runs in the aftermath of the one before. */
const QUIET_MS = 2_000;
const FANOUT_GOAL = 1.3;
const FIRST_TASK_GOAL_MS = 100;
const FIRST_ROLLOUT_GOAL = 1.5;
const FIRST_TASK_POLL_MS = 20;
/** Idle before each operation of the after-quiet part: longer than node-postgres' 10 s idle timeout. */
const AFTER_QUIET_MS = 15_000;
/** A label naming each host, so that one selector picks one host. */
const HOST_LABEL = 'bench-host';

const FANOUT_CONTENDERS = ['drover-cold', 'drover-warm', 'ssh2-cold', 'ssh2-warm'] as const;
type FanoutContender = (typeof FANOUT_CONTENDERS)[number];
const TITLES: Record<FanoutContender, string> = {
  'drover-cold': 'drover, cold',
  'drover-warm': 'drover, warm',
  'ssh2-cold': 'bare ssh2, cold',
  'ssh2-warm': 'bare ssh2, warm',
};
const PARTS = ['fanout', 'first-task', 'after-quiet', 'first-rollout', 'workers'] as const;
type Part = (typeof PARTS)[number];

interface Options {
  sizes: number[];
  runs: number;
  connectParallel: number;
  discoveries: number;
  firstTasks: number;
  quietTasks: number;
  rolloutHosts: number;
  workers: number[];
  /** WORKER_CONCURRENCY of every worker (the product's default unless told). */
  workerConcurrency: number;
  parts: readonly Part[];
  keepFleet: boolean;
  out: string;
  /** A directory for V8 CPU profiles of drover's API and workers, or null. */
  cpuProf: string | null;
}

function parseOptions(argv: string[]): Options {
  const text = { type: 'string' } as const;
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      hosts: text,
      runs: text,
      'connect-parallel': text,
      discoveries: text,
      'first-tasks': text,
      'quiet-tasks': text,
      'rollout-hosts': text,
      workers: text,
      'worker-concurrency': text,
      parts: text,
      'keep-fleet': { type: 'boolean' },
      out: text,
      'cpu-prof': text,
    },
  });
  const count = (name: keyof typeof values, fallback: number) =>
    values[name] === undefined ? fallback : positiveInteger(`--${name}`, String(values[name]));
  const options: Options = {
    sizes: values.hosts === undefined ? [200, 400] : positiveIntegers('--hosts', values.hosts),
    runs: count('runs', 3),
    connectParallel: count('connect-parallel', 50),
    discoveries: count('discoveries', 5_000),
    firstTasks: count('first-tasks', 10),
    quietTasks: count('quiet-tasks', 5),
    rolloutHosts: count('rollout-hosts', 50),
    workers: values.workers === undefined ? [1, 2, 4] : positiveIntegers('--workers', values.workers),
    workerConcurrency: count('worker-concurrency', PRODUCT_DEFAULTS.WORKER_CONCURRENCY),
    parts: values.parts === undefined ? PARTS : partList(PARTS, values.parts),
    keepFleet: values['keep-fleet'] ?? false,
    out: path.resolve(values.out ?? DEFAULT_OUT),
    cpuProf: values['cpu-prof'] === undefined ? null : path.resolve(values['cpu-prof']),
  };
  if (Math.max(...options.sizes, options.rolloutHosts) > 1_000)
    fail('--hosts must be at most 1000 (the most fleet.sh boots)');
  return options;
}

/** The run's drover and what the parts share: its hosts, the fleet, the key, where logs go. */
interface Bench {
  drover: Drover;
  hosts: FleetHost[];
  fleet: FleetInstance;
  privateKey: Buffer;
  workDir: string;
  teardown: Teardown;
  /** Workers started so far, for the names of their logs. */
  workerStarts: number;
}

/** Replaces drover's worker with a new process: no pooled connection, nothing warmed up. */
/** Replaces the worker with a new one, with `env` on top of drover's settings. */
async function restartWorker(bench: Bench, env: Record<string, string> = {}): Promise<void> {
  await stopProcess(bench.drover.worker);
  bench.workerStarts += 1;
  bench.drover.worker = await startWorker(
    { ...bench.drover, env: { ...bench.drover.env, ...env } },
    path.join(bench.workDir, `worker-${bench.workerStarts}.log`),
    bench.teardown,
  );
}

/** Runs `act` on `hosts` and checks on each that the probe restarted exactly once. */
async function checked<T>(bench: Bench, hosts: FleetHost[], what: string, act: () => Promise<T>): Promise<T> {
  await sleep(QUIET_MS);
  const before = await probeStates(bench.fleet, hosts);
  const result = await act();
  const problems = restartProblems(before, await probeStates(bench.fleet, hosts));
  if (problems.length > 0) throw new Error(`${what}: ${problems.length} problems: ${problems.slice(0, 5).join('; ')}`);
  return result;
}

const loadList = (loads: number[]): string => loads.map((load) => load.toFixed(1)).join(', ');

// ---------------------------------------------------------------------------------------------
// fanout

interface FanoutRecord extends Measured {
  contender: FanoutContender;
  size: number;
  round: number;
  load: number;
}

async function bareSsh2WarmRun(bench: Bench, hosts: FleetHost[]): Promise<Measured> {
  const clients = await connectAll(hosts, bench.privateKey, bench.hosts.length);
  try {
    const cpuBefore = cpuSeconds('self');
    const started = performance.now();
    await restartOver(hosts, clients);
    return {
      seconds: (performance.now() - started) / 1000,
      cpuSeconds: cpuSeconds('self') - cpuBefore,
      operationId: null,
    };
  } finally {
    for (const client of clients) client.end();
  }
}

async function fanoutPart(bench: Bench, options: Options): Promise<FanoutRecord[]> {
  const records: FanoutRecord[] = [];
  for (const size of options.sizes) {
    const hosts = bench.hosts.slice(0, size);
    const selector = `${subsetLabel(size)}=yes`;
    const contenders: Record<FanoutContender, () => Promise<Measured>> = {
      'drover-cold': async () => {
        await restartWorker(bench);
        return operationRun(bench.drover, selector, size, droverPids(bench.drover));
      },
      'drover-warm': () => operationRun(bench.drover, selector, size, droverPids(bench.drover)),
      'ssh2-cold': () => bareSsh2ColdRun(hosts, bench.privateKey, options.connectParallel),
      'ssh2-warm': () => bareSsh2WarmRun(bench, hosts),
    };
    for (let round = 0; round <= options.runs; round += 1) {
      const label = `N=${size} ${round === 0 ? 'warm-up' : `round ${round}`}`;
      for (let i = 0; i < FANOUT_CONTENDERS.length; i += 1) {
        // Rotated, but drover warm never first in the warm-up: its connections come from a run before.
        const contender = FANOUT_CONTENDERS[(round + i) % FANOUT_CONTENDERS.length]!;
        const load = os.loadavg()[0]!;
        const measured = await checked(bench, hosts, `${label}, ${contender}`, contenders[contender]);
        records.push({ contender, size, round, load, ...measured });
        progress(`${label}: ${TITLES[contender]} ${secs(measured.seconds)} s (CPU ${secs(measured.cpuSeconds)} s)`);
      }
    }
  }
  return records;
}

function fanoutSection(options: Options, records: FanoutRecord[]): string[] {
  const lines = ['## Fan-out: one restart on N hosts at once', ''];
  for (const size of options.sizes) {
    const of = (contender: FanoutContender) =>
      records.filter((record) => record.size === size && record.contender === contender && record.round > 0);
    const wall = (contender: FanoutContender) => stats(of(contender).map((record) => record.seconds));
    const cpu = (contender: FanoutContender) => stats(of(contender).map((record) => record.cpuSeconds)).median;
    const warmup = (contender: FanoutContender) =>
      records.find((record) => record.size === size && record.contender === contender && record.round === 0)!;
    const ratio = (ours: FanoutContender, theirs: FanoutContender) => wall(ours).median / wall(theirs).median;
    const verdict = (value: number) => `**${value.toFixed(2)}×**: ${value <= FANOUT_GOAL ? 'met' : 'not met'}`;
    lines.push(
      `### ${size} hosts`,
      '',
      '| contender | median s | min s | max s | warm-up s | CPU s per run (median) |',
      '|---|--:|--:|--:|--:|--:|',
      ...FANOUT_CONTENDERS.map((contender) => {
        const w = wall(contender);
        return `| ${TITLES[contender]} | ${secs(w.median)} | ${secs(w.min)} | ${secs(w.max)} | ${secs(warmup(contender).seconds)} | ${secs(cpu(contender))} |`;
      }),
      '',
      `- cold: drover / bare ssh2 ${verdict(ratio('drover-cold', 'ssh2-cold'))} (goal ≤ ${FANOUT_GOAL}×)`,
      `- warm: drover / bare ssh2 ${verdict(ratio('drover-warm', 'ssh2-warm'))} (goal ≤ ${FANOUT_GOAL}×)`,
      `- load average (1 min) as the timed runs began: ${loadList(
        records.filter((record) => record.size === size && record.round > 0).map((record) => record.load),
      )}`,
      '',
    );
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// first-task

/** How the worker side is laid out while the first tasks are measured. */
const FIRST_TASK_SETUPS = ['one worker', 'a worker per lane'] as const;
type FirstTaskSetup = (typeof FIRST_TASK_SETUPS)[number];

interface FirstTaskRecord {
  setup: FirstTaskSetup;
  queuedAtStart: number;
  queuedAtEnd: number;
  /** From the operation's creation to its task's start, PostgreSQL's clock. */
  startMs: number[];
  /** From the POST to the task seen running or ended, this process's clock. */
  observedMs: number[];
  loads: number[];
}

/**
 * Hosts nobody answers for, on the fleet's network: each discovery waits out its connect timeout.
 * They need a pinned key (any: it is never presented), or their discoveries would fail at once.
 */
function silentHosts(bench: Bench, count: number): Omit<FleetHost, 'port' | 'sshUser'>[] {
  const [a, b] = bench.hosts[0]!.address.split('.');
  return Array.from({ length: count }, (_, index) => ({
    name: `silent-${index}`,
    address: `${a}.${b}.254.${(index % 250) + 1}`,
    hostKeyFingerprint: bench.hosts[0]!.hostKeyFingerprint,
    labels: { scale: 'silent' },
  }));
}

/**
 * Starts the setup's workers, new (no pooled connection, nothing warmed up): drover's one worker
 * consuming both lanes, or one consuming only `lifecycle` and another only `background`
 * (WORKER_LANES), so discoveries run on an event loop of their own.
 */
async function startFirstTaskWorkers(bench: Bench, setup: FirstTaskSetup, teardown: Teardown): Promise<void> {
  if (setup === 'one worker') return restartWorker(bench);
  const laneWorker = async (lane: QueueName, into: Teardown) => {
    bench.workerStarts += 1;
    const log = path.join(bench.workDir, `worker-${bench.workerStarts}-${lane}.log`);
    return startWorker({ ...bench.drover, env: { ...bench.drover.env, WORKER_LANES: lane } }, log, into);
  };
  await stopProcess(bench.drover.worker);
  bench.drover.worker = await laneWorker(QueueName.Lifecycle, bench.teardown);
  const discoverer = await laneWorker(QueueName.Background, teardown);
  // Also on the run's own teardown: a SIGINT or SIGTERM ends the run without this part's.
  bench.teardown.add('stopping the background-lane worker', () => stopProcess(discoverer));
}

async function firstTasks(
  bench: Bench,
  options: Options,
  setup: FirstTaskSetup,
  hostIds: string[],
  background: Queue,
): Promise<FirstTaskRecord> {
  const { drover } = bench;
  const teardown = new Teardown();
  try {
    await startFirstTaskWorkers(bench, setup, teardown);
    // As the producer queues them (one per host, deduplicated by host): silent hosts wait out their
    // connect timeout, the fleet's hosts list their units.
    await background.addBulk(
      hostIds.map((id) => ({
        name: JobName.DiscoverHost,
        data: { hostId: id },
        opts: { deduplication: { id: `discover-${id}` }, removeOnComplete: true, removeOnFail: true },
      })),
    );
    const queuedAtStart = await background.getWaitingCount();
    progress(`first-task, ${setup}: ${queuedAtStart} discoveries waiting in the background lane`);
    const record: FirstTaskRecord = { setup, queuedAtStart, queuedAtEnd: 0, startMs: [], observedMs: [], loads: [] };
    for (let run = 0; run < options.firstTasks; run += 1) {
      const host = bench.hosts[run % bench.hosts.length]!;
      record.loads.push(os.loadavg()[0]!);
      await checked(bench, [host], `first task ${run + 1} (${setup})`, async () => {
        const started = performance.now();
        const created = await call<{ id: string }>(
          drover,
          'POST',
          '/v1/operations',
          { verb: 'restart', unit: PROBE_UNIT, selector: `${HOST_LABEL}=${host.name}` },
          202,
        );
        for (;;) {
          const { rows: tasks } = await drover.db.query<{ ms: number | null; state: string; finished: boolean }>(
            `SELECT (EXTRACT(EPOCH FROM t.started_at - o.created_at) * 1000)::float8 AS ms, t.state::text AS state,
                    t.finished_at IS NOT NULL AS finished
             FROM tasks t JOIN operations o ON o.id = t.operation_id WHERE o.id = $1::uuid`,
            [created.id],
          );
          const task = tasks[0];
          if (task?.ms !== null && task?.ms !== undefined && record.observedMs.length === run) {
            record.observedMs.push(performance.now() - started);
            record.startMs.push(task.ms);
          }
          if (task?.finished) {
            if (task.state !== 'succeeded') throw new Error(`first task ${run + 1} on ${host.name}: ${task.state}`);
            break;
          }
          await sleep(FIRST_TASK_POLL_MS);
        }
      });
      progress(
        `first-task ${run + 1}, ${setup}: started ${record.startMs[run]!.toFixed(0)} ms after the operation's creation`,
      );
    }
    record.queuedAtEnd = await background.getWaitingCount();
    return record;
  } finally {
    await background.obliterate({ force: true });
    await teardown.run();
  }
}

/** Every setup in turn, each with new workers and the same discoveries queued. */
async function firstTaskPart(bench: Bench, options: Options): Promise<FirstTaskRecord[]> {
  const silent = silentHosts(bench, Math.max(0, options.discoveries - bench.hosts.length));
  for (let offset = 0; offset < silent.length; offset += 1_000) {
    await call(bench.drover, 'POST', '/v1/hosts/bulk-upsert', { hosts: silent.slice(offset, offset + 1_000) }, 200);
  }
  const { rows } = await bench.drover.db.query<{ id: string }>('SELECT id::text FROM hosts ORDER BY name');
  const background = new Queue(QueueName.Background, { connection: { url: REDIS_URL }, prefix: DROVER.queuePrefix });
  try {
    const records: FirstTaskRecord[] = [];
    for (const setup of FIRST_TASK_SETUPS) {
      records.push(
        await firstTasks(
          bench,
          options,
          setup,
          rows.map(({ id }) => id),
          background,
        ),
      );
    }
    return records;
  } finally {
    await background.close();
    await bench.drover.db.query(`DELETE FROM hosts WHERE name LIKE 'silent-%'`);
    // The parts after this one run with drover's usual worker, consuming both lanes.
    await restartWorker(bench);
  }
}

function firstTaskSection(options: Options, records: FirstTaskRecord[]): string[] {
  const rows = records.flatMap((record) => {
    const start = stats(record.startMs);
    const observed = stats(record.observedMs);
    return [
      `| ${record.setup} | PostgreSQL’s clock (created_at → started_at) | ${start.median.toFixed(0)} | ${start.min.toFixed(0)} | ${start.max.toFixed(0)} |`,
      `| ${record.setup} | seen by the caller (POST → task started, polled every ${FIRST_TASK_POLL_MS} ms) | ${observed.median.toFixed(0)} | ${observed.min.toFixed(0)} | ${observed.max.toFixed(0)} |`,
    ];
  });
  return [
    '## First task while discoveries are queued',
    '',
    `${options.firstTasks} operations, one after another, each restarting the probe on one host, while ` +
      `${records[0]?.queuedAtStart ?? 0} discoveries waited in the background lane; first with drover's one worker ` +
      'consuming both lanes, then with a worker per lane (`WORKER_LANES=lifecycle` and `WORKER_LANES=background`), ' +
      'each setup with workers just started and the same discoveries queued again. Still waiting after the last: ' +
      records.map((record) => `${record.queuedAtEnd} (${record.setup})`).join(', ') +
      '.',
    '',
    '| workers | from the operation’s creation to its task’s start | median ms | min ms | max ms |',
    '|---|---|--:|--:|--:|',
    ...rows,
    '',
    ...records.map((record) => {
      const slowest = Math.max(...record.startMs);
      return (
        `- goal, the first task within ${FIRST_TASK_GOAL_MS} ms of the operation's creation (the slowest of the runs), ` +
        `${record.setup}: **${slowest.toFixed(0)} ms: ${slowest <= FIRST_TASK_GOAL_MS ? 'met' : 'not met'}**; ` +
        `load average (1 min) as each began: ${loadList(record.loads)}`
      );
    }),
    '',
  ];
}

// ---------------------------------------------------------------------------------------------
// after-quiet

/** The worker's database pool while the after-quiet part measures (DATABASE_POOL_MIN). */
const AFTER_QUIET_SETUPS = ['no connection kept', 'connections kept'] as const;
type AfterQuietSetup = (typeof AFTER_QUIET_SETUPS)[number];
const AFTER_QUIET_POOL_MIN: Record<AfterQuietSetup, string> = {
  'no connection kept': '0',
  'connections kept': String(PRODUCT_DEFAULTS.DATABASE_POOL_MIN),
};

interface AfterQuietRecord {
  setup: AfterQuietSetup;
  /** created_at → dispatched_at: the API's share. */
  apiMs: number[];
  /** dispatched_at → started_at: the worker's share. */
  workerMs: number[];
  loads: number[];
}

/**
 * The first task after drover sat idle for a while, as a deploy pipeline calling now and then
 * meets it: with a worker that lets every idle database connection close (DATABASE_POOL_MIN=0,
 * node-postgres' behaviour), and with the product's default, which keeps some open.
 */
async function afterQuietPart(bench: Bench, options: Options): Promise<AfterQuietRecord[]> {
  const records: AfterQuietRecord[] = [];
  try {
    for (const setup of AFTER_QUIET_SETUPS) {
      await restartWorker(bench, { DATABASE_POOL_MIN: AFTER_QUIET_POOL_MIN[setup] });
      const record: AfterQuietRecord = { setup, apiMs: [], workerMs: [], loads: [] };
      for (let run = 0; run < options.quietTasks; run += 1) {
        const host = bench.hosts[run % bench.hosts.length]!;
        await sleep(AFTER_QUIET_MS);
        record.loads.push(os.loadavg()[0]!);
        const created = await checked(bench, [host], `after-quiet task ${run + 1} (${setup})`, async () => {
          const operation = await call<{ id: string }>(
            bench.drover,
            'POST',
            '/v1/operations',
            { verb: 'restart', unit: PROBE_UNIT, selector: `${HOST_LABEL}=${host.name}` },
            202,
          );
          await untilOperationFinished(bench, operation.id);
          return operation;
        });
        const { rows } = await bench.drover.db.query<{ api: number; worker: number }>(
          `SELECT (EXTRACT(EPOCH FROM t.dispatched_at - o.created_at) * 1000)::float8 AS api,
                  (EXTRACT(EPOCH FROM t.started_at - t.dispatched_at) * 1000)::float8 AS worker
           FROM tasks t JOIN operations o ON o.id = t.operation_id WHERE o.id = $1::uuid`,
          [created.id],
        );
        record.apiMs.push(rows[0]!.api);
        record.workerMs.push(rows[0]!.worker);
        progress(
          `after-quiet ${run + 1}, ${setup}: dispatched after ${rows[0]!.api.toFixed(0)} ms, started ${rows[0]!.worker.toFixed(0)} ms later`,
        );
      }
      records.push(record);
    }
    return records;
  } finally {
    // The parts after this one run with drover's usual worker.
    await restartWorker(bench);
  }
}

/** Until the operation's task has finished (it must have succeeded). */
async function untilOperationFinished(bench: Bench, operationId: string): Promise<void> {
  for (;;) {
    const { rows } = await bench.drover.db.query<{ state: string; finished: boolean }>(
      `SELECT state::text AS state, finished_at IS NOT NULL AS finished FROM tasks WHERE operation_id = $1::uuid`,
      [operationId],
    );
    if (rows[0]?.finished) {
      if (rows[0].state !== 'succeeded') throw new Error(`operation ${operationId}: its task ${rows[0].state}`);
      return;
    }
    await sleep(FIRST_TASK_POLL_MS);
  }
}

function afterQuietSection(options: Options, records: AfterQuietRecord[]): string[] {
  const cells = (values: number[]) => {
    const summary = stats(values);
    return `${summary.median.toFixed(0)} | ${summary.max.toFixed(0)}`;
  };
  return [
    '## First task after a quiet spell',
    '',
    `${options.quietTasks} operations per setup, each restarting the probe on one host after drover sat idle for ` +
      `${AFTER_QUIET_MS / 1000} s (longer than node-postgres' 10 s idle timeout), with no discoveries queued; the ` +
      `worker restarted for each setup: \`DATABASE_POOL_MIN=0\` (no connection kept) and the product's default ` +
      `\`DATABASE_POOL_MIN=${PRODUCT_DEFAULTS.DATABASE_POOL_MIN}\` (connections kept). The API keeps its default throughout. ` +
      "PostgreSQL's clock: the API's share is created_at → dispatched_at, the worker's dispatched_at → started_at.",
    '',
    '| worker pool | API median ms | API max ms | worker median ms | worker max ms | total median ms | total max ms |',
    '|---|--:|--:|--:|--:|--:|--:|',
    ...records.map((record) => {
      const totals = record.apiMs.map((api, index) => api + record.workerMs[index]!);
      return `| ${record.setup} | ${cells(record.apiMs)} | ${cells(record.workerMs)} | ${cells(totals)} |`;
    }),
    '',
    ...records.map((record) => {
      const slowest = Math.max(...record.apiMs.map((api, index) => api + record.workerMs[index]!));
      return (
        `- goal, the first task within ${FIRST_TASK_GOAL_MS} ms of the operation's creation (the slowest of the runs), ` +
        `${record.setup}: **${slowest.toFixed(0)} ms: ${slowest <= FIRST_TASK_GOAL_MS ? 'met' : 'not met'}**; ` +
        `load average (1 min) as each began: ${loadList(record.loads)}`
      );
    }),
    '',
  ];
}

// ---------------------------------------------------------------------------------------------
// first-rollout

interface FirstRolloutResult {
  batches: number[];
  drover: Measured[];
  ssh2: Measured[];
  loads: number[];
}

/** Connects to every host, then restarts the probe batch after batch; the time includes connecting. */
async function bareSsh2Batches(bench: Bench, batches: FleetHost[][], connectParallel: number): Promise<Measured> {
  const cpuBefore = cpuSeconds('self');
  const started = performance.now();
  const hosts = batches.flat();
  const clients = await connectAll(hosts, bench.privateKey, connectParallel);
  try {
    let next = 0;
    for (const batch of batches) {
      await restartOver(batch, clients.slice(next, next + batch.length));
      next += batch.length;
    }
  } finally {
    for (const client of clients) client.end();
  }
  return {
    seconds: (performance.now() - started) / 1000,
    cpuSeconds: cpuSeconds('self') - cpuBefore,
    operationId: null,
  };
}

async function firstRolloutPart(bench: Bench, options: Options): Promise<FirstRolloutResult> {
  const hosts = bench.hosts.slice(0, options.rolloutHosts);
  const result: FirstRolloutResult = { batches: [], drover: [], ssh2: [], loads: [] };
  let batches: FleetHost[][] = [];
  for (let round = 0; round < options.runs; round += 1) {
    result.loads.push(os.loadavg()[0]!);
    const measured = await checked(bench, hosts, `first rollout ${round + 1}`, async () => {
      await restartWorker(bench);
      const pids = droverPids(bench.drover);
      const cpu = () => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
      const cpuBefore = cpu();
      const started = performance.now();
      const created = await call<Rollout>(
        bench.drover,
        'POST',
        '/v1/rollouts',
        {
          verb: 'restart',
          unit: PROBE_UNIT,
          selector: `${subsetLabel(options.rolloutHosts)}=yes`,
          batches: { sizes: [1, '25%'] },
          healthGate: { minHealthyTimeMs: 0 },
        },
        201,
      );
      await finishedEvent(bench.drover, created.id);
      const seconds = (performance.now() - started) / 1000;
      const rollout = await call<Rollout & { hosts: { name: string; batch: number | null }[] }>(
        bench.drover,
        'GET',
        `/v1/rollouts/${created.id}`,
        undefined,
        200,
      );
      await waitForIdleQueues(bench.drover.queues);
      if (rollout.status !== 'succeeded')
        throw new Error(`rollout ${rollout.id} ${rollout.status}: ${rollout.reason ?? ''}`);
      const byName = new Map(hosts.map((host) => [host.name, host]));
      const sizes: FleetHost[][] = [];
      for (const host of rollout.hosts)
        sizes[host.batch ?? 0] = [...(sizes[host.batch ?? 0] ?? []), byName.get(host.name)!];
      batches = sizes;
      return { seconds, cpuSeconds: cpu() - cpuBefore, operationId: null };
    });
    result.drover.push(measured);
    progress(`first rollout ${round + 1}: drover ${secs(measured.seconds)} s, a worker just started`);
    const bare = await checked(bench, hosts, `bare batches ${round + 1}`, () =>
      bareSsh2Batches(bench, batches, options.connectParallel),
    );
    result.ssh2.push(bare);
    progress(`first rollout ${round + 1}: bare ssh2 ${secs(bare.seconds)} s, connecting included`);
  }
  result.batches = batches.map((batch) => batch.length);
  return result;
}

function firstRolloutSection(options: Options, result: FirstRolloutResult): string[] {
  const drover = stats(result.drover.map((run) => run.seconds));
  const ssh2 = stats(result.ssh2.map((run) => run.seconds));
  const ratio = drover.median / ssh2.median;
  return [
    '## The first rollout after a worker starts',
    '',
    `A rolling restart of the probe on ${options.rolloutHosts} hosts in batches of ${result.batches.join(', ')} ` +
      '(health gate: the unit active), by a worker started just before (no pooled connection, nothing warmed up), ' +
      `${options.runs} time(s); the bare script connects to every host (at most ${options.connectParallel} at once), then runs the same batches.`,
    '',
    '| contender | median s | min s | max s | CPU s (median) |',
    '|---|--:|--:|--:|--:|',
    `| drover, a new worker | ${secs(drover.median)} | ${secs(drover.min)} | ${secs(drover.max)} | ${secs(stats(result.drover.map((run) => run.cpuSeconds)).median)} |`,
    `| bare ssh2, connecting included | ${secs(ssh2.median)} | ${secs(ssh2.min)} | ${secs(ssh2.max)} | ${secs(stats(result.ssh2.map((run) => run.cpuSeconds)).median)} |`,
    '',
    `- drover / bare ssh2: **${ratio.toFixed(2)}×: ${ratio <= FIRST_ROLLOUT_GOAL ? 'met' : 'not met'}** (goal ≤ ${FIRST_ROLLOUT_GOAL}×)`,
    `- load average (1 min) as each round began: ${loadList(result.loads)}`,
    '',
  ];
}

// ---------------------------------------------------------------------------------------------
// workers

interface WorkersRecord extends Measured {
  workers: number;
  load: number;
  peakRss: number[];
}

async function workersPart(bench: Bench, options: Options): Promise<WorkersRecord[]> {
  const size = Math.max(...options.sizes);
  const hosts = bench.hosts.slice(0, size);
  const selector = `${subsetLabel(size)}=yes`;
  const records: WorkersRecord[] = [];
  for (const count of options.workers) {
    const extra: ChildProcess[] = [];
    const teardown = new Teardown();
    try {
      await restartWorker(bench);
      for (let i = 1; i < count; i += 1) {
        bench.workerStarts += 1;
        extra.push(
          await startWorker(bench.drover, path.join(bench.workDir, `worker-${bench.workerStarts}.log`), teardown),
        );
      }
      // A warm-up run opens every worker's connections; the timed runs follow.
      for (let round = 0; round <= options.runs; round += 1) {
        const load = os.loadavg()[0]!;
        const measured = await checked(bench, hosts, `${count} workers, round ${round}`, () =>
          operationRun(bench.drover, selector, size, droverPids(bench.drover, extra)),
        );
        const peakRss = [bench.drover.worker, ...extra].map((worker) => peakRssBytes(worker.pid!));
        if (round > 0) records.push({ workers: count, load, peakRss, ...measured });
        progress(`${count} workers, ${round === 0 ? 'warm-up' : `round ${round}`}: ${secs(measured.seconds)} s`);
      }
    } finally {
      await teardown.run();
    }
  }
  return records;
}

function workersSection(options: Options, records: WorkersRecord[]): string[] {
  const size = Math.max(...options.sizes);
  const rows = options.workers.map((count) => {
    const of = records.filter((record) => record.workers === count);
    const wall = stats(of.map((record) => record.seconds));
    return {
      count,
      wall,
      cpu: stats(of.map((record) => record.cpuSeconds)).median,
      rss: Math.max(...of.flatMap((record) => record.peakRss)),
    };
  });
  const base = rows[0]!;
  return [
    `## Workers: the restart on ${size} hosts with ${options.workers.join(', ')} workers`,
    '',
    'Each worker with the same settings; connections warm (one uncounted run first); one Redis, one PostgreSQL, one API.',
    '',
    '| workers | median s | min s | max s | tasks/s | vs 1 worker | CPU s per run (API + workers) | largest worker peak RSS |',
    '|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map(
      (row) =>
        `| ${row.count} | ${secs(row.wall.median)} | ${secs(row.wall.min)} | ${secs(row.wall.max)} | ${(size / row.wall.median).toFixed(0)} | ${(base.wall.median / row.wall.median).toFixed(2)}× | ${secs(row.cpu)} | ${mib(row.rss)} |`,
    ),
    '',
    `- load average (1 min) as the timed runs began: ${loadList(records.map((record) => record.load))}`,
    '',
  ];
}

// ---------------------------------------------------------------------------------------------
// the run

async function benchmark(options: Options, teardown: Teardown): Promise<void> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'drover-bench-scale-'));
  progress(`logs in ${workDir} (kept if the run fails)`);
  await ensureServices();
  const largest = Math.max(...options.sizes, options.rolloutHosts);
  const inventory = options.keepFleet ? await readInventory() : null;
  const fleetSize = inventory && inventory.length >= largest ? inventory.length : largest;
  const { hosts: allHosts, fleet: fleetOrigin } = await provideFleet(fleetSize, options.keepFleet, teardown);
  const hosts = allHosts.slice(0, largest);
  const sizes = [...options.sizes, options.rolloutHosts];
  const drover = await startDrover(
    hosts.map((host, index) => ({
      ...host,
      labels: { ...host.labels, ...subsetLabels(index, sizes), [HOST_LABEL]: host.name },
    })),
    // The product's database pool: up to 4 workers and the API stay within PostgreSQL's 100 connections.
    // Handshakes may take as long as the bare script's (COLD_HANDSHAKE_TIMEOUT_MS): the same fleet
    // on the same machine, measured the same way.
    {
      ...DROVER,
      workDir,
      profileDir: options.cpuProf,
      discoverHosts: true,
      env: {
        DATABASE_POOL_SIZE: '10',
        WORKER_CONCURRENCY: String(options.workerConcurrency),
        SSH_CONNECT_TIMEOUT_MS: String(COLD_HANDSHAKE_TIMEOUT_MS),
      },
    },
    teardown,
  );
  const bench: Bench = {
    drover,
    hosts,
    fleet: await readFleetInstance(),
    privateKey: await readFile(FLEET_KEY),
    workDir,
    teardown,
    workerStarts: 0,
  };
  const sections: string[] = [];
  if (options.parts.includes('fanout')) sections.push(...fanoutSection(options, await fanoutPart(bench, options)));
  if (options.parts.includes('first-task'))
    sections.push(...firstTaskSection(options, await firstTaskPart(bench, options)));
  if (options.parts.includes('after-quiet'))
    sections.push(...afterQuietSection(options, await afterQuietPart(bench, options)));
  if (options.parts.includes('first-rollout'))
    sections.push(...firstRolloutSection(options, await firstRolloutPart(bench, options)));
  if (options.parts.includes('workers')) sections.push(...workersSection(options, await workersPart(bench, options)));

  const settings = [
    'WORKER_CONCURRENCY',
    'DATABASE_POOL_SIZE',
    'DISCOVERY_CONCURRENCY',
    'SSH_POOL_MAX_CONNECTIONS',
    'SSH_CONNECT_TIMEOUT_MS',
    'SSH_MAX_HANDSHAKES',
  ]
    .map((name) => `${name}=${drover.env[name] ?? '(default)'}`)
    .join(', ');
  const markdown = [
    '# Scale: fan-out, lanes and workers on real hosts, side by side with the bare ssh2 script',
    '',
    '## Run',
    '',
    `- date: ${new Date().toISOString()}; \`node dist/bench/scale.js ${process.argv.slice(2).join(' ')}\``,
    ...(await machine(drover.db)),
    `- fleet: ${fleetSize} systemd-nspawn hosts of \`test/fleet/fleet.sh\` (${fleetOrigin}); the unit: ${PROBE_UNIT}`,
    `- drover: one API and one worker (two in the first-task part's second setup, more in the workers part), ${settings}, periodic discovery off (every host discovered once before the runs)`,
    '',
    ...sections,
  ].join('\n');
  await writeReport(markdown, options.out);
  await rm(workDir, { recursive: true, force: true });
}

runBenchmark('scale', (teardown) => benchmark(parseOptions(process.argv.slice(2)), teardown));

/**
 * What the control plane spends per agent task, without hosts: N simulated agents (seeded by SQL,
 * signed in over HTTP as the agent does) each long-poll one API, and every round one operation
 * restarts a unit on all of them. Each agent, given its task, does what the real agent asks of the
 * server: the claim (its poll), `/clear` with the state before acting, `/result` with an outcome
 * (a new MainPID), then polls again. Nothing runs on a host, so the figures are the API's and the
 * worker's alone, on a machine not shared with 50 booted hosts:
 *
 *   - CPU of the API and of the worker per task (utime + stime, /proc/PID/stat), from the
 *     operation's creation until 1 s after it finished;
 *   - database transactions per task (pg_stat_database.xact_commit of the scratch database; this
 *     process's own reads of the operation's status subtracted);
 *   - wake-up: from a task's offer (offered_at) to its claim (started_at), database clock;
 *   - wall time of the operation.
 *
 *   npm run bench:agent-cycle                     # 50 agents, 3 warm-up and 10 timed rounds
 *   node dist/bench/agent-cycle.js --agents 50 --rounds 10 --out /tmp/cycle.md
 *
 * Options: --agents N (50), --warm-up R (3: the API's code paths compiled), --rounds R (10),
 * --port N (8099), --cpu-prof DIR (V8 CPU profiles of the API and worker), --out FILE
 * (bench/results/agent-cycle.md). Needs PostgreSQL and Redis on 127.0.0.1 (started when absent).
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { UnitActionOutcome, UnitSnapshot } from '@drover/protocol';
import { call, Drover, ensureServices, machine, startDrover } from './lib/drover';
import {
  cpuSeconds,
  fail,
  positiveInteger,
  progress,
  ROOT,
  runBenchmark,
  stats,
  Teardown,
  writeReport,
} from './lib/harness';
import { login, readSimulatedAgents, request, seedAgents, SimulatedAgent, sockets } from './lib/simulated-agents';

const DATABASE = 'drover_bench_agent_cycle';
const POLL_WAIT_MS = 20_000;
/** How often this process reads the operation's status (from the database: no API CPU). */
const STATUS_EVERY_MS = 20;
const SETTLE_MS = 1_000;
const UNIT = 'drover-probe.service';

interface Options {
  agents: number;
  warmUp: number;
  rounds: number;
  port: number;
  cpuProfileDir: string | null;
  out: string;
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    agents: 50,
    warmUp: 3,
    rounds: 10,
    port: 8099,
    cpuProfileDir: null,
    out: path.join(ROOT, 'bench/results/agent-cycle.md'),
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (arg === '--agents') options.agents = positiveInteger(arg, argv[++i]);
    else if (arg === '--warm-up') options.warmUp = positiveInteger(arg, argv[++i]);
    else if (arg === '--rounds') options.rounds = positiveInteger(arg, argv[++i]);
    else if (arg === '--port') options.port = positiveInteger(arg, argv[++i]);
    else if (arg === '--cpu-prof')
      options.cpuProfileDir = path.resolve(argv[++i] ?? fail('--cpu-prof needs a directory'));
    else if (arg === '--out') options.out = path.resolve(argv[++i] ?? fail('--out needs a file'));
    else fail(`unknown option ${arg}`);
  }
  return options;
}

function snapshot(mainPid: number): UnitSnapshot {
  return {
    id: UNIT,
    loadState: 'loaded',
    activeState: 'active',
    subState: 'running',
    mainPid,
    nRestarts: 0,
    unitFileState: 'enabled',
    needDaemonReload: false,
    activeEnterTimestamp: 'Fri 2026-12-04 10:00:00 UTC',
    activeEnterTimestampMonotonic: String(mainPid * 1_000_000),
    invocationId: `${mainPid}`.padStart(32, '0'),
    canReload: false,
    canStart: true,
    canStop: true,
    result: 'success',
    description: 'the benchmark probe',
    fragmentPath: `/etc/systemd/system/${UNIT}`,
    dropInPaths: [],
  };
}

/** One simulated agent until `stop`: poll, and for a task: clear, report it restarted. Counts the tasks it reported. */
async function work(url: string, agent: SimulatedAgent, stop: AbortSignal, done: { tasks: number }): Promise<void> {
  const headers = { authorization: `Bearer ${agent.credential}` };
  let pid = 1_000;
  while (!stop.aborted) {
    const poll = await request(
      `${url}/agent/v1/commands/next?waitMs=${POLL_WAIT_MS}`,
      'GET',
      headers,
      undefined,
      POLL_WAIT_MS * 2,
      stop,
    ).catch((error: unknown) => {
      if (stop.aborted) return null;
      throw error;
    });
    if (poll === null) return;
    if (poll.status !== 200) throw new Error(`GET /commands/next: ${poll.status} ${poll.text.slice(0, 300)}`);
    const { command } = JSON.parse(poll.text) as { command: { kind: string; taskId: string; attempt: number } | null };
    if (command?.kind !== 'task') continue;
    const attempt = `${url}/agent/v1/tasks/${command.taskId}/attempts/${command.attempt}`;
    const before = snapshot(pid);
    const cleared = await request(`${attempt}/clear`, 'POST', headers, { before }, 30_000, stop);
    if (cleared.status !== 204) throw new Error(`POST /clear: ${cleared.status} ${cleared.text.slice(0, 300)}`);
    pid += 1;
    const outcome: UnitActionOutcome = {
      result: 'succeeded',
      reason: 'restarted (new MainPID)',
      exitCode: 0,
      before,
      after: snapshot(pid),
      output: '',
      verdict: { outcome: 'ok', detail: 'a new MainPID' },
      daemonReloaded: false,
    };
    const reported = await request(`${attempt}/result`, 'POST', headers, { outcome }, 30_000, stop);
    if (reported.status !== 200) throw new Error(`POST /result: ${reported.status} ${reported.text.slice(0, 300)}`);
    done.tasks += 1;
  }
}

interface Round {
  round: number;
  wallSeconds: number;
  apiMsPerTask: number;
  workerMsPerTask: number;
  transactionsPerTask: number;
  wakeMedianMs: number;
  wakeMaxMs: number;
}

const transactions = async (drover: Drover): Promise<number> =>
  Number(
    (
      await drover.db.query<{ n: string }>(
        'SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()',
      )
    ).rows[0]?.n,
  );

async function round(drover: Drover, options: Options, index: number): Promise<Round> {
  const pids = [drover.api.pid!, drover.worker.pid!];
  const transactionsBefore = await transactions(drover);
  const cpuBefore = pids.map((pid) => cpuSeconds(pid));
  const started = performance.now();
  const operation = await call<{ id: string }>(
    drover,
    'POST',
    '/v1/operations',
    { verb: 'restart', unit: UNIT, selector: 'sim=yes', concurrency: options.agents },
    202,
  );
  let statusReads = 0;
  for (;;) {
    statusReads += 1;
    const { rows } = await drover.db.query<{ status: string }>('SELECT status::text FROM operations WHERE id = $1', [
      operation.id,
    ]);
    const status = rows[0]?.status;
    if (status === 'succeeded') break;
    if (status !== 'queued' && status !== 'running') fail(`round ${index}: the operation ended ${status}`);
    await sleep(STATUS_EVERY_MS);
  }
  const wallSeconds = (performance.now() - started) / 1000;
  await sleep(SETTLE_MS);
  const cpuAfter = pids.map((pid) => cpuSeconds(pid));
  // Stats reach pg_stat_database when a backend's transaction ends; its own read is one more.
  const transactionsAfter = await transactions(drover);
  const { rows: wake } = await drover.db.query<{ median: number; max: number }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS median, max(ms) AS max
     FROM (SELECT extract(epoch FROM started_at - offered_at)::float8 * 1000 AS ms FROM tasks WHERE operation_id = $1) t`,
    [operation.id],
  );
  const perTask = (seconds: number) => (seconds * 1000) / options.agents;
  return {
    round: index,
    wallSeconds,
    apiMsPerTask: perTask(cpuAfter[0]! - cpuBefore[0]!),
    workerMsPerTask: perTask(cpuAfter[1]! - cpuBefore[1]!),
    transactionsPerTask: (transactionsAfter - transactionsBefore - statusReads - 1) / options.agents,
    wakeMedianMs: wake[0]!.median,
    wakeMaxMs: wake[0]!.max,
  };
}

async function benchmark(options: Options, teardown: Teardown): Promise<void> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'drover-bench-agent-cycle-'));
  progress(`logs in ${workDir} (kept if the run fails)`);
  await ensureServices();
  const drover = await startDrover(
    [],
    { database: DATABASE, queuePrefix: DATABASE, port: options.port, workDir, profileDir: options.cpuProfileDir },
    teardown,
  );
  const agentsFile = path.join(workDir, 'simulated-agents.jsonl');
  await seedAgents(drover, options.agents, agentsFile);
  const agents = await readSimulatedAgents(agentsFile);
  const stop = new AbortController();
  for (const agent of agents) await login(drover.url, agent, stop.signal);
  const done = { tasks: 0 };
  const working = Promise.all(agents.map((agent) => work(drover.url, agent, stop.signal, done)));
  // An agent failing ends the run at once, not after the rounds.
  const failed = working.then(
    () => null,
    (error: unknown) => error,
  );
  teardown.add('stopping the simulated agents', async () => {
    stop.abort();
    await failed;
    sockets.destroy();
  });
  const rounds: Round[] = [];
  for (let index = 1 - options.warmUp; index <= options.rounds; index += 1) {
    await sleep(SETTLE_MS);
    const result = await Promise.race([
      round(drover, options, index),
      failed.then((error) => {
        throw error instanceof Error ? error : new Error(`the simulated agents stopped: ${String(error)}`);
      }),
    ]);
    progress(
      `${index <= 0 ? 'warm-up' : `round ${index}`}: ${result.wallSeconds.toFixed(2)} s, API ${result.apiMsPerTask.toFixed(1)} ms ` +
        `and worker ${result.workerMsPerTask.toFixed(1)} ms of CPU per task, ${result.transactionsPerTask.toFixed(1)} ` +
        `transactions per task, wake-up median ${result.wakeMedianMs.toFixed(0)} ms`,
    );
    if (index > 0) rounds.push(result);
  }
  if (done.tasks !== options.agents * (options.rounds + options.warmUp)) {
    fail(`the agents reported ${done.tasks} tasks, not ${options.agents * (options.rounds + options.warmUp)}`);
  }
  const median = (pick: (r: Round) => number) => stats(rounds.map(pick)).median;
  const markdown = [
    '# The control plane per agent task (simulated agents, no hosts)',
    '',
    '## Run',
    '',
    `- date: ${new Date().toISOString()}; \`node dist/bench/agent-cycle.js ${process.argv.slice(2).join(' ')}\``,
    ...(await machine(drover.db)),
    `- ${options.agents} simulated agents, one operation per round restarting ${UNIT} on all of them (concurrency ${options.agents}); ${options.warmUp} warm-up rounds not counted`,
    '',
    '## Medians over the timed rounds',
    '',
    '| API CPU per task | worker CPU per task | transactions per task | wake-up median | operation wall time |',
    '| --: | --: | --: | --: | --: |',
    `| ${median((r) => r.apiMsPerTask).toFixed(1)} ms | ${median((r) => r.workerMsPerTask).toFixed(1)} ms | ${median((r) => r.transactionsPerTask).toFixed(1)} | ${median((r) => r.wakeMedianMs).toFixed(0)} ms | ${median((r) => r.wallSeconds).toFixed(2)} s |`,
    '',
    '## Every round',
    '',
    '| round | wall s | API ms/task | worker ms/task | transactions/task | wake-up median ms | wake-up max ms |',
    '| --: | --: | --: | --: | --: | --: | --: |',
    ...rounds.map(
      (r) =>
        `| ${r.round} | ${r.wallSeconds.toFixed(2)} | ${r.apiMsPerTask.toFixed(1)} | ${r.workerMsPerTask.toFixed(1)} | ${r.transactionsPerTask.toFixed(1)} | ${r.wakeMedianMs.toFixed(0)} | ${r.wakeMaxMs.toFixed(0)} |`,
    ),
    '',
  ].join('\n');
  await writeReport(markdown, options.out);
}

runBenchmark('agent-cycle', (teardown) => benchmark(parseOptions(process.argv.slice(2)), teardown));

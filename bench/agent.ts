/**
 * The per-host agent benchmark, three parts in one run:
 *
 *   fan-out  restart drover-probe.service on N real systemd hosts (test/fleet/fleet.sh) with one
 *            operation over all of them (POST /v1/operations, a selector, concurrency N), side by
 *            side in every round, the order rotating:
 *              agent      drover whose hosts are agent hosts (the agent installed on every host by
 *                         its install script, talking to an API on the fleet's gateway)
 *              drover ssh drover whose hosts are SSH hosts (a second database, API and worker)
 *              bare ssh2  this process: a new ssh2 connection per host per run, one
 *                         `systemctl restart`, nothing else (cold connections: the handshake counts)
 *            After every run, on every host (nsenter, no SSH): a new MainPID and exactly one more
 *            line in the probe's record of starts. Agent runs also report how soon each task's
 *            agent had it, and how long the agents waited for a CPU (their cgroups' cpu.pressure).
 *   idle     the agents with nothing to do: VmRSS and CPU (utime + stime) of every agent's node
 *            process over --idle-seconds, read from /proc inside each host, and beside each a node
 *            process that does nothing (Node's own floor, read the same way).
 *   load     one API (no fleet) under --simulated agents long-polling: agents seeded by SQL with
 *            their own Ed25519 keys, signed in over HTTP (challenge, session) and then each holding
 *            GET /agent/v1/commands/next?waitMs=25000 from a separate process (dist/bench/agent-load.js),
 *            for --load-seconds: answers per second, the API's CPU and RSS, its liveness latency.
 *
 *   npm run bench:agent                       # build, boot 200 hosts, N = 50 and 200, 3 rounds, tear down
 *   node dist/bench/agent.js --hosts 20 --runs 2 --simulated 1000 --load-seconds 30 --out /tmp/agent.md
 *
 * Options: --hosts N[,N...] (50,200: the fleet has the largest; smaller runs use its first hosts),
 * --runs R (3 timed rounds after a warm-up), --keep-fleet, --idle-seconds S (60), --simulated N
 * (10000), --load-seconds S (60), --load-port N (8095) and --load-database NAME
 * (drover_bench_agent_load, also its Redis prefix) for the load part, --cpu-prof DIR (V8 CPU
 * profiles of the load part's API, of the fan-out's agent drover, its API and worker, and of the
 * first two hosts' agents over the fan-out runs), --parts fanout,idle,load (all), --out FILE
 * (bench/results/agent.md). DROVER_FLEET_STATE and DROVER_FLEET_BOOT_PARALLEL are fleet.sh's.
 * Needs root, PostgreSQL and Redis on 127.0.0.1 (started when absent) and `npm run build` (the
 * agent's bundle in dist/agent).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { installCommandLine } from '../src/cli/agents';
import { seedAgents } from './lib/simulated-agents';
import type { LoadReport } from './agent-load';
import { call, Drover, droverPids, ensureServices, machine, startDrover } from './lib/drover';
import {
  bareSsh2ColdRun,
  eachLimited,
  Measured,
  operationRun,
  probeStartLimitIntervalMs,
  probeStates,
  restartProblems,
  subsetLabel,
  subsetLabels,
} from './lib/fanout';
import {
  FLEET_KEY,
  FleetHost,
  FleetInstance,
  HOST_CPU_PARTS,
  HostCpuPart,
  agentsCpuWaitSeconds,
  hostsCpuByPart,
  inHost,
  untilHostsQuiet,
  provideFleet,
  readFleetInstance,
  readInventory,
} from './lib/fleet';
import {
  cpuSeconds,
  cpuSecondsOfStat,
  fail,
  mib,
  peakRssBytes,
  partList,
  positiveInteger,
  positiveIntegers,
  progress,
  ROOT,
  rssBytes,
  runBenchmark,
  secs,
  stats,
  Teardown,
  wallTimes,
  writeReport,
} from './lib/harness';

const DEFAULT_OUT = path.join(ROOT, 'bench/results/agent.md');
const SSH_DROVER = { database: 'drover_bench_agent_ssh', queuePrefix: 'drover-bench-agent-ssh', port: 8093 };
const AGENT_DROVER = { database: 'drover_bench_agent', queuePrefix: 'drover-bench-agent', port: 8094 };
const LOAD_DEFAULTS = { database: 'drover_bench_agent_load', port: 8095 };
/** Hosts installed, or checked, at once (each is a few processes inside the host). */
const HOST_PARALLEL = 8;
const CHECK_PARALLEL = 16;
/** Added to the probe's start-limit interval between the end of a fan-out run and the start of the next. */
const START_LIMIT_MARGIN_MS = 1_000;
const POLL_WAIT_MS = 25_000;
const LOAD_RAMP_SECONDS = 10;
/** The API's accept queue (HTTP_LISTEN_BACKLOG, its default); Linux caps it at net.core.somaxconn. */
const LOAD_LISTEN_BACKLOG = 4_096;
const SOMAXCONN = '/proc/sys/net/core/somaxconn';
/** Files the API and the load process need besides one socket per agent. */
const NOFILE_SPARE = 1_000;
const IDLE_GOAL_RSS_BYTES = 40 * 1_048_576;
const AGENT_UNIT = 'drover-agent.service';
/** A node process doing nothing, beside each idle agent: what Node itself holds. */
const NODE_FLOOR_UNIT = 'drover-bench-node-floor.service';

const CONTENDERS = ['agent', 'ssh', 'ssh2'] as const;
type Contender = (typeof CONTENDERS)[number];
const TITLES: Record<Contender, string> = { agent: 'agent', ssh: 'drover ssh', ssh2: 'bare ssh2 (cold)' };
const PARTS = ['fanout', 'idle', 'load'] as const;
type Part = (typeof PARTS)[number];

interface Options {
  sizes: number[];
  runs: number;
  keepFleet: boolean;
  idleSeconds: number;
  simulated: number;
  loadSeconds: number;
  /** The load part's API port and database (also its Redis key prefix). */
  loadPort: number;
  loadDatabase: string;
  /** A directory for a V8 CPU profile of the load part's API (written when it stops), or null. */
  cpuProfileDir: string | null;
  parts: readonly Part[];
  out: string;
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    sizes: [50, 200],
    runs: 3,
    keepFleet: false,
    idleSeconds: 60,
    simulated: 10_000,
    loadSeconds: 60,
    loadPort: LOAD_DEFAULTS.port,
    loadDatabase: LOAD_DEFAULTS.database,
    cpuProfileDir: null,
    parts: PARTS,
    out: DEFAULT_OUT,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (arg === '--keep-fleet') options.keepFleet = true;
    else if (arg === '--out') options.out = path.resolve(argv[++i] ?? fail('--out needs a file'));
    else if (arg === '--hosts') options.sizes = positiveIntegers(arg, argv[++i]);
    else if (arg === '--runs') options.runs = positiveInteger(arg, argv[++i]);
    else if (arg === '--idle-seconds') options.idleSeconds = positiveInteger(arg, argv[++i]);
    else if (arg === '--simulated') options.simulated = positiveInteger(arg, argv[++i]);
    else if (arg === '--load-seconds') options.loadSeconds = positiveInteger(arg, argv[++i]);
    else if (arg === '--load-port') options.loadPort = positiveInteger(arg, argv[++i]);
    else if (arg === '--load-database') options.loadDatabase = argv[++i] ?? fail('--load-database needs a name');
    else if (arg === '--cpu-prof')
      options.cpuProfileDir = path.resolve(argv[++i] ?? fail('--cpu-prof needs a directory'));
    else if (arg === '--parts') options.parts = partList(PARTS, argv[++i]);
    else fail(`unknown option ${arg}`);
  }
  if (Math.max(...options.sizes) > 1_000) fail('--hosts must be at most 1000 (the most fleet.sh boots)');
  return options;
}

// ---------------------------------------------------------------------------------------------
// agents on the fleet

/** Puts a host back as the fleet had it: no agent (sshd and the probe untouched). */
function uninstallAgent(fleet: FleetInstance, host: FleetHost): Promise<unknown> {
  return inHost(
    fleet,
    host,
    `systemctl disable --now ${AGENT_UNIT} 2>/dev/null; ` +
      `rm -rf /opt/drover-agent /etc/drover-agent /var/lib/drover-agent /etc/systemd/system/${AGENT_UNIT} ` +
      `/etc/systemd/system/${AGENT_UNIT}.d; ` +
      'systemctl daemon-reload',
  );
}

/** With --cpu-prof: the agents of this many hosts (the first) write V8 CPU profiles. */
const PROFILED_AGENTS = 2;
const AGENT_PROFILE_DIR = '/var/lib/drover-agent/cpu-profiles';
/** Sampling every 4 ms, not V8's 1 ms: the profiler's own thread would keep the hosts from looking quiet. */
const AGENT_PROFILE_INTERVAL_US = 4_000;
const AGENT_PROFILE_DROP_IN = `/etc/systemd/system/${AGENT_UNIT}.d/cpu-profile.conf`;

/** Restarts the host's agent with V8's CPU profiler on (a drop-in; the profile is written as it stops). */
async function profileAgent(fleet: FleetInstance, host: FleetHost): Promise<void> {
  // Node 20 refuses --cpu-prof in NODE_OPTIONS: the drop-in runs the installed ExecStart with it.
  // The profiler keeps its samples in memory until the agent stops: more room than MemoryMax=128M.
  const done = await inHost(
    fleet,
    host,
    `exec=$(sed -n 's|^ExecStart=/usr/bin/env node |&--cpu-prof --cpu-prof-interval=${AGENT_PROFILE_INTERVAL_US} --cpu-prof-dir=${AGENT_PROFILE_DIR} |p' ` +
      `/etc/systemd/system/${AGENT_UNIT}) && [ -n "$exec" ] && ` +
      `mkdir -p ${path.dirname(AGENT_PROFILE_DROP_IN)} && ` +
      `printf '[Service]\\nExecStart=\\n%s\\nMemoryMax=512M\\n' "$exec" > ${AGENT_PROFILE_DROP_IN} && ` +
      `systemctl daemon-reload && systemctl restart ${AGENT_UNIT}`,
  );
  if (done.code !== 0) throw new Error(`profiling the agent of ${host.name}: ${done.stdout}${done.stderr}`);
}

/**
 * Stops a profiled agent (V8 writes its profile then), copies each profile it wrote to `directory`
 * and starts it again without the profiler. Best effort, each step said when it fails (the agent
 * killed before it wrote its profile, say): the measured runs are kept.
 */
async function collectAgentProfiles(fleet: FleetInstance, host: FleetHost, directory: string): Promise<void> {
  try {
    const stopped = await inHost(fleet, host, `systemctl stop ${AGENT_UNIT}`);
    if (stopped.code !== 0) throw new Error(`systemctl stop: ${stopped.stderr.trim()}`);
    const listed = await inHost(fleet, host, `ls ${AGENT_PROFILE_DIR} 2>/dev/null`);
    const files = listed.stdout.split('\n').filter((name) => name.endsWith('.cpuprofile'));
    if (files.length === 0) progress(`the agent of ${host.name} wrote no CPU profile`);
    for (const [index, file] of files.entries()) {
      const profile = await inHost(fleet, host, `cat ${AGENT_PROFILE_DIR}/${file}`);
      if (profile.code !== 0) throw new Error(profile.stderr);
      const suffix = files.length > 1 ? `-${index + 1}` : '';
      await writeFile(path.join(directory, `agent-${host.name}${suffix}.cpuprofile`), profile.stdout);
    }
  } catch (error) {
    progress(`the CPU profile of ${host.name}'s agent was not copied: ${(error as Error).message}`);
  }
  const restarted = await inHost(
    fleet,
    host,
    `rm -rf ${AGENT_PROFILE_DIR} ${AGENT_PROFILE_DROP_IN} && systemctl daemon-reload && systemctl start ${AGENT_UNIT}`,
  );
  if (restarted.code !== 0) {
    progress(`the agent of ${host.name} did not start again without the profiler: ${restarted.stderr.trim()}`);
  }
}

/** The agent installed by its install script with a join token bound to the host; sshd stays up. */
async function installAgents(drover: Drover, fleet: FleetInstance, hosts: FleetHost[], sizes: number[]): Promise<void> {
  const started = performance.now();
  await eachLimited(
    hosts.map((host, index) => ({ host, index })),
    HOST_PARALLEL,
    async ({ host, index }) => {
      await uninstallAgent(fleet, host);
      const token = await call<{ joinToken: string }>(
        drover,
        'POST',
        '/v1/agent-join-tokens',
        { hostName: host.name, labels: { bench: 'agent', ...subsetLabels(index, sizes) } },
        201,
      );
      const installed = await inHost(fleet, host, installCommandLine(drover.url, token.joinToken), 180_000);
      if (installed.code !== 0) throw new Error(`install on ${host.name}: ${installed.stdout}\n${installed.stderr}`);
    },
  );
  const deadline = Date.now() + 60_000;
  for (;;) {
    const agents = await call<{ items: { online: boolean }[] }>(drover, 'GET', '/v1/agents', undefined, 200);
    const online = agents.items.filter((agent) => agent.online).length;
    if (online === hosts.length) break;
    if (Date.now() > deadline) throw new Error(`only ${online} of ${hosts.length} agents online`);
    await sleep(500);
  }
  progress(`agents installed and online on ${hosts.length} hosts in ${secs((performance.now() - started) / 1000)} s`);
}

// ---------------------------------------------------------------------------------------------
// the contenders

/**
 * For every task of an agent operation, the milliseconds from its offer (the worker sets offered_at,
 * then publishes the host's Redis wake-up) to its claim by the agent's waiting poll (the claim sets
 * started_at): how fast a queued task wakes its agent. Both are PostgreSQL's clock.
 */
async function offerToClaimMs(drover: Drover, operationId: string): Promise<number[]> {
  const { rows } = await drover.db.query<{ ms: number }>(
    `SELECT (EXTRACT(EPOCH FROM started_at - offered_at) * 1000)::float8 AS ms FROM tasks
     WHERE operation_id = $1::uuid AND offered_at IS NOT NULL AND started_at IS NOT NULL`,
    [operationId],
  );
  return rows.map((row) => row.ms);
}

/**
 * For every task of an agent operation, the milliseconds from its offer to the line its agent logs
 * as it begins the task ("restart drover-probe.service: starting", stamped by journald as it reads
 * it): when the agent had the command in hand, which started_at (the claim, before it commits and
 * its answer reaches the agent) does not show. The hosts share this machine's kernel clock with
 * PostgreSQL. Null for a task whose line was not found.
 */
async function offerToAgentMs(
  fleet: FleetInstance,
  hosts: FleetHost[],
  drover: Drover,
  operationId: string,
): Promise<(number | null)[]> {
  const { rows } = await drover.db.query<{ id: string; host_name: string; offered_ms: number }>(
    `SELECT id::text, host_name, (EXTRACT(EPOCH FROM offered_at) * 1000)::float8 AS offered_ms FROM tasks
     WHERE operation_id = $1::uuid AND offered_at IS NOT NULL`,
    [operationId],
  );
  if (rows.length === 0) return [];
  const taskOf = new Map(rows.map((row) => [row.host_name, row]));
  const sinceS = Math.floor(Math.min(...rows.map((row) => row.offered_ms)) / 1000) - 1;
  return eachLimited(
    hosts.filter((host) => taskOf.has(host.name)),
    CHECK_PARALLEL,
    async (host) => {
      const task = taskOf.get(host.name)!;
      const result = await inHost(fleet, host, `journalctl -u ${AGENT_UNIT} -o json --since=@${sinceS} --no-pager`);
      for (const line of result.stdout.split('\n')) {
        if (!line.includes(task.id)) continue;
        const entry = JSON.parse(line) as { MESSAGE?: unknown; __REALTIME_TIMESTAMP?: string };
        if (typeof entry.MESSAGE !== 'string' || entry.__REALTIME_TIMESTAMP === undefined) continue;
        const logged = JSON.parse(entry.MESSAGE) as { msg?: string; taskId?: string };
        if (logged.taskId === task.id && logged.msg?.endsWith(': starting')) {
          return Number(entry.__REALTIME_TIMESTAMP) / 1000 - task.offered_ms;
        }
      }
      return null;
    },
  );
}

// ---------------------------------------------------------------------------------------------
// idle agents

interface AgentProcess {
  host: string;
  /** utime + stime of the agent's process. */
  cpu: number;
  /** cutime + cstime: of the processes it ran and waited for (systemctl, at every heartbeat too). */
  childrenCpu: number;
  /** utime + stime of the host's systemd (PID 1): what the agent's listings and reads cost it. */
  systemdCpu: number;
  rss: number;
  /** VmRSS split: the process's own pages, and the files it maps (mostly the node binary, shared). */
  rssAnon: number;
  rssFile: number;
  peakRss: number;
}

/** The main process of `unit` on every host, read from /proc inside the host. */
async function unitProcesses(fleet: FleetInstance, hosts: FleetHost[], unit: string): Promise<AgentProcess[]> {
  const command =
    `pid=$(systemctl show -p MainPID --value ${unit}) && [ "$pid" -gt 0 ] && ` +
    'cat /proc/$pid/stat /proc/1/stat && grep -E "^(VmRSS|VmHWM|RssAnon|RssFile):" /proc/$pid/status';
  return eachLimited(hosts, CHECK_PARALLEL, async (host) => {
    const result = await inHost(fleet, host, command);
    if (result.code !== 0) throw new Error(`${host.name}: the main process of ${unit}: ${result.stderr}`);
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(result.stdout)?.[1]) * 1024;
    return {
      host: host.name,
      cpu: cpuSecondsOfStat(result.stdout.split('\n')[0]!),
      childrenCpu: cpuSecondsOfStat(result.stdout.split('\n')[0]!, 'children'),
      systemdCpu: cpuSecondsOfStat(result.stdout.split('\n')[1]!),
      rss: kb('VmRSS'),
      rssAnon: kb('RssAnon'),
      rssFile: kb('RssFile'),
      peakRss: kb('VmHWM'),
    };
  });
}

interface IdleResult {
  seconds: number;
  agents: number;
  rss: { median: number; max: number };
  rssAnon: { median: number; max: number };
  rssFile: { median: number; max: number };
  peakRss: number;
  cpuSeconds: { median: number; max: number; total: number };
  /** The same with the CPU of the processes each agent ran (cutime + cstime) added. */
  withChildren: { median: number; max: number };
  /** CPU of each host's systemd (PID 1) over the window. */
  systemdCpuSeconds: { median: number; max: number };
  apiCpuSeconds: number;
  workerCpuSeconds: number;
  /** A node process doing nothing on each host, read at the end of the same window: Node's own floor. */
  nodeFloor: { rss: MedianAndMax; rssAnon: MedianAndMax; rssFile: MedianAndMax };
}

/** The agents (and Node's floor beside them) read at both ends of `seconds` of nothing to do. */
async function idleWindow(drover: Drover, fleet: FleetInstance, hosts: FleetHost[], seconds: number) {
  const before = await unitProcesses(fleet, hosts, AGENT_UNIT);
  const api = cpuSeconds(drover.api.pid!);
  const worker = cpuSeconds(drover.worker.pid!);
  const started = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - started) / 1000;
  const apiCpuSeconds = cpuSeconds(drover.api.pid!) - api;
  const workerCpuSeconds = cpuSeconds(drover.worker.pid!) - worker;
  const after = await unitProcesses(fleet, hosts, AGENT_UNIT);
  const floor = await unitProcesses(fleet, hosts, NODE_FLOOR_UNIT);
  return { before, after, floor, elapsed, apiCpuSeconds, workerCpuSeconds };
}

async function idleRun(drover: Drover, fleet: FleetInstance, hosts: FleetHost[], seconds: number): Promise<IdleResult> {
  progress(`idle agents: ${seconds} s with nothing to do on ${hosts.length} hosts`);
  await sleep(5_000);
  // Stopped on every way out, a start that failed on some host included.
  const window = await startNodeFloor(fleet, hosts)
    .then(() => idleWindow(drover, fleet, hosts, seconds))
    .finally(() =>
      eachLimited(hosts, CHECK_PARALLEL, (host) => inHost(fleet, host, `systemctl stop ${NODE_FLOOR_UNIT}`)),
    );
  const { before, after, floor, elapsed, apiCpuSeconds, workerCpuSeconds } = window;
  const deltas = after.map((process, i) => {
    if (before[i]!.host !== process.host) throw new Error('agent processes out of order');
    return process.cpu - before[i]!.cpu;
  });
  const withChildren = stats(
    after.map((process, i) => process.cpu + process.childrenCpu - before[i]!.cpu - before[i]!.childrenCpu),
  );
  const systemdCpu = stats(after.map((process, i) => process.systemdCpu - before[i]!.systemdCpu));
  const cpu = stats(deltas);
  return {
    seconds: elapsed,
    agents: hosts.length,
    rss: medianAndMax(after.map((process) => process.rss)),
    rssAnon: medianAndMax(after.map((process) => process.rssAnon)),
    rssFile: medianAndMax(after.map((process) => process.rssFile)),
    peakRss: Math.max(...after.map((process) => process.peakRss)),
    cpuSeconds: { median: cpu.median, max: cpu.max, total: deltas.reduce((sum, delta) => sum + delta, 0) },
    withChildren: { median: withChildren.median, max: withChildren.max },
    systemdCpuSeconds: { median: systemdCpu.median, max: systemdCpu.max },
    apiCpuSeconds,
    workerCpuSeconds,
    nodeFloor: {
      rss: medianAndMax(floor.map((process) => process.rss)),
      rssAnon: medianAndMax(floor.map((process) => process.rssAnon)),
      rssFile: medianAndMax(floor.map((process) => process.rssFile)),
    },
  };
}

/**
 * Starts on every host a node process that does nothing (the agent's node, the same binary), as a
 * unit of its own: what any agent written for Node holds before its first line of code runs.
 */
async function startNodeFloor(fleet: FleetInstance, hosts: FleetHost[]): Promise<void> {
  const command =
    `systemctl stop ${NODE_FLOOR_UNIT} 2>/dev/null; ` +
    `systemd-run --quiet --collect --unit=${NODE_FLOOR_UNIT} "$(command -v node)" -e 'setInterval(() => {}, 2 ** 30)'`;
  await eachLimited(hosts, CHECK_PARALLEL, async (host) => {
    const result = await inHost(fleet, host, command);
    if (result.code !== 0) throw new Error(`${host.name}: ${NODE_FLOOR_UNIT}: ${result.stderr}`);
  });
}

interface MedianAndMax {
  median: number;
  max: number;
}

function medianAndMax(values: number[]): MedianAndMax {
  const { median, max } = stats(values);
  return { median, max };
}

// ---------------------------------------------------------------------------------------------
// many simulated agents against one API

interface Sample {
  at: number;
  cpu: number;
  rss: number;
  liveMs: number | null;
  dbConnections: number;
  /** Connections waiting in the API's accept queue (its listening socket's rx_queue in /proc/net/tcp). */
  acceptQueue: number;
}

/** How many connections wait to be accepted on the socket listening on `port` (IPv4). */
async function acceptQueueLength(port: number): Promise<number> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1)) {
    const [, local, , state, queues] = line.trim().split(/\s+/);
    // 0A: LISTEN; for a listening socket rx_queue is the accept queue's length.
    if (local?.endsWith(`:${hexPort}`) && state === '0A') return parseInt(queues!.split(':')[1]!, 16);
  }
  return 0;
}

/** Every second: the API's CPU and RSS, how long GET /healthz/live takes, its database connections. */
function sampleApi(drover: Drover, database: string, port: number, until: AbortSignal): Promise<Sample[]> {
  const samples: Sample[] = [];
  return (async () => {
    while (!until.aborted) {
      const at = Date.now();
      const started = performance.now();
      const liveMs = await fetch(`${drover.url}/healthz/live`, { signal: AbortSignal.timeout(10_000) }).then(
        async (response) => {
          await response.text();
          return response.ok ? performance.now() - started : null;
        },
        () => null,
      );
      const { rows } = await drover.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1',
        [database],
      );
      samples.push({
        at,
        cpu: cpuSeconds(drover.api.pid!),
        rss: rssBytes(drover.api.pid!),
        liveMs,
        dbConnections: rows[0]!.n,
        acceptQueue: await acceptQueueLength(port),
      });
      await sleep(Math.max(0, 1_000 - (Date.now() - at)));
    }
    return samples;
  })();
}

/** The API's warnings and errors while loaded, most frequent first: where it falls over. */
async function apiProblems(logFile: string, since: number): Promise<[string, number][]> {
  const counts = new Map<string, number>();
  for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { level?: number; time?: string; msg?: string; err?: { message?: string } };
    if ((entry.level ?? 0) < 40 || Date.parse(entry.time ?? '') < since) continue;
    // Prisma's messages quote the calling code over many lines: the call and the last line say it.
    const message = (entry.err?.message ?? entry.msg ?? '').trim();
    const call = /Invalid `([^`]+)` invocation/.exec(message)?.[1];
    const cause = message.split('\n').pop()!.trim().slice(0, 200);
    const text = call ? `${call}: ${cause}` : cause;
    counts.set(text, (counts.get(text) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]);
}

/** The kernel's count of connections dropped because a listening socket's accept queue was full. */
async function listenOverflows(): Promise<number> {
  const lines = (await readFile('/proc/net/netstat', 'utf8')).split('\n');
  const header = lines.find((line) => line.startsWith('TcpExt:'))!.split(/\s+/);
  const values = lines.filter((line) => line.startsWith('TcpExt:'))[1]!.split(/\s+/);
  return Number(values[header.indexOf('ListenOverflows')]);
}

interface LoadResult {
  /** Accept-queue overflows on this machine while the load ran (the API's, as nothing else listens so busily). */
  listenOverflows: number;
  problems: [string, number][];
  report: LoadReport;
  samples: Sample[];
  peakRss: number;
  loadCpuSeconds: number;
  /** The machine's load averages (1, 5, 15 minutes) as polling began and at the end. */
  loadAverages: { start: number[]; end: number[] };
}

/**
 * Raises net.core.somaxconn to the API's backlog for this run when it is lower (kernels before 5.4
 * default to 128), and puts it back on the teardown: the product never changes sysctls.
 */
async function ensureSomaxconn(backlog: number, teardown: Teardown): Promise<number> {
  const current = Number((await readFile(SOMAXCONN, 'utf8')).trim());
  if (current >= backlog) return current;
  await writeFile(SOMAXCONN, String(backlog));
  teardown.add(`restoring net.core.somaxconn to ${current}`, () => writeFile(SOMAXCONN, String(current)));
  progress(`net.core.somaxconn raised from ${current} to ${backlog} for this run`);
  return backlog;
}

async function loadRun(drover: Drover, options: Options, workDir: string): Promise<LoadResult> {
  const agentsFile = path.join(workDir, 'simulated-agents.jsonl');
  await seedAgents(drover, options.simulated, agentsFile);
  // Every waiting poll is a socket in the API and one in the load process; both inherit this limit.
  const openFiles = Number(/^Max open files\s+(\d+)/m.exec(await readFile('/proc/self/limits', 'utf8'))?.[1]);
  if (openFiles < options.simulated + NOFILE_SPARE) {
    fail(`open files are limited to ${openFiles}: raise ulimit -n above ${options.simulated + NOFILE_SPARE}`);
  }
  const childrenCpu = cpuSeconds('self', 'children');
  const loadAtStart = os.loadavg();
  const overflowsBefore = await listenOverflows();
  const stopSampling = new AbortController();
  const sampling = sampleApi(drover, options.loadDatabase, options.loadPort, stopSampling.signal);
  const child: ChildProcess = spawn(
    process.execPath,
    [
      path.join(ROOT, 'dist/bench/agent-load.js'),
      '--url',
      drover.url,
      '--agents',
      agentsFile,
      '--seconds',
      String(options.loadSeconds),
      '--ramp-seconds',
      String(LOAD_RAMP_SECONDS),
      '--wait-ms',
      String(POLL_WAIT_MS),
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  stopSampling.abort();
  const samples = await sampling;
  if (code !== 0) throw new Error(`the load process exited with ${code}`);
  const loadCpuSeconds = cpuSeconds('self', 'children') - childrenCpu;
  const report = JSON.parse(stdout) as LoadReport;
  const problems = await apiProblems(
    path.join(workDir, 'load-api.log'),
    report.pollStartedAt - report.loginSeconds * 1000,
  );
  return {
    report,
    problems,
    listenOverflows: (await listenOverflows()) - overflowsBefore,
    samples,
    peakRss: peakRssBytes(drover.api.pid!),
    loadCpuSeconds,
    loadAverages: { start: loadAtStart, end: os.loadavg() },
  };
}

// ---------------------------------------------------------------------------------------------
// the report

interface RunRecord extends Measured {
  contender: Contender;
  size: number;
  round: number;
  /** The machine's 1-minute load average as the run began. */
  load: number;
  /** CPU of the run's hosts, all their processes, from its start until they were quiet again after it. */
  hostsCpuSeconds: number;
  /** The same, of the parts told apart (HOST_CPU_PARTS). */
  hostsCpuParts: Record<HostCpuPart, number>;
  /** Agent runs: offer-to-claim milliseconds of each task (offerToClaimMs). */
  offerToClaimMs: number[];
  /** Agent runs: offer to the agent's line as it begins, of each task (offerToAgentMs; null: not found). */
  offerToAgentMs: (number | null)[];
  /** The time the run's agents, all together, were ready to run and waited for a CPU, until the run ended. */
  agentsCpuWaitSeconds: number;
}

function fanoutSection(options: Options, records: RunRecord[]): string[] {
  const lines = ['## Fan-out: one restart of drover-probe.service on N hosts', ''];
  for (const size of options.sizes) {
    const { wall, table } = wallTimes(
      CONTENDERS,
      TITLES,
      records.filter((r) => r.size === size),
    );
    lines.push(
      `### N = ${size}`,
      '',
      ...table,
      '',
      `- agent / bare ssh2 (cold): **${(wall.agent.median / wall.ssh2.median).toFixed(2)}×** (medians); ` +
        `agent / drover ssh: **${(wall.agent.median / wall.ssh.median).toFixed(2)}×**`,
      `- the goal, agents at least as fast as the bare ssh2 script: **${wall.agent.median <= wall.ssh2.median ? 'met' : 'not met'}**`,
      hostsCpuLine(records.filter((r) => r.size === size && r.round > 0)),
      ...wakeLines(records.filter((r) => r.size === size && r.contender === 'agent' && r.round > 0)),
      '',
    );
  }
  lines.push(
    ...FANOUT_NOTES,
    '### Every run',
    '',
    '| N | round | contender | wall s | CPU s | CPU s on the hosts | load average |',
    '|--:|--:|---|--:|--:|--:|--:|',
    ...records.map(
      (r) =>
        `| ${r.size} | ${r.round === 0 ? 'warm-up' : r.round} | ${TITLES[r.contender]} | ${secs(r.seconds)} | ${secs(r.cpuSeconds)} | ${secs(r.hostsCpuSeconds)} | ${r.load.toFixed(2)} |`,
    ),
    '',
  );
  return lines;
}

/** The hosts' own CPU per run, per contender (medians): on this machine all hosts share its 2 cores. */
function hostsCpuLine(timed: RunRecord[]): string {
  const median = (contender: Contender) =>
    stats(timed.filter((r) => r.contender === contender).map((r) => r.hostsCpuSeconds)).median;
  const parts = (contender: Contender) =>
    (Object.keys(HOST_CPU_PARTS) as HostCpuPart[])
      .map(
        (part) =>
          `${part} ${secs(stats(timed.filter((r) => r.contender === contender).map((r) => r.hostsCpuParts[part])).median)}`,
      )
      .join(', ');
  return (
    '- CPU on the hosts per run (medians, all their processes: cgroup usage from the start of the run until the ' +
    `hosts were quiet again after it): ${CONTENDERS.map((c) => `${TITLES[c]} ${secs(median(c))} s (of it ${parts(c)})`).join('; ')}`
  );
}

const WAKE_GOAL_MS = 100;

/**
 * The wake-up goal: a queued task's agent woken within 100 ms, every task of the timed runs, measured
 * to its claim and to the agent's first line about it.
 */
function wakeLines(agentRuns: RunRecord[]): string[] {
  const claims = agentRuns.flatMap((r) => r.offerToClaimMs);
  const inHand = agentRuns.flatMap((r) => r.offerToAgentMs);
  const found = inHand.filter((ms): ms is number => ms !== null);
  const missing = inHand.length - found.length;
  return [
    ...wakeLine(
      claims,
      "from a task's offer (offered_at, then the Redis publish) to its claim by the agent's waiting poll (started_at: " +
        "the database's clock as the claim was made, in the call that claims for every poll woken in the same turn)",
    ),
    ...wakeLine(
      found,
      "from a task's offer to the agent's line as it begins the task (journald's time of the line: the agent has the " +
        `command)${missing > 0 ? `; ${missing} line(s) not found in the journal, left out` : ''}`,
    ),
    agentsWaitLine(agentRuns),
  ];
}

/** How long an agent waited for a CPU in a run: what a machine shared by the whole fleet adds to its wake-up. */
function agentsWaitLine(agentRuns: RunRecord[]): string {
  const perAgentMs = agentRuns.map((r) => (1000 * r.agentsCpuWaitSeconds) / r.size);
  const { median, max } = stats(perAgentMs);
  return (
    `- waiting for a CPU: each agent was ready to run and waited for a core ${median.toFixed(0)} ms per agent run ` +
    `(median of the runs; max ${max.toFixed(0)} ms), the PSI "some" total of its service's cgroup (cpu.pressure) ` +
    'from the POST until the operation finished, divided by the hosts'
  );
}

function wakeLine(ms: number[], what: string): string[] {
  const all = [...ms].sort((a, b) => a - b);
  if (all.length === 0) return [];
  const at = (q: number): number => all[Math.min(all.length - 1, Math.floor(q * all.length))]!;
  const within = all.filter((value) => value <= WAKE_GOAL_MS).length;
  return [
    `- wake-up, ${what}, over the ${all.length} tasks of the timed agent runs: median ${at(0.5).toFixed(0)} ms, ` +
      `p95 ${at(0.95).toFixed(0)} ms, max ${all[all.length - 1]!.toFixed(0)} ms; ${within} of ${all.length} within ` +
      `${WAKE_GOAL_MS} ms: the goal (woken within ${WAKE_GOAL_MS} ms) **${within === all.length ? 'met' : at(0.5) <= WAKE_GOAL_MS ? 'met for the median, not for every task' : 'not met'}**`,
  ];
}

const FANOUT_NOTES = [
  '### What each contender does and checks',
  '',
  '- **agent**: `POST /v1/operations` `{"verb":"restart","unit":"drover-probe.service","selector":"first-N=yes","concurrency":N}` ' +
    "to an API and worker whose database has the hosts as agent hosts (each enrolled by the agent's own install " +
    'script, `installCommandLine` of `src/cli/agents.ts` run inside the host, with a join token bound to the host; ' +
    'the API listens on the fleet gateway). The worker offers each task (a Redis wake-up of the waiting long poll), ' +
    "the host's agent claims it, reads the unit, runs `systemctl restart` itself, reads the unit until it settled and " +
    'reports the outcome, which the API records with its audit event. The time runs from the POST until ' +
    "the operation's row in PostgreSQL (read every 20 ms over the benchmark's own connection) shows it finished; it " +
    'must have succeeded with N tasks.',
  '- **drover ssh**: the same POST to a second API and worker (another database and queue prefix) whose database has ' +
    'the same hosts as SSH hosts with pinned host keys; the worker (WORKER_CONCURRENCY=64) runs each task over its ' +
    'pooled SSH connection (SSH_CONNECT_TIMEOUT_MS 60 s: the warm-up logs in to every host at once): `systemctl show` before, `systemctl restart`, `systemctl show` until settled, the audit ' +
    'event. Its pool keeps connections between runs (SSH_IDLE_TIMEOUT_MS 300 s): after the warm-up it does not connect.',
  '- **bare ssh2 (cold)**: in this process, a new ssh2 connection to every host at once (host key checked against ' +
    'the pinned fingerprint), one `systemctl restart drover-probe.service` each, the connection closed: the ' +
    'handshake is paid in every run, nothing is read or recorded. The lower bound of SSH without a pool.',
  '- after every run (warm-up included), inside every host through nsenter (neither SSH nor the agent): the unit has ' +
    'a new MainPID and `/var/lib/drover-probe/starts` (one line per start, written before `systemctl restart` returns) ' +
    "has exactly one more line; anything else fails the benchmark. Every run starts at least the probe's StartLimitIntervalSec " +
    "(systemd's default, 10 s) + 1 s after the run before it ended, so that no contender restarts a probe that " +
    "started within that interval, which a unit restarted across a fleet rarely did: drover's start-limit check then " +
    'judges from the unit alone and does not read its journal (it does when the unit started within the interval; ' +
    'in runs before 6 December 2026, 06:00 UTC a round of three runs took about 28-30 s, so the agent and drover ssh ' +
    'runs often came within 10 s of the run before and read it), and once the hosts have been quiet for 2 s ' +
    '(their cgroups used under 0.02 + 0.004 × N of a core: agents that just started list their units for seconds); the order of ' +
    "the contenders rotates every round; the warm-up round is not in the statistics. CPU s: the contender's drover " +
    '(API + worker) until its queues are idle again (the discovery after each SSH action included), or this process for bare ssh2; ' +
    "PostgreSQL and Redis are not counted for anyone. CPU s on the hosts: every process of the run's hosts (sshd, the agent, " +
    'systemd and what they ran), from the cgroup v2 usage of each host, read before the run and once they are quiet again after it.',
  '',
];

function idleSection(idle: IdleResult): string[] {
  const met = idle.rss.max < IDLE_GOAL_RSS_BYTES;
  return [
    `## Idle agents: ${idle.agents} agents, ${idle.seconds.toFixed(0)} s with nothing to do`,
    '',
    '| what | median per agent | max per agent |',
    '|---|--:|--:|',
    `| VmRSS at the end | ${mib(idle.rss.median)} | ${mib(idle.rss.max)} |`,
    `| of it RssAnon: the agent's own memory (heap, stacks) | ${mib(idle.rssAnon.median)} | ${mib(idle.rssAnon.max)} |`,
    `| of it RssFile: mapped files (the node binary's code and data, shared with every node process) | ${mib(idle.rssFile.median)} | ${mib(idle.rssFile.max)} |`,
    `| CPU s (utime + stime) over the window | ${idle.cpuSeconds.median.toFixed(3)} | ${idle.cpuSeconds.max.toFixed(3)} |`,
    `| CPU, % of one core | ${((100 * idle.cpuSeconds.median) / idle.seconds).toFixed(3)} | ${((100 * idle.cpuSeconds.max) / idle.seconds).toFixed(3)} |`,
    `| CPU s with the processes it ran (cutime + cstime: none when idle; the heartbeat reads the systemd version over D-Bus) | ${idle.withChildren.median.toFixed(3)} | ${idle.withChildren.max.toFixed(3)} |`,
    `| CPU s of the host's systemd (PID 1) over the window (the agent's listings and reads are work for it) | ${idle.systemdCpuSeconds.median.toFixed(3)} | ${idle.systemdCpuSeconds.max.toFixed(3)} |`,
    '',
    '- read inside every host (nsenter): `/proc/<MainPID of drover-agent.service>/stat` (utime + stime) and `status` ' +
      '(VmRSS, VmHWM) at the start and the end of the window, which begins 5 s after the last fan-out run; meanwhile ' +
      'the agents do what an idle agent does: a heartbeat every 15 s and a long poll answered empty every 25 s',
    `- peak RSS (VmHWM) of any agent over its life: ${mib(idle.peakRss)} (the fan-out runs included)`,
    `- all ${idle.agents} agents together: ${idle.cpuSeconds.total.toFixed(2)} CPU s in the window; ` +
      `the API they poll: ${idle.apiCpuSeconds.toFixed(2)} CPU s, its worker ${idle.workerCpuSeconds.toFixed(2)} CPU s`,
    `- the goal, RSS < 40 MB and CPU ~0: RSS **${met ? 'met' : 'not met'}** (max ${mib(idle.rss.max)}); ` +
      `CPU ${((100 * idle.cpuSeconds.median) / idle.seconds).toFixed(3)} % of a core per agent (median)`,
    `- Node's own floor, on the same hosts over the same window: a node process that does nothing ` +
      `(\`node -e 'setInterval(() => {}, 2 ** 30)'\`, the agent's node binary, a unit of its own started as the window began) ` +
      `holds VmRSS ${mib(idle.nodeFloor.rss.median)} median, ${mib(idle.nodeFloor.rss.max)} max ` +
      `(RssAnon ${mib(idle.nodeFloor.rssAnon.median)}, RssFile ${mib(idle.nodeFloor.rssFile.median)}); ` +
      `the agent above it: ${mib(idle.rss.median - idle.nodeFloor.rss.median)} median`,
    '',
  ];
}

function loadSection(options: Options, load: LoadResult, somaxconn: number): string[] {
  const { report, samples } = load;
  /** CPU seconds of the API between the samples nearest `from` and `to`, and the seconds between them. */
  const cpuBetween = (from: number, to: number): { cpu: number; seconds: number } => {
    const inside = samples.filter((s) => s.at >= from && s.at <= to);
    if (inside.length < 2) return { cpu: 0, seconds: 0 };
    const first = inside[0]!;
    const last = inside[inside.length - 1]!;
    return { cpu: last.cpu - first.cpu, seconds: (last.at - first.at) / 1000 };
  };
  const percent = (window: { cpu: number; seconds: number }): string =>
    `${window.cpu.toFixed(1)} s in ${window.seconds.toFixed(0)} s = ${((100 * window.cpu) / Math.max(1, window.seconds)).toFixed(0)} % of one core`;
  const ramp = cpuBetween(report.pollStartedAt, report.rampEndedAt);
  const steadyCpu = cpuBetween(report.rampEndedAt, report.endedAt);
  const beforePolling = samples.filter((s) => s.at <= report.pollStartedAt);
  const rssAtPollStart = beforePolling[beforePolling.length - 1]?.rss ?? samples[0]!.rss;
  const answeredTotal = Object.values(report.answered).reduce((sum, n) => sum + n, 0);
  const steadyFrom = Math.ceil((report.rampEndedAt - report.pollStartedAt) / 1000);
  const steadyCounts = report.answeredPerSecond.slice(steadyFrom);
  const steadyAnswered = steadyCounts.reduce((sum, n) => sum + n, 0);
  const steadyRate = steadyAnswered / Math.max(1, steadyCounts.length);
  // After the ramp every answered poll is followed by the agent's next one: a poll cycle.
  const perThousandPolls = (1000 * steadyCpu.cpu) / Math.max(1, steadyAnswered);
  const rssAtEnd = samples[samples.length - 1]!.rss;
  const rssPerHeldPoll = (rssAtEnd - rssAtPollStart) / Math.max(1, report.inFlightAtEnd);
  const live = samples.map((s) => s.liveMs).filter((ms): ms is number => ms !== null);
  const liveFailed = samples.length - live.length;
  const liveStats = live.length > 0 ? stats(live) : null;
  return [
    `## The API under ${report.agents} simulated idle agents long-polling`,
    '',
    `- sign-in: ${report.loggedIn} of ${report.agents} agents got a credential (challenge + session over HTTP, ` +
      `64 at once) in ${report.loginSeconds.toFixed(1)} s (${((2 * report.loggedIn) / report.loginSeconds).toFixed(0)} requests/s)` +
      (Object.keys(report.loginFailures).length > 0 ? `; failures: ${JSON.stringify(report.loginFailures)}` : ''),
    `- the agents: ${report.agents} hosts and agents rows inserted by SQL into a fresh database, each agent with an ` +
      'Ed25519 key of its own; one API (`dist/src/main.js`: Prisma over node-postgres, `DATABASE_POOL_SIZE=20`, ' +
      `\`HTTP_LISTEN_BACKLOG=${LOAD_LISTEN_BACKLOG}\` with net.core.somaxconn ${somaxconn}) and one worker, ` +
      'PostgreSQL and Redis on this machine; a separate load process (`dist/bench/agent-load.js`, ' +
      'one keep-alive socket per agent) does the sign-ins and the polls',
    `- polling: every agent starts within ${LOAD_RAMP_SECONDS} s (the ramp), then for ${options.loadSeconds} s more each holds ` +
      `GET /agent/v1/commands/next?waitMs=${POLL_WAIT_MS} and asks again as soon as it is answered`,
    `- the machine's load average (1, 5, 15 min) as the sign-ins began: ${load.loadAverages.start.map((n) => n.toFixed(2)).join(', ')}; ` +
      `at the end: ${load.loadAverages.end.map((n) => n.toFixed(2)).join(', ')}`,
    '',
    '| what | value |',
    '|---|--:|',
    `| polls answered in ${LOAD_RAMP_SECONDS + options.loadSeconds} s | ${answeredTotal} (${Object.entries(
      report.answered,
    )
      .map(([key, n]) => `${key}: ${n}`)
      .join(', ')}) |`,
    `| answered per second after the ramp (mean) | ${steadyRate.toFixed(0)} |`,
    `| answered per second, peak second | ${Math.max(0, ...report.answeredPerSecond)} |`,
    `| answered 200 before their wait ended | ${report.answeredEarly} |`,
    `| agents never answered (first poll still open or failed at the end) | ${report.openAtEnd} |`,
    `| slowest short answer (errors, early answers) | ${(report.slowestShortAnswerMs / 1000).toFixed(1)} s |`,
    `| polls held open by the server at once: max, at the end | ${report.maxInFlight}, ${report.inFlightAtEnd} |`,
    `| API CPU during the ramp (every agent's first poll) | ${percent(ramp)} |`,
    `| API CPU after the ramp | ${percent(steadyCpu)} |`,
    `| API CPU per 1,000 poll cycles after the ramp (answer + the next poll) | ${perThousandPolls.toFixed(2)} s |`,
    `| API RSS: before the sign-ins, when polling began, at the end, peak (VmHWM) | ${mib(samples[0]!.rss)}, ${mib(rssAtPollStart)}, ${mib(rssAtEnd)}, ${mib(load.peakRss)} |`,
    `| API RSS per held poll ((at the end − when polling began) / polls held at the end) | ${(rssPerHeldPoll / 1024).toFixed(0)} KiB |`,
    `| GET /healthz/live while loaded (event loop): median, max | ${liveStats ? `${liveStats.median.toFixed(0)} ms, ${liveStats.max.toFixed(0)} ms` : 'never answered'}${liveFailed > 0 ? ` (${liveFailed} of ${samples.length} not answered within 10 s)` : ''} |`,
    `| the API's PostgreSQL connections (max) | ${Math.max(...samples.map((s) => s.dbConnections))} |`,
    `| the load process, CPU s in all | ${load.loadCpuSeconds.toFixed(1)} |`,
    `| connections dropped by a full accept queue (TcpExt ListenOverflows, this machine) | ${load.listenOverflows} |`,
    `| the API's accept queue, longest seen (sampled every second; its backlog ${Math.min(LOAD_LISTEN_BACKLOG, somaxconn)}) | ${Math.max(...samples.map((s) => s.acceptQueue))} |`,
    '',
    `Answered per second, second by second: ${report.answeredPerSecond.join(' ')}`,
    '',
    ...(load.problems.length === 0
      ? ['The API logged no warning or error meanwhile.', '']
      : [
          "The API's warnings and errors meanwhile (its log, level ≥ 40), most frequent first:",
          '',
          '| times | message |',
          '|--:|---|',
          ...load.problems.slice(0, 8).map(([text, n]) => `| ${n} | ${text.replaceAll('|', '\\|')} |`),
          '',
        ]),
  ];
}

// ---------------------------------------------------------------------------------------------
// the run

async function fleetParts(
  options: Options,
  workDir: string,
  teardown: Teardown,
): Promise<{ records: RunRecord[]; idle: IdleResult | null; fleet: string; machine: string[] }> {
  const largest = Math.max(...options.sizes);
  // A kept fleet larger than needed serves too: the runs use its first hosts.
  const inventory = options.keepFleet ? await readInventory() : null;
  const fleetSize = inventory && inventory.length >= largest ? inventory.length : largest;
  const { hosts: allHosts, fleet: fleetOrigin } = await provideFleet(fleetSize, options.keepFleet, teardown);
  const hosts = allHosts.slice(0, largest);
  const fleet = await readFleetInstance();
  const privateKey = await readFile(FLEET_KEY);
  const sshDrover = await startDrover(
    hosts.map((host, index) => ({ ...host, labels: { ...host.labels, ...subsetLabels(index, options.sizes) } })),
    {
      ...SSH_DROVER,
      workDir,
      logPrefix: 'ssh-',
      // The warm-up logs in to every host at once (key exchange, PAM): on 2 cores shared with 50
      // hosts some of those handshakes took over the default 10 s.
      env: { SSH_CONNECT_TIMEOUT_MS: '60000' },
    },
    teardown,
  );
  const agentDrover = await startDrover(
    [],
    {
      ...AGENT_DROVER,
      workDir,
      logPrefix: 'agent-',
      listenAddress: fleet.gateway,
      profileDir: options.cpuProfileDir,
      env: { AGENT_BUNDLE_DIR: path.join(ROOT, 'dist/agent') },
    },
    teardown,
  );
  if (options.keepFleet) {
    teardown.add('removing the agents', () =>
      eachLimited(hosts, HOST_PARALLEL, (host) => uninstallAgent(fleet, host)).then(() => undefined),
    );
  }
  await installAgents(agentDrover, fleet, hosts, options.sizes);
  const profiledAgents =
    options.cpuProfileDir && options.parts.includes('fanout') ? hosts.slice(0, PROFILED_AGENTS) : [];
  await eachLimited(profiledAgents, HOST_PARALLEL, (host) => profileAgent(fleet, host));

  const records: RunRecord[] = [];
  if (options.parts.includes('fanout')) {
    const contenders: Record<Contender, (size: number) => Promise<Measured>> = {
      agent: (size) => operationRun(agentDrover, `${subsetLabel(size)}=yes`, size, droverPids(agentDrover)),
      ssh: (size) => operationRun(sshDrover, `${subsetLabel(size)}=yes`, size, droverPids(sshDrover)),
      // Every host at once: the worker opens as many handshakes as it has task slots.
      ssh2: (size) => bareSsh2ColdRun(hosts.slice(0, size), privateKey, size),
    };
    // No run restarts the probe within its start-limit interval of the run before (see FANOUT_NOTES).
    const runGapMs = (await probeStartLimitIntervalMs(fleet, hosts[0]!)) + START_LIMIT_MARGIN_MS;
    let lastRunEndedAt = -Infinity;
    for (const size of options.sizes) {
      const subset = hosts.slice(0, size);
      for (let round = 0; round <= options.runs; round += 1) {
        const label = `N=${size} ${round === 0 ? 'warm-up' : `round ${round}`}`;
        for (let i = 0; i < CONTENDERS.length; i += 1) {
          const contender = CONTENDERS[(round + i) % CONTENDERS.length]!;
          await sleep(Math.max(0, lastRunEndedAt + runGapMs - performance.now()));
          await untilHostsQuiet(fleet, subset, `${label}, ${TITLES[contender]}`);
          const before = await probeStates(fleet, subset);
          const load = os.loadavg()[0]!;
          const hostsCpuBefore = await hostsCpuByPart(fleet, subset);
          const agentsWaitBefore = await agentsCpuWaitSeconds(fleet, subset);
          const measured = await contenders[contender](size);
          lastRunEndedAt = performance.now();
          const agentsWait = (await agentsCpuWaitSeconds(fleet, subset)) - agentsWaitBefore;
          const problems = restartProblems(before, await probeStates(fleet, subset));
          if (problems.length > 0) {
            throw new Error(`${label}, ${contender}: ${problems.length} problems: ${problems.slice(0, 5).join('; ')}`);
          }
          // What the run left the hosts to do (an agent's unit report, the SSH discoveries) counts too.
          await untilHostsQuiet(fleet, subset, `${label}, after ${TITLES[contender]}`);
          const hostsCpuAfter = await hostsCpuByPart(fleet, subset);
          const hostsCpu = hostsCpuAfter.total - hostsCpuBefore.total;
          const hostsCpuParts = Object.fromEntries(
            (Object.keys(HOST_CPU_PARTS) as HostCpuPart[]).map((part) => [
              part,
              hostsCpuAfter.parts[part] - hostsCpuBefore.parts[part],
            ]),
          ) as Record<HostCpuPart, number>;
          const agentOperation = contender === 'agent' ? measured.operationId : undefined;
          const wake = agentOperation ? await offerToClaimMs(agentDrover, agentOperation) : [];
          const inHand = agentOperation ? await offerToAgentMs(fleet, subset, agentDrover, agentOperation) : [];
          records.push({
            contender,
            size,
            round,
            load,
            ...measured,
            hostsCpuSeconds: hostsCpu,
            hostsCpuParts,
            offerToClaimMs: wake,
            offerToAgentMs: inHand,
            agentsCpuWaitSeconds: agentsWait,
          });
          progress(
            `${label}: ${TITLES[contender]} ${secs(measured.seconds)} s (CPU ${secs(measured.cpuSeconds)} s, ` +
              `on the hosts ${secs(hostsCpu)} s), ` +
              `a new MainPID and one start on all ${size} hosts`,
          );
        }
      }
    }
  }
  if (options.cpuProfileDir && profiledAgents.length > 0) {
    const directory = options.cpuProfileDir;
    await eachLimited(profiledAgents, HOST_PARALLEL, (host) => collectAgentProfiles(fleet, host, directory));
  }
  const idle = options.parts.includes('idle') ? await idleRun(agentDrover, fleet, hosts, options.idleSeconds) : null;
  return { records, idle, fleet: fleetOrigin, machine: await machine(agentDrover.db) };
}

async function benchmark(options: Options, teardown: Teardown): Promise<void> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'drover-bench-agent-'));
  progress(`logs in ${workDir} (kept if the run fails)`);
  // Before any run: a directory that cannot be made must not cost the measured runs.
  if (options.cpuProfileDir) await mkdir(options.cpuProfileDir, { recursive: true });
  await ensureServices();

  let fleetResults: Awaited<ReturnType<typeof fleetParts>> | null = null;
  if (options.parts.includes('fanout') || options.parts.includes('idle')) {
    // Its own teardown, run before the load part: the fleet and its drovers are gone by then.
    const fleetTeardown = new Teardown();
    teardown.add('the fleet part', () => fleetTeardown.run());
    try {
      fleetResults = await fleetParts(options, workDir, fleetTeardown);
    } finally {
      await fleetTeardown.run();
    }
  }
  let load: LoadResult | null = null;
  let somaxconn = 0;
  let machineLines = fleetResults?.machine ?? [];
  if (options.parts.includes('load')) {
    // Before the API listens: the kernel sizes its accept queue then.
    somaxconn = await ensureSomaxconn(LOAD_LISTEN_BACKLOG, teardown);
    const loadDrover = await startDrover(
      [],
      {
        database: options.loadDatabase,
        queuePrefix: options.loadDatabase,
        port: options.loadPort,
        workDir,
        logPrefix: 'load-',
        profileDir: options.cpuProfileDir,
        env: { HTTP_LISTEN_BACKLOG: String(LOAD_LISTEN_BACKLOG) },
      },
      teardown,
    );
    machineLines = await machine(loadDrover.db);
    load = await loadRun(loadDrover, options, workDir);
  }

  const version = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const markdown = [
    '# The per-host agent: fan-out against SSH, idle cost, the API under many agents',
    '',
    '## Run',
    '',
    `- date: ${new Date().toISOString()}; \`node dist/bench/agent.js ${process.argv.slice(2).join(' ')}\`; drover ${version.version}`,
    ...machineLines,
    ...(fleetResults
      ? [
          `- fleet: ${Math.max(...options.sizes)} systemd-nspawn hosts of \`test/fleet/fleet.sh\` (${fleetResults.fleet})`,
        ]
      : []),
    '',
    ...(fleetResults && options.parts.includes('fanout') ? fanoutSection(options, fleetResults.records) : []),
    ...(fleetResults?.idle ? idleSection(fleetResults.idle) : []),
    ...(load ? loadSection(options, load, somaxconn) : []),
  ].join('\n');
  await writeReport(markdown, options.out);
  if (load && load.problems.length > 0) progress(`the API logged problems under load: its log is kept in ${workDir}`);
  else await rm(workDir, { recursive: true, force: true });
}

runBenchmark('agent', (teardown) => benchmark(parseOptions(process.argv.slice(2)), teardown));

/**
 * Rolling restart benchmark: restarts nginx.service on every host of a real systemd fleet
 * (test/fleet/fleet.sh, systemd-nspawn) one host first, then a quarter of the hosts at a time,
 * checking each host with GET http://<host>:80/ and tolerating one failed host — three ways, side
 * by side, on the same fleet in one run:
 *
 *   drover   a rollout through the HTTP API (POST /v1/rollouts, then its event stream until the
 *            finished event), with the API and a worker started here against a scratch database
 *   Ansible  bench/ansible/rolling-restart.yml, tuned (forks, pipelining, ControlPersist, no facts),
 *            host keys checked against the fleet's known_hosts
 *   ssh2     a bare in-process ssh2 script doing the same steps and nothing else: the lower bound
 *
 *   npm run bench:rollout                     # build, boot a 50-host fleet, 3 rounds, tear down
 *   node dist/bench/rollout-restart.js --hosts 20 --runs 5 --keep-fleet --out /tmp/rollout.md
 *
 * Options: --hosts N (default 50), --runs R (3 timed rounds, after one warm-up round), --keep-fleet
 * (reuse a fleet of N hosts that is up, and leave the fleet up at the end), --out FILE (default
 * bench/results/rollout-restart.md); for profiling, --only drover,ssh2 (those contenders, no report)
 * and --cpu-prof DIR (V8 CPU profiles of drover's API and worker). DROVER_FLEET_STATE is the fleet's state directory, as for
 * fleet.sh. Needs root (the fleet), PostgreSQL and Redis on 127.0.0.1 (started when absent, as
 * `npm run demo` does) and Ansible (installed with apt-get when absent).
 *
 * After every run the benchmark checks on each host, over its own ssh2 connections, that nginx's
 * MainPID changed and that the journal logged exactly one start of nginx.service since the run
 * began: a contender that restarted nothing, or restarted twice, fails the benchmark.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Client as SshClient } from 'ssh2';
import {
  call,
  Drover,
  ensureServices,
  finishedEvent,
  machine,
  Rollout,
  startDrover,
  waitForIdleQueues,
} from './lib/drover';
import { FLEET_KEY, FLEET_STATE, FleetHost, provideFleet, sshConnect, sshExec } from './lib/fleet';
import {
  cpuSeconds,
  errorText,
  fail,
  mib,
  peakRssBytes,
  positiveInteger,
  progress,
  ROOT,
  run,
  runBenchmark,
  runOrFail,
  secs,
  stats,
  Teardown,
  wallTimes,
  writeReport,
} from './lib/harness';

const PLAYBOOK = path.join(ROOT, 'bench/ansible/rolling-restart.yml');
const ANSIBLE_CONFIG = path.join(ROOT, 'bench/ansible/ansible.cfg');
const DEFAULT_OUT = path.join(ROOT, 'bench/results/rollout-restart.md');

const DATABASE = 'drover_bench';
const QUEUE_PREFIX = 'drover-bench';
const API_PORT = 8091;
const MAX_FAILURES = 1;
const execFileAsync = promisify(execFile);
const PROBE_TIMEOUT_MS = 2_000;
/** systemd's "unit started" journal message (SD_MESSAGE_UNIT_STARTED): one per start or restart. */
const UNIT_STARTED = '39f53479d3a045ac8e11786248231fbf';

/** The rollout drover runs; the other contenders do the same steps, with the same budget as far as each can. */
const ROLLOUT = {
  verb: 'restart',
  unit: 'nginx.service',
  selector: 'fleet=nspawn',
  batches: { sizes: [1, '25%'] },
  maxFailures: MAX_FAILURES,
  healthGate: {
    minHealthyTimeMs: 0,
    probes: [{ type: 'http', port: 80, path: '/', expectStatus: 200, timeoutMs: PROBE_TIMEOUT_MS }],
  },
};

/** The pause before every run, so no contender runs in the aftermath of the one before. */
const QUIET_MS = 2_000;

/** drover's target: its median wall time at most this many times the bare ssh2 script's. */
const GOAL_RATIO = 1.5;

const CONTENDERS = ['drover', 'ansible', 'ssh2'] as const;
type Contender = (typeof CONTENDERS)[number];
const TITLES: Record<Contender, string> = { drover: 'drover', ansible: 'Ansible', ssh2: 'bare ssh2' };

// ---------------------------------------------------------------------------------------------
// options and output

interface Options {
  hosts: number;
  runs: number;
  keepFleet: boolean;
  out: string;
  /** The contenders to run (all by default); a subset is for profiling, not for the committed table. */
  only: readonly Contender[];
  /** A directory for V8 CPU profiles of drover's API and worker (written when they stop), or null. */
  cpuProfileDir: string | null;
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    hosts: 50,
    runs: 3,
    keepFleet: false,
    out: DEFAULT_OUT,
    only: CONTENDERS,
    cpuProfileDir: null,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (arg === '--keep-fleet') options.keepFleet = true;
    else if (arg === '--out') options.out = path.resolve(argv[++i] ?? fail('--out needs a file'));
    else if (arg === '--cpu-prof')
      options.cpuProfileDir = path.resolve(argv[++i] ?? fail('--cpu-prof needs a directory'));
    else if (arg === '--only') {
      const names = (argv[++i] ?? '').split(',');
      const unknown = names.filter((name) => !(CONTENDERS as readonly string[]).includes(name));
      if (unknown.length > 0 || names.length === 0) fail(`--only takes a list of ${CONTENDERS.join(', ')}`);
      options.only = names as Contender[];
    } else if (arg === '--hosts' || arg === '--runs') {
      options[arg === '--hosts' ? 'hosts' : 'runs'] = positiveInteger(arg, argv[++i]);
    } else fail(`unknown option ${arg}`);
  }
  if (options.hosts > 1_000) fail('--hosts must be at most 1000 (the most fleet.sh boots)');
  return options;
}

// ---------------------------------------------------------------------------------------------
// the batches, as drover plans them

/** drover's plan of `sizes: [1, "25%"]`: one host, then a quarter of all hosts (rounded up) at a time. */
function batchSizes(hosts: number): number[] {
  const quarter = Math.ceil(hosts / 4);
  const sizes = [1];
  for (let done = 1; done < hosts; done += quarter) sizes.push(Math.min(quarter, hosts - done));
  return sizes;
}

/**
 * Ansible's closest match to maxFailures: 1. It compares failed/batch size with
 * max_fail_percentage per batch, not across the play, so the best it can do is let one host of a
 * batch fail but not two: halfway between one and two hosts of the largest batch.
 */
function maxFailPercent(largestBatch: number): number {
  return Math.min(100, Number(((100 * (MAX_FAILURES + 0.5)) / largestBatch).toFixed(2)));
}

interface NginxState {
  mainPid: number;
  /** Starts of nginx.service the journal logged after the `since` of the snapshot. */
  starts: number;
}

/**
 * The benchmark's own connections to every host, open for the whole run, to check what each
 * contender did. They are separate from every contender's, and outside every timing.
 */
class FleetChecker {
  private constructor(private readonly sessions: { host: FleetHost; client: SshClient }[]) {}

  static async open(hosts: FleetHost[], privateKey: Buffer): Promise<FleetChecker> {
    const settled = await Promise.allSettled(hosts.map((host) => sshConnect(host, privateKey)));
    const sessions = hosts.flatMap((host, i) => {
      const result = settled[i]!;
      return result.status === 'fulfilled' ? [{ host, client: result.value }] : [];
    });
    const checker = new FleetChecker(sessions);
    const failed = settled.flatMap((result, i) =>
      result.status === 'rejected' ? [`${hosts[i]!.name}: ${errorText(result.reason)}`] : [],
    );
    if (failed.length > 0) {
      checker.close();
      throw new Error(`cannot connect to the fleet: ${failed.slice(0, 5).join('; ')}`);
    }
    return checker;
  }

  async snapshot(sinceMs: number): Promise<Map<string, NginxState>> {
    const command =
      'systemctl show -p MainPID --value nginx.service && ' +
      `journalctl -q -o json --output-fields=JOB_RESULT -u nginx.service MESSAGE_ID=${UNIT_STARTED} ` +
      `--since @${Math.floor(sinceMs / 1000)}`;
    const states = await Promise.all(
      this.sessions.map(async ({ host, client }) => {
        const result = await sshExec(client, command);
        if (result.code !== 0) throw new Error(`${host.name}: ${command}: exit ${result.code}: ${result.stderr}`);
        const [mainPid = '', ...events] = result.stdout.trim().split('\n');
        // --since takes whole seconds; the microsecond timestamps decide.
        const starts = events.filter((line) => {
          const event = JSON.parse(line) as { __REALTIME_TIMESTAMP: string; JOB_RESULT?: string };
          return event.JOB_RESULT === 'done' && Number(event.__REALTIME_TIMESTAMP) > sinceMs * 1000;
        }).length;
        return [host.name, { mainPid: Number(mainPid), starts }] as const;
      }),
    );
    return new Map(states);
  }

  close(): void {
    for (const { client } of this.sessions) client.end();
  }
}

/** What is wrong unless nginx has a new MainPID and started exactly once on every host. */
function restartProblems(before: Map<string, NginxState>, after: Map<string, NginxState>): string[] {
  return [...after].flatMap(([name, state]) => {
    const problems: string[] = [];
    if (state.mainPid === 0) problems.push('nginx is not running');
    else if (state.mainPid === before.get(name)?.mainPid) problems.push(`MainPID ${state.mainPid} unchanged`);
    if (state.starts !== 1) problems.push(`nginx.service started ${state.starts} times`);
    return problems.map((problem) => `${name}: ${problem}`);
  });
}

// ---------------------------------------------------------------------------------------------
// the contenders

interface Measured {
  seconds: number;
  /** CPU seconds on this machine: see the notes of the report for what each contender counts. */
  cpuSeconds: number;
  droverCpu?: { api: number; worker: number };
  auditEvents?: Record<string, number>;
}

async function droverRun(drover: Drover): Promise<Measured> {
  const { rows } = await drover.db.query<{ seq: string }>(
    'SELECT coalesce(max(seq), 0)::text AS seq FROM audit_events',
  );
  const api = cpuSeconds(drover.api.pid!);
  const worker = cpuSeconds(drover.worker.pid!);
  const started = performance.now();
  const created = await call<Rollout>(drover, 'POST', '/v1/rollouts', ROLLOUT, 201);
  await finishedEvent(drover, created.id);
  const seconds = (performance.now() - started) / 1000;
  const rollout = await call<Rollout>(drover, 'GET', `/v1/rollouts/${created.id}`, undefined, 200);
  // The discoveries a finished rollout queues for its hosts are work it caused: they count in
  // drover's CPU, and the next contender starts only once they are done.
  await waitForIdleQueues(drover.queues);
  const droverCpu = { api: cpuSeconds(drover.api.pid!) - api, worker: cpuSeconds(drover.worker.pid!) - worker };
  if (rollout.status !== 'succeeded') {
    const unfinished = rollout.hosts.filter((host) => host.state !== 'succeeded');
    throw new Error(
      `rollout ${rollout.id} ${rollout.status}${rollout.reason ? ` (${rollout.reason})` : ''}; ` +
        unfinished.map((host) => `${host.name}: ${host.state}`).join(', '),
    );
  }
  const audit = await drover.db.query<{ action: string; count: string }>(
    'SELECT action, count(*)::text AS count FROM audit_events WHERE seq > $1 GROUP BY action ORDER BY action',
    [rows[0]!.seq],
  );
  return {
    seconds,
    cpuSeconds: droverCpu.api + droverCpu.worker,
    droverCpu,
    auditEvents: Object.fromEntries(audit.rows.map((row) => [row.action, Number(row.count)])),
  };
}

interface AnsibleSetup {
  inventory: string;
  extraVars: string;
  workDir: string;
}

/** The inventory Ansible reads (YAML's JSON form): every host by address, the fleet's key and known_hosts. */
function ansibleInventory(hosts: FleetHost[]): string {
  const sshArgs = [
    `-o UserKnownHostsFile=${path.join(FLEET_STATE, 'known_hosts')}`,
    '-o GlobalKnownHostsFile=/dev/null',
    '-o StrictHostKeyChecking=yes',
    '-o IdentitiesOnly=yes',
  ];
  return JSON.stringify({
    all: {
      hosts: Object.fromEntries(
        hosts.map((host) => [
          host.name,
          { ansible_host: host.address, ansible_port: host.port, ansible_user: host.sshUser },
        ]),
      ),
      vars: { ansible_ssh_private_key_file: FLEET_KEY, ansible_ssh_common_args: sshArgs.join(' ') },
    },
  });
}

async function ansibleRun(setup: AnsibleSetup, label: string): Promise<Measured> {
  // A fresh control directory per run: every run connects, as the ssh2 contender does.
  const controlDir = await mkdtemp(path.join(setup.workDir, 'cp-'));
  const log = path.join(setup.workDir, `ansible-${label.replace(/\W+/g, '-')}.log`);
  const env = { ...process.env, ANSIBLE_CONFIG, ANSIBLE_SSH_CONTROL_PATH_DIR: controlDir };
  const cpu = cpuSeconds('self', 'children');
  const started = performance.now();
  const code = await run('ansible-playbook', ['-i', setup.inventory, '-e', setup.extraVars, PLAYBOOK], log, env);
  const seconds = (performance.now() - started) / 1000;
  const cpuSpent = cpuSeconds('self', 'children') - cpu;
  await closeControlMasters(controlDir);
  if (code !== 0) throw new Error(`ansible-playbook exited with ${code}: see ${log}`);
  return { seconds, cpuSeconds: cpuSpent };
}

/** Ends the ssh masters ControlPersist keeps for 60 s, so none outlives its run (or the benchmark). */
async function closeControlMasters(controlDir: string): Promise<void> {
  const sockets = await readdir(controlDir);
  await Promise.all(
    sockets.map((socket) =>
      // A master that already exited has nothing to close.
      execFileAsync('ssh', ['-o', `ControlPath=${path.join(controlDir, socket)}`, '-O', 'exit', 'bench']).catch(
        () => undefined,
      ),
    ),
  );
  await rm(controlDir, { recursive: true, force: true });
}

/** GET http://<address>:80/ must answer 200, as drover's http probe asks it (fetch, no redirects). */
async function httpCheck(address: string): Promise<void> {
  const response = await fetch(`http://${address}:80/`, {
    signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    redirect: 'manual',
  });
  await response.body?.cancel();
  if (response.status !== 200) throw new Error(`GET http://${address}:80/ answered ${response.status}`);
}

async function restartAndCheck(host: FleetHost, connection: SshClient | Error): Promise<void> {
  if (connection instanceof Error) throw new Error(`${host.name}: ${connection.message}`);
  const result = await sshExec(connection, 'systemctl restart nginx.service');
  if (result.code !== 0) throw new Error(`${host.name}: systemctl restart exited ${result.code}: ${result.stderr}`);
  await httpCheck(host.address);
}

/** Connects to every host, then restarts and checks batch after batch; the time includes connecting. */
async function bareSsh2Run(hosts: FleetHost[], privateKey: Buffer, batches: number[]): Promise<Measured> {
  const cpu = cpuSeconds('self');
  const started = performance.now();
  const connections = await Promise.all(
    hosts.map((host) => sshConnect(host, privateKey).catch((error: unknown) => new Error(errorText(error)))),
  );
  try {
    let failures = 0;
    let next = 0;
    for (const size of batches) {
      const batch = hosts.slice(next, next + size).map((host, i) => restartAndCheck(host, connections[next + i]!));
      next += size;
      const results = await Promise.allSettled(batch);
      const failed = results.flatMap((result) => (result.status === 'rejected' ? [errorText(result.reason)] : []));
      failures += failed.length;
      if (failures > MAX_FAILURES) throw new Error(`aborted at failure ${failures}: ${failed.join('; ')}`);
    }
  } finally {
    for (const connection of connections) if (!(connection instanceof Error)) connection.end();
  }
  return { seconds: (performance.now() - started) / 1000, cpuSeconds: cpuSeconds('self') - cpu };
}

// ---------------------------------------------------------------------------------------------
// setting up

async function ensureAnsible(): Promise<string> {
  const version = () => execFileAsync('ansible-playbook', ['--version']).then(({ stdout }) => stdout.split('\n')[0]!);
  try {
    return await version();
  } catch {
    progress('ansible-playbook is missing: installing ansible (apt-get)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await runOrFail('apt-get', ['update', '-qq'], undefined, env);
    await runOrFail('apt-get', ['install', '-y', '-qq', 'ansible'], undefined, env);
    return version();
  }
}

/** PostgreSQL with the drover role and Redis, started or installed when absent (scripts/lib/stack.sh). */
// ---------------------------------------------------------------------------------------------
// the report

interface RunRecord extends Measured {
  contender: Contender;
  round: number;
}

function report(
  options: Options,
  records: RunRecord[],
  context: {
    machine: string[];
    fleet: string;
    batches: number[];
    failPercent: number;
    rss: { api: number; worker: number };
  },
): string {
  const timed = (contender: Contender) => records.filter((r) => r.round > 0 && r.contender === contender);
  const { wall, table } = wallTimes(CONTENDERS, TITLES, records);
  const droverRuns = timed('drover');
  const apiCpu = stats(droverRuns.map((r) => r.droverCpu!.api));
  const workerCpu = stats(droverRuns.map((r) => r.droverCpu!.worker));
  const audit = droverRuns[0]!.auditEvents!;
  const auditTotal = Object.values(audit).reduce((sum, count) => sum + count, 0);
  return [
    '# Rolling restart of nginx.service: drover, Ansible and bare ssh2',
    '',
    '## Run',
    '',
    `- date: ${new Date().toISOString()}; \`node dist/bench/rollout-restart.js --hosts ${options.hosts} --runs ${options.runs}\``,
    ...context.machine,
    `- fleet: ${options.hosts} systemd-nspawn hosts of \`test/fleet/fleet.sh\` (${context.fleet})`,
    `- the job: restart nginx.service on every host in batches of ${context.batches.join(', ')} ` +
      '(drover\'s plan of `sizes: [1, "25%"]`, given to Ansible as counts so all three run the same batches); ' +
      `after its restart each host must answer GET http://<host>:80/ with 200 within ${PROBE_TIMEOUT_MS / 1000} s, ` +
      `asked from this machine; ${MAX_FAILURES} failed host tolerated`,
    `- ${options.runs} timed rounds after one warm-up round (not in the statistics); the order of the contenders ` +
      `rotates every round; every run starts after ${QUIET_MS / 1000} s of quiet. After every run (warm-up included), on every host: nginx has a new MainPID and the ` +
      'journal logged exactly one start of nginx.service since the run began, checked over ssh',
    '',
    '## Wall time',
    '',
    ...table,
    '',
    `- drover / bare ssh2: **${(wall.drover.median / wall.ssh2.median).toFixed(2)}×** (medians)`,
    `- Ansible / drover: **${(wall.ansible.median / wall.drover.median).toFixed(2)}×** (medians)`,
    `- the goal, drover within ${GOAL_RATIO}× of bare ssh2: **${wall.drover.median / wall.ssh2.median <= GOAL_RATIO ? 'met' : 'not met'}**`,
    '',
    '## drover',
    '',
    '| process | CPU s per run (median) | min–max | peak RSS (VmHWM) |',
    '|---|--:|--:|--:|',
    `| API (\`dist/src/main.js\`) | ${secs(apiCpu.median)} | ${secs(apiCpu.min)}–${secs(apiCpu.max)} | ${mib(context.rss.api)} |`,
    `| worker (\`dist/src/worker.js\`) | ${secs(workerCpu.median)} | ${secs(workerCpu.min)}–${secs(workerCpu.max)} | ${mib(context.rss.worker)} |`,
    '',
    `CPU: utime + stime from /proc/PID/stat, from before the POST until the queues are idle after the rollout ` +
      '(the discoveries it queues for its hosts when it ends included). ' +
      'Peak RSS: over the whole life of the process (start-up and migrations included). One API and one worker ' +
      `(WORKER_CONCURRENCY=64, periodic discovery off), PostgreSQL and Redis on this machine, not counted. ` +
      `Audit events one timed rollout wrote: ${auditTotal} (${Object.entries(audit)
        .map(([action, count]) => `${action} ${count}`)
        .join(', ')}).`,
    '',
    '## Every run',
    '',
    '| round | contender | wall s | CPU s |',
    '|--:|---|--:|--:|',
    ...records.map(
      (r) =>
        `| ${r.round === 0 ? 'warm-up' : r.round} | ${TITLES[r.contender]} | ${secs(r.seconds)} | ${secs(r.cpuSeconds)} |`,
    ),
    '',
    '## What each contender does and checks',
    '',
    '- **drover**: `POST /v1/rollouts` (verb restart, unit nginx.service, selector fleet=nspawn, batches ' +
      '`[1, "25%"]`, maxFailures 1, health gate: unit active and an http probe of :80/, minHealthyTimeMs 0), then ' +
      `follows \`GET /v1/rollouts/{id}/events\` until the \`rollout.finished\` event; it must end \`succeeded\`. Per host it reads ` +
      '`systemctl show` before and after the restart, verifies the new MainPID, runs the health gate from the ' +
      'worker (retrying until healthy or its timeout), and writes every step to the hash-chained audit trail in ' +
      'PostgreSQL. The time ends when the finished event arrives (the API looks for new events every 100 ms). ' +
      'Once it ended it discovers all units of the hosts it acted on; the next contender waits for that.',
    `- **Ansible**: \`bench/ansible/rolling-restart.yml\` with \`bench/ansible/ansible.cfg\` (forks 50, pipelining, ` +
      "ControlPersist, no facts, python3 named, host keys checked against the fleet's known_hosts): " +
      '`ansible.builtin.systemd` state=restarted, then one `ansible.builtin.uri` GET of :80/ delegated to ' +
      `localhost (from the controller, as drover probes). max_fail_percentage ${context.failPercent}: Ansible counts ` +
      'failures per batch and always stops after a batch whose every host failed, so one failure is tolerated ' +
      'per batch, not per play. The time is the whole `ansible-playbook` process, start-up included.',
    '- **bare ssh2**: in this process, connects to every host (pinned host keys), then per batch runs ' +
      '`systemctl restart nginx.service` on each host at once and one GET of :80/; nothing else is read or ' +
      'recorded (exit code and HTTP status only). The time includes connecting.',
    '',
    '## Reading the numbers',
    '',
    "- drover's worker keeps its SSH connections open between runs (its pool; SSH_IDLE_TIMEOUT_MS 300 s), so its " +
      'timed runs reuse the connections the warm-up opened, as a long-running controller does. Ansible (a fresh ' +
      'ControlPersist directory per run, its masters closed after it) and bare ssh2 connect to every host in ' +
      'every run. The warm-up column shows each contender connecting.',
    '- CPU s: drover = API + worker; Ansible = `ansible-playbook` and the processes it waited for (cutime + ' +
      'cstime of this process), without the ssh masters ControlPersist detaches, which do the key exchanges; ' +
      'bare ssh2 = this process during the run. PostgreSQL, Redis and sshd on the hosts are not counted for anyone.',
    "- All contenders and the fleet share one machine, so the fleet's own CPU (sshd, systemd, nginx) competes " +
      'with the contender; compare runs made on the same machine.',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// the run

async function benchmark(options: Options, teardown: Teardown): Promise<void> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'drover-bench-rollout-'));
  progress(`logs and Ansible files in ${workDir} (kept if the run fails)`);
  const ansibleVersion = await ensureAnsible();
  await ensureServices();

  const { hosts, fleet } = await provideFleet(options.hosts, options.keepFleet, teardown);
  const privateKey = await readFile(FLEET_KEY);
  const checker = await FleetChecker.open(hosts, privateKey);
  teardown.add('closing the check connections', () => checker.close());

  const drover = await startDrover(
    hosts,
    { database: DATABASE, queuePrefix: QUEUE_PREFIX, port: API_PORT, workDir, profileDir: options.cpuProfileDir },
    teardown,
  );

  const batches = batchSizes(hosts.length);
  const failPercent = maxFailPercent(Math.max(...batches));
  const ansible: AnsibleSetup = {
    inventory: path.join(workDir, 'inventory.json'),
    extraVars: JSON.stringify({ rollout_batches: batches.slice(0, 2), rollout_max_fail_percent: failPercent }),
    workDir,
  };
  await writeFile(ansible.inventory, ansibleInventory(hosts));
  const contenders: Record<Contender, (label: string) => Promise<Measured>> = {
    drover: () => droverRun(drover),
    ansible: (label) => ansibleRun(ansible, label),
    ssh2: () => bareSsh2Run(hosts, privateKey, batches),
  };

  const records: RunRecord[] = [];
  for (let round = 0; round <= options.runs; round += 1) {
    const label = round === 0 ? 'warm-up' : `round ${round}`;
    for (let i = 0; i < options.only.length; i += 1) {
      const contender = options.only[(round + i) % options.only.length]!;
      // The hosts finish what the last run started (old nginx workers exiting, journald) before
      // the next contender's clock starts, whoever that is.
      await sleep(QUIET_MS);
      const since = Date.now();
      const before = await checker.snapshot(since);
      const measured = await contenders[contender](label);
      const problems = restartProblems(before, await checker.snapshot(since));
      if (problems.length > 0) {
        throw new Error(`${label}, ${contender}: ${problems.length} problems: ${problems.slice(0, 5).join('; ')}`);
      }
      records.push({ contender, round, ...measured });
      progress(
        `${label}: ${contender} ${secs(measured.seconds)} s (CPU ${secs(measured.cpuSeconds)} s), ` +
          `nginx restarted once on all ${hosts.length} hosts`,
      );
    }
  }

  const rss = { api: peakRssBytes(drover.api.pid!), worker: peakRssBytes(drover.worker.pid!) };
  if (options.only.length < CONTENDERS.length) {
    progress(
      `--only ${options.only.join(',')}: no report (it compares all contenders); peak RSS ${mib(rss.api)} API, ${mib(rss.worker)} worker`,
    );
    return;
  }
  const markdown = report(options, records, {
    machine: await machine(drover.db, [ansibleVersion]),
    fleet,
    batches,
    failPercent,
    rss,
  });
  await writeReport(markdown, options.out);
  await rm(workDir, { recursive: true, force: true });
}

runBenchmark('rollout', (teardown) => benchmark(parseOptions(process.argv.slice(2)), teardown));

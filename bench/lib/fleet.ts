/**
 * The fleet of real systemd hosts a benchmark runs on (test/fleet/fleet.sh, systemd-nspawn): boot
 * or reuse it, read its inventory, and reach its hosts over ssh2 with their pinned host keys.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Client as SshClient } from 'ssh2';
import { sha256Fingerprint } from '../../src/infra/ssh/host-key';
import { fail, progress, ROOT, runOrFail, Teardown } from './harness';

export const FLEET_SH = path.join(ROOT, 'test/fleet/fleet.sh');
export const FLEET_STATE = process.env.DROVER_FLEET_STATE ?? '/var/lib/drover-fleet/state';
export const FLEET_KEY = path.join(FLEET_STATE, 'ssh/id_ed25519');
const execFileAsync = promisify(execFile);

export interface FleetHost {
  name: string;
  address: string;
  port: number;
  sshUser: string;
  hostKeyFingerprint: string;
  labels: Record<string, string>;
}

export async function readInventory(): Promise<FleetHost[] | null> {
  try {
    const inventory = JSON.parse(await readFile(path.join(FLEET_STATE, 'inventory.json'), 'utf8')) as {
      hosts: FleetHost[];
    };
    return inventory.hosts;
  } catch {
    return null;
  }
}

/** The inventory's hosts that do not answer over SSH now (`fleet.sh status`, 3 s connect timeout). */
async function unreachableHosts(inventory: FleetHost[]): Promise<string[]> {
  const { stdout } = await execFileAsync('bash', [FLEET_SH, 'status'], { cwd: ROOT });
  const reachable = new Set(
    stdout
      .split('\n')
      .map((line) => /^(\S+)\s+\S+\s+yes$/.exec(line)?.[1])
      .filter((name) => name !== undefined),
  );
  return inventory.filter((host) => !reachable.has(host.name)).map((host) => host.name);
}

/** Those of `names` that still do not answer, each asked with `fleet.sh ssh NAME true`. */
async function stillSilent(names: string[]): Promise<string[]> {
  const answers = await Promise.all(
    names.map((name) =>
      execFileAsync('bash', [FLEET_SH, 'ssh', name, '--', 'true'], { cwd: ROOT, timeout: 15_000 }).then(
        () => null,
        () => name,
      ),
    ),
  );
  return answers.filter((name) => name !== null);
}

/**
 * A fleet of `size` hosts: with `keep`, the one that is up if its inventory has that size (left up
 * at the end); else a fresh one booted with `fleet.sh up` (replacing this fleet's earlier hosts),
 * torn down on every way out unless `keep`. A kept fleet whose hosts do not all answer is asked
 * again after a pause, then refused: a busy machine misses 3 s connects, and booting hundreds of
 * hosts again over one miss would cost the run its fleet. Resolves the hosts and how the fleet came
 * to be.
 */
export async function provideFleet(
  size: number,
  keep: boolean,
  teardown: Teardown,
): Promise<{ hosts: FleetHost[]; fleet: string }> {
  const kept = keep ? await readInventory() : null;
  if (kept?.length === size) {
    let silent = await unreachableHosts(kept);
    for (let attempt = 1; silent.length > 0 && attempt <= 3; attempt++) {
      progress(
        `${silent.length} of ${size} kept hosts did not answer (${silent.slice(0, 5).join(', ')}…); asking again`,
      );
      await sleep(10_000);
      silent = await stillSilent(silent);
    }
    if (silent.length > 0) {
      fail(
        `--keep-fleet: ${silent.length} hosts of the kept fleet do not answer over SSH (${silent.join(', ')}); ` +
          'fix or reset them (fleet.sh reset), or run without --keep-fleet to boot a fresh fleet',
      );
    }
    progress(`reusing the fleet of ${size} hosts that is up`);
    return { hosts: kept, fleet: 'reused: already up' };
  }
  progress(`booting a fleet of ${size} hosts (fleet.sh up replaces this fleet's earlier hosts)`);
  if (!keep) teardown.add('tearing the fleet down', () => runOrFail('bash', [FLEET_SH, 'down']));
  const started = performance.now();
  await runOrFail('bash', [FLEET_SH, 'up', '--hosts', String(size)]);
  const hosts = (await readInventory()) ?? fail(`no ${path.join(FLEET_STATE, 'inventory.json')}`);
  return { hosts, fleet: `booted for this run in ${((performance.now() - started) / 1000).toFixed(0)} s` };
}

/** Resolves when the client authenticated; the host must present its pinned key, or nothing is sent. */
export function sshConnect(host: FleetHost, privateKey: Buffer, readyTimeoutMs = 15_000): Promise<SshClient> {
  return new Promise((resolve, reject) => {
    const client = new SshClient();
    client
      .once('ready', () => resolve(client))
      // Stays attached after 'ready': an unhandled 'error' would crash the benchmark.
      .on('error', reject)
      .connect({
        host: host.address,
        port: host.port,
        username: host.sshUser,
        privateKey,
        readyTimeout: readyTimeoutMs,
        hostVerifier: (key: Buffer) => sha256Fingerprint(key) === host.hostKeyFingerprint,
      });
  });
}

export function sshExec(
  client: SshClient,
  command: string,
): Promise<{ code: number | undefined; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, channel) => {
      if (error) return reject(error);
      let stdout = '';
      let stderr = '';
      channel.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      channel.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      // No code when the connection dropped before the command exited.
      channel.on('close', (code: number | undefined) => resolve({ code, stdout, stderr }));
    });
  });
}

/** Where the fleet lives on this machine (fleet.sh writes instance.json at `up`). */
export interface FleetInstance {
  /** This machine's address on the fleet's bridge: hosts reach a server listening there. */
  gateway: string;
  /** Hosts' cgroups are `<root>/<cgroupParent>/<host name>` in each of `cgroupRoots`. */
  cgroupParent: string;
  cgroupRoots: string[];
}

export async function readFleetInstance(): Promise<FleetInstance> {
  return JSON.parse(await readFile(path.join(FLEET_STATE, 'instance.json'), 'utf8')) as FleetInstance;
}

/** What hostsCgroupSeconds reads: a cgroup v2 file and the line giving its microseconds. */
const CGROUP_USEC = {
  /** CPU used (usage_usec). */
  usage: { file: 'cpu.stat', pattern: /^usage_usec (\d+)$/m },
  /** Time some process of the cgroup was ready to run and waited for a CPU (PSI "some"). */
  cpuWait: { file: 'cpu.pressure', pattern: /^some .* total=(\d+)$/m },
} as const;

/**
 * Seconds of `what` the processes of `part` (a cgroup below a host's root, '' for all of the host)
 * spent on these hosts in all since they booted, from the unified hierarchy; a part that does not
 * exist on a host (a service not running there) counts 0.
 */
async function hostsCgroupSeconds(
  fleet: FleetInstance,
  hosts: readonly { name: string }[],
  part: string,
  what: keyof typeof CGROUP_USEC = 'usage',
): Promise<number> {
  const { file, pattern } = CGROUP_USEC[what];
  const usage = await Promise.all(
    hosts.map(async (host) => {
      let hostFound = false;
      for (const root of fleet.cgroupRoots) {
        const hostDir = path.join(root, fleet.cgroupParent, host.name);
        const text = await readFile(path.join(hostDir, part, file), 'utf8').catch(() => null);
        const usec = text && pattern.exec(text)?.[1];
        if (usec) return Number(usec) / 1e6;
        if (part && (await readFile(path.join(hostDir, file), 'utf8').catch(() => null))) hostFound = true;
      }
      if (hostFound) return 0;
      throw new Error(`${host.name}: no cgroup v2 ${file} under ${fleet.cgroupRoots.join(', ')}`);
    }),
  );
  return usage.reduce((sum, seconds) => sum + seconds, 0);
}

/** CPU seconds every process of these hosts used since they booted: sshd, the agent, systemd and what they started. */
export function hostsCpuSeconds(fleet: FleetInstance, hosts: readonly { name: string }[]): Promise<number> {
  return hostsCgroupSeconds(fleet, hosts, '');
}

/** The parts of a host's CPU told apart in reports: cgroups below the host's root. */
export const HOST_CPU_PARTS = {
  agent: 'payload/system.slice/drover-agent.service',
  'PID 1': 'payload/init.scope',
  sshd: 'payload/system.slice/ssh.service',
} as const;
export type HostCpuPart = keyof typeof HOST_CPU_PARTS;

/** hostsCpuSeconds, and the same for each of HOST_CPU_PARTS (a part whose cgroup went away meanwhile reads low). */
export async function hostsCpuByPart(
  fleet: FleetInstance,
  hosts: readonly { name: string }[],
): Promise<{ total: number; parts: Record<HostCpuPart, number> }> {
  const names = Object.keys(HOST_CPU_PARTS) as HostCpuPart[];
  const [total, ...parts] = await Promise.all([
    hostsCpuSeconds(fleet, hosts),
    ...names.map((name) => hostsCgroupSeconds(fleet, hosts, HOST_CPU_PARTS[name])),
  ]);
  return {
    total,
    parts: Object.fromEntries(names.map((name, index) => [name, parts[index]!])) as Record<HostCpuPart, number>,
  };
}

/**
 * Seconds the agents of these hosts, all together, were ready to run and waited for a CPU (the
 * PSI "some" total of drover-agent.service's cgroup) since they started.
 */
export function agentsCpuWaitSeconds(fleet: FleetInstance, hosts: readonly { name: string }[]): Promise<number> {
  return hostsCgroupSeconds(fleet, hosts, HOST_CPU_PARTS.agent, 'cpuWait');
}

/** How long the hosts must stay quiet, and the longest untilHostsQuiet waits for that. */
const QUIET_SPAN_MS = 2_000;
const QUIET_WAIT_MAX_MS = 180_000;

/**
 * Waits until these hosts have used less than a little CPU (0.02 of a core, plus 0.004 per host:
 * an idle agent's long poll is about 0.002) over QUIET_SPAN_MS, read from their cgroups: what an
 * earlier step left them doing (agents starting and listing their units, the discoveries after
 * an action) must neither slow the next run on these shared cores nor be counted in it. Says so
 * (progress, naming `before`) when that took long, or did not happen within QUIET_WAIT_MAX_MS
 * (then it goes on). Returns the milliseconds it waited.
 */
export async function untilHostsQuiet(
  fleet: FleetInstance,
  hosts: readonly { name: string }[],
  before: string,
): Promise<number> {
  const started = performance.now();
  const quietCores = 0.02 + 0.004 * hosts.length;
  let used = await hostsCpuSeconds(fleet, hosts);
  for (;;) {
    await sleep(QUIET_SPAN_MS);
    const now = await hostsCpuSeconds(fleet, hosts);
    const cores = (now - used) / (QUIET_SPAN_MS / 1000);
    used = now;
    const waitedMs = performance.now() - started;
    if (cores < quietCores) {
      if (waitedMs > 3 * QUIET_SPAN_MS)
        progress(`${before}: waited ${(waitedMs / 1000).toFixed(1)} s for the hosts to go quiet`);
      return waitedMs;
    }
    if (waitedMs >= QUIET_WAIT_MAX_MS) {
      progress(
        `${before}: the hosts still used ${cores.toFixed(2)} cores after ${(waitedMs / 1000).toFixed(0)} s; going on`,
      );
      return waitedMs;
    }
  }
}

/**
 * Runs a shell command as root inside a host's namespaces (nsenter into its init), without SSH:
 * checks that touch neither sshd nor the agent, so they cost no contender anything.
 */
export async function inHost(
  fleet: FleetInstance,
  host: { name: string },
  command: string,
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const root = fleet.cgroupRoots.find((candidate) => path.basename(candidate) === 'systemd');
  if (!root) throw new Error(`the fleet has no systemd cgroup hierarchy (${fleet.cgroupRoots.join(', ')})`);
  const procs = await readFile(
    path.join(root, fleet.cgroupParent, host.name, 'payload/init.scope/cgroup.procs'),
    'utf8',
  );
  const init = procs.split('\n')[0]?.trim();
  if (!init) throw new Error(`${host.name} is not running (no init process in its cgroup)`);
  try {
    const { stdout, stderr } = await execFileAsync(
      'nsenter',
      ['-t', init, '-m', '-u', '-i', '-n', '-p', '--', '/bin/sh', '-c', command],
      {
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
      },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string; message: string };
    if (typeof failed.code !== 'number')
      throw new Error(`nsenter into ${host.name}: ${failed.message}`, { cause: error });
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

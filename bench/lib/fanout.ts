/**
 * One restart on many hosts, as the fan-out benchmarks (agent, scale) run it: drover's operation
 * over a selector timed until it ends, the bare ssh2 script it is held against, and the check on
 * every host afterwards (without SSH) that the unit really restarted exactly once.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client as SshClient } from 'ssh2';
import { parseTimespan } from '@drover/systemd';
import { call, Drover, waitForIdleQueues } from './drover';
import { FleetHost, FleetInstance, inHost, sshConnect, sshExec } from './fleet';
import { cpuSeconds, errorText } from './harness';

/** The fleet's test service: a restart gives it a new MainPID and it records each start (test/fleet/base/drover-probe). */
export const PROBE_UNIT = 'drover-probe.service';
const STARTS_FILE = '/var/lib/drover-probe/starts';
/** Hosts checked at once with nsenter. */
const CHECK_PARALLEL = 16;
/** How often the operation's row is read while it runs (the bench's own connection, not drover's CPU). */
const OPERATION_POLL_MS = 20;
const OPERATION_TIMEOUT_MS = 300_000;
/**
 * Hundreds of handshakes at once on a busy 2-core machine take longer than ssh2's usual 15 s for
 * some hosts: the bare script waits longer, so that its time says how long they took rather than failing.
 */
export const COLD_HANDSHAKE_TIMEOUT_MS = 60_000;

/** Runs `work` on every item, at most `parallel` at once; resolves with the results in order. */
export async function eachLimited<T, R>(items: T[], parallel: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) results[i] = await work(items[i]!);
    }),
  );
  return results;
}

export const subsetLabel = (size: number): string => `first-${size}`;

/** The labels that let one selector pick the first `size` hosts, for every size of the run. */
export function subsetLabels(index: number, sizes: number[]): Record<string, string> {
  return Object.fromEntries(sizes.filter((size) => index < size).map((size) => [subsetLabel(size), 'yes']));
}

// ---------------------------------------------------------------------------------------------
// checks on the hosts (nsenter: no SSH, no agent)

export interface ProbeState {
  mainPid: number;
  starts: number;
}

export async function probeStates(fleet: FleetInstance, hosts: FleetHost[]): Promise<Map<string, ProbeState>> {
  const command = `systemctl show -p MainPID --value ${PROBE_UNIT} && wc -l < ${STARTS_FILE}`;
  const states = await eachLimited(hosts, CHECK_PARALLEL, async (host) => {
    const result = await inHost(fleet, host, command);
    if (result.code !== 0) throw new Error(`${host.name}: ${command}: exit ${result.code}: ${result.stderr}`);
    const [mainPid = '', starts = ''] = result.stdout.trim().split('\n');
    return [host.name, { mainPid: Number(mainPid), starts: Number(starts) }] as const;
  });
  return new Map(states);
}

/**
 * The probe's StartLimitIntervalSec on `host`, in milliseconds (systemd's default is 10 s). drover
 * reads the unit's journal before starting it (its start-limit check) only when the unit started
 * within that interval; the agent's benchmark spaces its runs by more than it.
 */
export async function probeStartLimitIntervalMs(fleet: FleetInstance, host: FleetHost): Promise<number> {
  const command = `systemctl show -p StartLimitIntervalUSec --value ${PROBE_UNIT}`;
  const result = await inHost(fleet, host, command);
  const microseconds = parseTimespan(result.stdout.trim());
  if (result.code !== 0 || microseconds === null || microseconds === 'infinity') {
    throw new Error(`${host.name}: ${command}: exit ${result.code}: ${result.stdout.trim()} ${result.stderr}`);
  }
  return Number(microseconds) / 1000;
}

/** What is wrong unless the probe has a new MainPID and recorded exactly one start on every host. */
export function restartProblems(before: Map<string, ProbeState>, after: Map<string, ProbeState>): string[] {
  return [...after].flatMap(([name, state]) => {
    const earlier = before.get(name)!;
    const problems: string[] = [];
    if (state.mainPid === 0) problems.push(`${PROBE_UNIT} is not running`);
    else if (state.mainPid === earlier.mainPid) problems.push(`MainPID ${state.mainPid} unchanged`);
    if (state.starts !== earlier.starts + 1) problems.push(`${state.starts - earlier.starts} starts recorded`);
    return problems.map((problem) => `${name}: ${problem}`);
  });
}

// ---------------------------------------------------------------------------------------------
// the contenders

export interface Measured {
  seconds: number;
  /** CPU seconds of drover's processes (API + workers), or of this process (bare ssh2). */
  cpuSeconds: number;
  /** The operation a drover contender ran (null for bare ssh2). */
  operationId: string | null;
}

interface Operation {
  id: string;
  status: string;
  tasks: { hostName: string; state: string; reason: string | null }[];
}

/**
 * One operation restarting the probe on the `size` hosts of `selector`, all at once; the time is
 * from the POST to the operation seen finished. CPU is of `pids` (drover's API and workers), until
 * its queues are idle again (the discoveries that follow included).
 */
export async function operationRun(drover: Drover, selector: string, size: number, pids: number[]): Promise<Measured> {
  const cpu = () => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const cpuBefore = cpu();
  const started = performance.now();
  const created = await call<Operation>(
    drover,
    'POST',
    '/v1/operations',
    { verb: 'restart', unit: PROBE_UNIT, selector, concurrency: size },
    202,
  );
  // Watched in its database row, not through the API: a client asking the API twenty times a second
  // for an operation of hundreds of tasks would cost drover's CPU (counted here) more than the work.
  let status = created.status;
  while (!['succeeded', 'failed', 'cancelled'].includes(status)) {
    if (performance.now() - started > OPERATION_TIMEOUT_MS) throw new Error(`operation ${created.id} still running`);
    await sleep(OPERATION_POLL_MS);
    const { rows } = await drover.db.query<{ status: string }>(
      'SELECT status::text AS status FROM operations WHERE id = $1',
      [created.id],
    );
    status = rows[0]?.status ?? status;
  }
  const seconds = (performance.now() - started) / 1000;
  const operation = await call<Operation>(drover, 'GET', `/v1/operations/${created.id}`, undefined, 200);
  await waitForIdleQueues(drover.queues);
  const cpuSpent = cpu() - cpuBefore;
  if (operation.status !== 'succeeded' || operation.tasks.length !== size) {
    const failed = operation.tasks.filter((task) => task.state !== 'succeeded');
    throw new Error(
      `operation ${operation.id} ${operation.status} with ${operation.tasks.length} tasks; ` +
        failed
          .slice(0, 5)
          .map((task) => `${task.hostName}: ${task.state} ${task.reason ?? ''}`)
          .join('; '),
    );
  }
  return { seconds, cpuSeconds: cpuSpent, operationId: operation.id };
}

/** Connections to every host, at most `parallel` handshakes at once (host keys checked). */
export async function connectAll(hosts: FleetHost[], privateKey: Buffer, parallel: number): Promise<SshClient[]> {
  const settled = await eachLimited(hosts, parallel, (host) =>
    sshConnect(host, privateKey, COLD_HANDSHAKE_TIMEOUT_MS).then(
      (client) => ({ client }),
      (error: unknown) => ({ error: `${host.name}: ${errorText(error)}` }),
    ),
  );
  const failed = settled.flatMap((result) => ('error' in result ? [result.error] : []));
  const clients = settled.flatMap((result) => ('client' in result ? [result.client] : []));
  if (failed.length > 0) {
    for (const client of clients) client.end();
    throw new Error(`bare ssh2: ${failed.length} hosts could not be reached: ${failed.slice(0, 5).join('; ')}`);
  }
  return clients;
}

/** `systemctl restart` of the probe on every connection at once; an exit code but 0 is an error. */
export async function restartOver(hosts: FleetHost[], clients: SshClient[]): Promise<void> {
  const results = await Promise.allSettled(
    clients.map(async (client, index) => {
      const result = await sshExec(client, `systemctl restart ${PROBE_UNIT}`);
      if (result.code !== 0) throw new Error(`${hosts[index]!.name}: exit ${result.code}: ${result.stderr}`);
    }),
  );
  const failed = results.flatMap((result) => (result.status === 'rejected' ? [errorText(result.reason)] : []));
  if (failed.length > 0) throw new Error(`bare ssh2: ${failed.length} hosts failed: ${failed.slice(0, 5).join('; ')}`);
}

/**
 * The bare script with cold connections: per host a new connection, one restart of the probe, the
 * connection closed, at most `connectParallel` hosts at once; the time includes connecting.
 */
export async function bareSsh2ColdRun(
  hosts: FleetHost[],
  privateKey: Buffer,
  connectParallel: number,
): Promise<Measured> {
  const cpuBefore = cpuSeconds('self');
  const started = performance.now();
  const results = await eachLimited(hosts, connectParallel, async (host) => {
    try {
      const client = await sshConnect(host, privateKey, COLD_HANDSHAKE_TIMEOUT_MS);
      try {
        const result = await sshExec(client, `systemctl restart ${PROBE_UNIT}`);
        if (result.code !== 0) return `${host.name}: exit ${result.code}: ${result.stderr}`;
      } finally {
        client.end();
      }
      return null;
    } catch (error) {
      return `${host.name}: ${errorText(error)}`;
    }
  });
  const seconds = (performance.now() - started) / 1000;
  const failed = results.filter((result) => result !== null);
  if (failed.length > 0) throw new Error(`bare ssh2: ${failed.length} hosts failed: ${failed.slice(0, 5).join('; ')}`);
  return { seconds, cpuSeconds: cpuSeconds('self') - cpuBefore, operationId: null };
}

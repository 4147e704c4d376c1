import assert from 'node:assert/strict';
import type { DroverClient, Schemas } from '../../src/client';
import { FleetInventory, sshExec } from './fleet';

export type Rollout = Schemas['Rollout'];
export type RolloutStrategy = Schemas['RolloutStrategy'];
type FleetHost = FleetInventory['hosts'][number];

const FINISHED = new Set(['succeeded', 'aborted', 'cancelled']);

export async function getRollout(client: DroverClient, id: string): Promise<Rollout> {
  const result = await client.GET('/v1/rollouts/{id}', { params: { path: { id } } });
  assert.equal(result.response.status, 200, JSON.stringify(result.error));
  return result.data!;
}

/** Polls a rollout until `done` holds (by default: it finished), or fails the test after `timeoutMs`. */
export async function waitForRollout(
  client: DroverClient,
  id: string,
  done: (rollout: Rollout) => boolean = (rollout) => FINISHED.has(rollout.status),
  timeoutMs = 90_000,
): Promise<Rollout> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rollout = await getRollout(client, id);
    if (done(rollout)) return rollout;
    if (Date.now() > deadline) {
      assert.fail(`rollout ${id} still ${rollout.status} after ${timeoutMs} ms: ${JSON.stringify(rollout.counts)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/** Waits until the rollout finished and no host of it is in flight any more. */
export function waitForSettled(client: DroverClient, id: string, timeoutMs?: number): Promise<Rollout> {
  return waitForRollout(
    client,
    id,
    (rollout) => FINISHED.has(rollout.status) && rollout.counts.acting + rollout.counts.gating === 0,
    timeoutMs,
  );
}

export async function startRollout(client: DroverClient, strategy: RolloutStrategy): Promise<Rollout> {
  const created = await client.POST('/v1/rollouts', { body: strategy });
  assert.equal(created.response.status, 201, JSON.stringify(created.error));
  return created.data!;
}

/** Runs a shell command as root on a fleet host; fails the test when it exits non-zero. */
export async function onHost(host: FleetHost, command: string): Promise<string> {
  const result = await sshExec(host, host.hostKeyFingerprint, command);
  assert.equal(result.code, 0, `${host.name}: ${command}: ${result.stderr}`);
  return result.stdout.trim();
}

/**
 * When the unit was last not active, as [ActiveExit, ActiveEnter] in microseconds of the kernel's
 * monotonic clock, which every container of the fleet shares: comparable across hosts.
 */
export async function lastDownWindow(host: FleetHost, unit: string): Promise<[bigint, bigint]> {
  // By name: systemctl prints properties in its own order, not in the order they were asked for.
  const shown = await onHost(
    host,
    `systemctl show -p ActiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic ${unit}`,
  );
  const values = new Map(shown.split('\n').map((line) => line.split('=') as [string, string]));
  const exit = BigInt(values.get('ActiveExitTimestampMonotonic') ?? 0);
  const enter = BigInt(values.get('ActiveEnterTimestampMonotonic') ?? 0);
  return enter > exit ? [exit, enter] : [enter, enter];
}

/** The most intervals open at one instant; one ending where another starts does not overlap it. */
export function peakOverlap(intervals: readonly [bigint, bigint][]): number {
  const edges = intervals.flatMap(([from, to]): [bigint, number][] => [
    [from, 1],
    [to, -1],
  ]);
  edges.sort(([a, da], [b, db]) => (a < b ? -1 : a > b ? 1 : da - db));
  let open = 0;
  let peak = 0;
  for (const [, delta] of edges) peak = Math.max(peak, (open += delta));
  return peak;
}

/** PIDs drover-probe.service started with, oldest first (one line per start, kept by the unit). */
export async function probeStarts(host: FleetHost): Promise<number[]> {
  const text = await onHost(host, 'cat /var/lib/drover-probe/starts 2>/dev/null || true');
  return text === '' ? [] : text.split('\n').map((line) => Number(line.split(' ')[0]));
}

/** drover-probe.service as the fleet image ships it: no drop-ins, unmasked, running. */
export async function resetProbe(host: FleetHost): Promise<void> {
  await onHost(
    host,
    'rm -rf /run/systemd/system/drover-probe.service.d && systemctl daemon-reload && systemctl unmask --quiet drover-probe.service && systemctl reset-failed drover-probe.service; systemctl start drover-probe.service',
  );
}

/** Adds a runtime drop-in to drover-probe.service on a host (gone at reset or reboot). */
export async function probeDropIn(host: FleetHost, name: string, lines: string[]): Promise<void> {
  const body = ['[Service]', ...lines].join('\\n');
  await onHost(
    host,
    `mkdir -p /run/systemd/system/drover-probe.service.d && printf '${body}\\n' > /run/systemd/system/drover-probe.service.d/${name}.conf && systemctl daemon-reload`,
  );
}

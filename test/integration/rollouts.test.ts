import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { testEnv } from '../support/env';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { assertProblem } from '../support/problems';
import {
  getRollout,
  lastDownWindow,
  onHost,
  peakOverlap,
  probeDropIn,
  probeStarts,
  resetProbe,
  startRollout,
  waitForRollout,
  waitForSettled,
} from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const UNIT = 'drover-probe.service';
const SIX = 'fleet=nspawn';

/** Microseconds since boot at which the unit last became active; the hosts share one kernel clock. */
async function activeSince(host: FleetHost): Promise<bigint> {
  return BigInt(await onHost(host, `systemctl show -p ActiveEnterTimestampMonotonic --value ${UNIT}`));
}

describe('rollouts on a booted fleet', () => {
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let hosts: FleetHost[];
  let queuePrefix: string;

  const starts = async () => Promise.all(hosts.map(async (host) => (await probeStarts(host)).length));

  before(async () => {
    const inventory = await readFleetInventory();
    hosts = inventory.hosts.slice(0, 6).sort((a, b) => a.name.localeCompare(b.name));
    assert.equal(hosts.length, 6, 'these tests need a fleet of at least 6 hosts');
    queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
    worker = await startTestWorker(workerEnv(api.database.url, queuePrefix));
    client = await api.client();
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, fleet: 'nspawn' } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
  });

  beforeEach(async () => {
    await Promise.all(hosts.map(resetProbe));
  });

  after(async () => {
    await Promise.all(hosts.map(resetProbe));
    await worker.close();
    await api.close();
  });

  it('acts canary first, then batch after batch, each host once, each batch after the last was healthy', async () => {
    const startsBefore = await starts();
    const created = await startRollout(client, {
      unit: UNIT,
      selector: SIX,
      batches: { sizes: [1, 2] },
      healthGate: { minHealthyTimeMs: 500 },
    });
    assert.equal(created.status, 'running');
    const rollout = await waitForSettled(client, created.id);
    assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
    assert.deepEqual(
      rollout.batches.map((batch) => batch.hosts),
      [[hosts[0]!.name], [hosts[1]!.name, hosts[2]!.name], [hosts[3]!.name, hosts[4]!.name], [hosts[5]!.name]],
    );
    assert.deepEqual(
      await starts(),
      startsBefore.map((count) => count + 1),
      'every host restarted exactly once',
    );
    for (const host of hosts) {
      const pids = await probeStarts(host);
      const running = Number(await onHost(host, `systemctl show -p MainPID --value ${UNIT}`));
      assert.equal(running, pids[pids.length - 1], `${host.name} runs the process its last start recorded`);
    }
    // Batch k started only after every host of batch k-1 had been healthy for minHealthyTime.
    const since = await Promise.all(hosts.map(activeSince));
    const byName = new Map(hosts.map((host, index) => [host.name, since[index]!]));
    for (let index = 1; index < rollout.batches.length; index += 1) {
      const previous = rollout.batches[index - 1]!.hosts.map((name) => byName.get(name)!);
      const current = rollout.batches[index]!.hosts.map((name) => byName.get(name)!);
      const latestPrevious = previous.reduce((a, b) => (a > b ? a : b));
      const earliestCurrent = current.reduce((a, b) => (a < b ? a : b));
      assert.ok(
        earliestCurrent - latestPrevious >= 500_000n,
        `batch ${index} started ${earliestCurrent - latestPrevious} µs after batch ${index - 1} became active`,
      );
    }
    assert.ok(rollout.hosts.every((host) => host.state === 'succeeded'));

    // Once it ended (not while batches still acted), every host's units were discovered afresh.
    const finishedAt = Date.parse(rollout.finishedAt!);
    const deadline = Date.now() + 20_000;
    const refreshed = async () => {
      const units = await client.GET('/v1/units', { params: { query: { name: 'nginx.service', selector: SIX } } });
      return units.data!.items.filter((unit) => Date.parse(unit.refreshedAt) >= finishedAt).map((u) => u.hostName);
    };
    while ((await refreshed()).length < hosts.length && Date.now() < deadline) await sleep(200);
    assert.deepEqual((await refreshed()).sort(), hosts.map((host) => host.name).sort());
  });

  it('connects ahead to the hosts of the next batch while a batch acts, on a worker new to the fleet', async () => {
    // A new worker: its pool holds no connection yet. Its warm-ups are watched, not replaced.
    await worker.close();
    worker = await startTestWorker(workerEnv(api.database.url, queuePrefix));
    const connectedAhead = new Map<string, number>();
    const warm = worker.ssh.warm.bind(worker.ssh);
    worker.ssh.warm = async (target) => {
      await warm(target);
      connectedAhead.set(target.name, Date.now());
    };
    const created = await startRollout(client, {
      unit: UNIT,
      selector: SIX,
      batches: { sizes: [1, 2] },
      // Long enough that a handshake on a busy machine ends well before the next batch starts.
      healthGate: { minHealthyTimeMs: 2_000 },
    });
    const rollout = await waitForSettled(client, created.id);
    assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
    const [canary, ...later] = rollout.batches;
    assert.ok(canary && later.length > 0);
    for (const name of canary.hosts) assert.equal(connectedAhead.has(name), false, `${name}: acted on at once`);
    for (const batch of later) {
      for (const name of batch.hosts) {
        const at = connectedAhead.get(name);
        assert.ok(at !== undefined, `${name} (batch ${batch.index}) was not connected to ahead`);
        assert.ok(at <= Date.parse(batch.startedAt), `${name} was connected to after its batch started`);
      }
    }
    assert.equal(
      worker.ssh.stats().connectionsOpened,
      hosts.length,
      'one connection per host: each task used the one opened ahead',
    );
  });

  it('aborts at exactly the failure budget, starts nothing after, and a retry skips the hosts already done', async () => {
    // fleet-02 and fleet-04 (in name order) cannot start the unit any more.
    const broken = [hosts[1]!, hosts[3]!];
    for (const host of broken) await probeDropIn(host, 'broken', ['ExecStartPre=/bin/false']);
    const startsBefore = await starts();
    const created = await startRollout(client, {
      unit: UNIT,
      selector: SIX,
      batches: { size: 1 },
      maxFailures: 1,
      healthGate: { minHealthyTimeMs: 0 },
    });
    const aborted = await waitForSettled(client, created.id);
    assert.equal(aborted.status, 'aborted');
    assert.match(aborted.reason ?? '', /2 host\(s\) failed, more than maxFailures \(1\)/);
    assert.deepEqual(
      aborted.hosts.map((host) => host.state),
      ['succeeded', 'failed', 'succeeded', 'failed', 'cancelled', 'cancelled'],
      'the first failure was tolerated, the second aborted, the rest never started',
    );
    const startsAfterAbort = await starts();
    assert.deepEqual(startsAfterAbort, [
      startsBefore[0]! + 1,
      startsBefore[1]!,
      startsBefore[2]! + 1,
      startsBefore[3]!,
      startsBefore[4]!,
      startsBefore[5]!,
    ]);

    for (const host of broken) await resetProbe(host);
    const startsBeforeRetry = await starts();
    const retried = await client.POST('/v1/rollouts/{id}/retry', {
      params: { path: { id: created.id } },
      body: { reason: 'fixed the unit' },
    });
    assert.equal(retried.response.status, 200, JSON.stringify(retried.error));
    assert.equal(retried.data!.runs, 2);
    const done = await waitForSettled(client, created.id);
    assert.equal(done.status, 'succeeded', done.reason ?? '');
    assert.deepEqual(
      await starts(),
      [
        startsBeforeRetry[0]!,
        startsBeforeRetry[1]! + 1,
        startsBeforeRetry[2]!,
        startsBeforeRetry[3]! + 1,
        startsBeforeRetry[4]! + 1,
        startsBeforeRetry[5]! + 1,
      ],
      'hosts done in the first run were not acted on again',
    );
    const retryAgain = await client.POST('/v1/rollouts/{id}/retry', { params: { path: { id: created.id } }, body: {} });
    assertProblem(retryAgain, 409, 'rollout_cannot_retry');
  });

  it('fails the health gate of a unit that crash-loops after its restart', async () => {
    const host = hosts[2]!;
    // The unit starts fine, then dies after a second; systemd restarts it over and over.
    await probeDropIn(host, 'crash', [
      'ExecStart=',
      'ExecStart=/bin/sh -c "sleep 1; exit 1"',
      'ExecStartPost=',
      'Restart=always',
      'RestartSec=200ms',
    ]);
    const created = await startRollout(client, {
      unit: UNIT,
      selector: SIX,
      batches: { size: 6 },
      healthGate: { minHealthyTimeMs: 3_000 },
    });
    const rollout = await waitForSettled(client, created.id);
    assert.equal(rollout.status, 'aborted');
    const failed = rollout.hosts.find((candidate) => candidate.name === host.name)!;
    assert.equal(failed.state, 'failed');
    assert.match(failed.reason ?? '', /health gate: .*(crash loop|main process changed|not active)/);
    assert.ok(
      rollout.hosts.filter((candidate) => candidate.name !== host.name).every((other) => other.state !== 'failed'),
    );
  });

  it('never has more units down than maxUnavailable, counting a host whose unit was already down', async () => {
    await onHost(hosts[2]!, `systemctl stop ${UNIT}`);
    const startedAt = await Promise.all(hosts.map(activeSince));
    const created = await startRollout(client, {
      unit: UNIT,
      selector: SIX,
      batches: { size: 3 },
      maxUnavailable: 2,
      healthGate: { minHealthyTimeMs: 0 },
    });
    const rollout = await waitForSettled(client, created.id);
    assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
    assert.equal(rollout.batches[0]!.unavailableAtStart, 1, 'the stopped unit counted from the start');
    assert.deepEqual(
      [...rollout.batches[0]!.hosts].sort(),
      [hosts[0]!.name, hosts[2]!.name],
      'the host already down first (it takes nothing more down), and 2 - 1 down = 1 more',
    );
    for (const batch of rollout.batches) {
      // Hosts of the batch already down at its start are counted in unavailableAtStart already.
      const wereUp = batch.hosts.length - (batch.index === 0 ? 1 : 0);
      assert.ok(
        wereUp + batch.unavailableAtStart <= 2,
        `batch ${batch.index}: ${wereUp} taken down + ${batch.unavailableAtStart} down > 2`,
      );
    }
    assert.ok(
      rollout.batches.some((batch) => batch.hosts.length === 2),
      'once the stopped unit was started, batches grew to the limit',
    );
    assert.equal(await onHost(hosts[2]!, `systemctl is-active ${UNIT}`), 'active');

    // What the hosts themselves say: each unit was down (not active) from ActiveExit to ActiveEnter
    // of its restart, on the kernel clock the containers share; at no instant were more than 2 down.
    const downs = await Promise.all(hosts.map((host) => lastDownWindow(host, UNIT)));
    downs.forEach(([, enter], index) => assert.ok(enter > startedAt[index]!, `${hosts[index]!.name} restarted`));
    const peak = peakOverlap(downs);
    assert.ok(peak <= 2, `${peak} units were down at once on the hosts`);
    assert.ok(peak >= 2, 'the limit was used (the stopped unit and a restart overlapped)');
  });

  it('acts first on a host whose unit is already down: maxUnavailable 1 does not wait for it forever', async () => {
    await onHost(hosts[3]!, `systemctl stop ${UNIT}`);
    const created = await startRollout(client, {
      unit: UNIT,
      selector: SIX,
      batches: { size: 2 },
      maxUnavailable: 1,
      healthGate: { minHealthyTimeMs: 0 },
    });
    const rollout = await waitForSettled(client, created.id);
    assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
    assert.deepEqual(rollout.batches[0]!.hosts, [hosts[3]!.name], 'the stopped host first, alone');
    assert.equal(rollout.batches[0]!.unavailableAtStart, 1);
    assert.deepEqual(
      rollout.batches.slice(1).map((batch) => [batch.hosts.length, batch.unavailableAtStart]),
      rollout.batches.slice(1).map(() => [1, 0]),
      'then one at a time, with nothing else down',
    );
    assert.equal(rollout.batches.length, 6);
    assert.equal(await onHost(hosts[3]!, `systemctl is-active ${UNIT}`), 'active');
  });

  it('pauses (nothing new starts), resumes, and waits for approval after the canary', async () => {
    const created = await startRollout(client, {
      unit: UNIT,
      selector: SIX,
      batches: { sizes: [1, 5] },
      approveAfterCanary: true,
      healthGate: { minHealthyTimeMs: 0 },
    });
    const waiting = await waitForRollout(client, created.id, (rollout) => rollout.status === 'awaiting_approval');
    assert.equal(waiting.batches.length, 1);
    assert.match(waiting.reason ?? '', /canary/);
    const startsAwaiting = await starts();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.deepEqual(await starts(), startsAwaiting, 'no host restarted without approval');
    assert.equal((await getRollout(client, created.id)).batches.length, 1, 'nothing started without approval');

    const resumeInstead = await client.POST('/v1/rollouts/{id}/resume', {
      params: { path: { id: created.id } },
      body: {},
    });
    assertProblem(resumeInstead, 409, 'rollout_cannot_resume');
    const approved = await client.POST('/v1/rollouts/{id}/approve', { params: { path: { id: created.id } }, body: {} });
    assert.equal(approved.response.status, 200, JSON.stringify(approved.error));
    const paused = await client.POST('/v1/rollouts/{id}/pause', {
      params: { path: { id: created.id } },
      body: { reason: 'checking dashboards' },
    });
    assert.equal(paused.response.status, 200, JSON.stringify(paused.error));
    assert.equal(paused.data!.status, 'paused');
    // In-flight hosts finish; then nothing moves.
    const still = await waitForRollout(
      client,
      created.id,
      (rollout) => rollout.counts.acting + rollout.counts.gating === 0,
    );
    const batchesWhilePaused = still.batches.length;
    const startsPaused = await starts();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.deepEqual(await starts(), startsPaused, 'no host restarted while paused');
    const later = await getRollout(client, created.id);
    assert.equal(later.status, 'paused');
    assert.equal(later.batches.length, batchesWhilePaused, 'no batch started while paused');

    const resumed = await client.POST('/v1/rollouts/{id}/resume', { params: { path: { id: created.id } }, body: {} });
    assert.equal(resumed.response.status, 200, JSON.stringify(resumed.error));
    const done = await waitForSettled(client, created.id);
    assert.equal(done.status, 'succeeded', done.reason ?? '');
    assert.ok(done.approvedBy);
  });

  it('cancelling mid-batch cancels the tasks not started yet: their host and operation end cancelled', async () => {
    const [acting, waiting] = [hosts[0]!, hosts[1]!];
    const startsBefore = await starts();
    // Someone else holds the unit on one host, so its task waits, queued, while the other acts.
    const waitingId = (await client.GET('/v1/hosts/{name}', { params: { path: { name: waiting.name } } })).data!.id;
    const lock = `${queuePrefix}:unit-lock:${waitingId}:${UNIT}`;
    const redis = new Redis(testEnv.redisUrl);
    await redis.set(lock, 'another-drover', 'PX', 60_000);
    try {
      const created = await startRollout(client, {
        unit: UNIT,
        selector: SIX,
        batches: { sizes: [2] },
        healthGate: { minHealthyTimeMs: 0 },
      });
      await waitForRollout(client, created.id, (rollout) => rollout.counts.succeeded === 1);
      const cancelled = await client.POST('/v1/rollouts/{id}/cancel', {
        params: { path: { id: created.id } },
        body: {},
      });
      assert.equal(cancelled.response.status, 200, JSON.stringify(cancelled.error));
      const rollout = await waitForSettled(client, created.id);
      const stateOf = (name: string) => rollout.hosts.find((host) => host.name === name)!;
      assert.equal(stateOf(acting.name).state, 'succeeded');
      assert.equal(stateOf(waiting.name).state, 'cancelled');
      assert.match(stateOf(waiting.name).reason ?? '', /cancelled/);
      const operation = await client.GET('/v1/operations/{id}', {
        params: { path: { id: rollout.batches[0]!.operationId } },
      });
      assert.equal(operation.data!.status, 'cancelled');
      assert.deepEqual(
        operation.data!.tasks.map((task) => [task.hostName, task.state]).sort(),
        [
          [acting.name, 'succeeded'],
          [waiting.name, 'cancelled'],
        ].sort(),
      );
      assert.deepEqual(
        (await starts()).slice(0, 2),
        [startsBefore[0]! + 1, startsBefore[1]!],
        'only the host that acted restarted',
      );
    } finally {
      await redis.del(lock);
      redis.disconnect();
    }
  });

  it('cancelling while a restart runs lets it finish: the host ends interrupted, nothing is left running', async () => {
    const slow = hosts[0]!;
    await probeDropIn(slow, 'slow-stop', ['ExecStopPost=/bin/sleep 3']);
    const startsBefore = await starts();
    const created = await startRollout(client, {
      unit: UNIT,
      selector: SIX,
      batches: { sizes: [1, 5] },
      healthGate: { minHealthyTimeMs: 0 },
    });
    // The restart is on its way on the host: systemd is running the unit's stop.
    await waitForRollout(client, created.id, (rollout) => rollout.counts.acting === 1);
    await waitUntil(
      async () => (await onHost(slow, `systemctl show -p ActiveState --value ${UNIT}`)) === 'deactivating',
      `${slow.name} is stopping ${UNIT}`,
      20_000,
    );
    const cancelled = await client.POST('/v1/rollouts/{id}/cancel', { params: { path: { id: created.id } }, body: {} });
    assert.equal(cancelled.response.status, 200, JSON.stringify(cancelled.error));

    const rollout = await waitForSettled(client, created.id);
    assert.equal(rollout.status, 'cancelled');
    assert.equal(rollout.hosts[0]!.state, 'interrupted', rollout.hosts[0]!.reason ?? '');
    assert.deepEqual(
      rollout.hosts.slice(1).map((host) => host.state),
      hosts.slice(1).map(() => 'cancelled'),
    );
    assert.deepEqual(await starts(), [startsBefore[0]! + 1, ...startsBefore.slice(1)], 'one restart, completed');
    assert.equal(await onHost(slow, `systemctl is-active ${UNIT}`), 'active');
    // Neither drover's watchdog (timeout) nor a systemctl it started is left on the host. The
    // discovery that follows the rollout's end may be reading the host now: its reads are not left
    // over from the restart.
    const left = (await onHost(slow, 'ps -eo args='))
      .split('\n')
      .filter((line) => /^(\S*\/)?timeout |systemctl .*drover-probe/.test(line))
      .filter((line) => !/systemctl (show|cat|list-units|list-unit-files) |sha256sum /.test(line));
    assert.deepEqual(left, []);
  });

  it('cancels: nothing new starts and a retry finishes the rest without repeating a host', async () => {
    const startsBefore = await starts();
    const created = await startRollout(client, {
      unit: UNIT,
      selector: SIX,
      batches: { sizes: [1, 5] },
      // The cancel comes in this pause, so the second batch would be next.
      pauseBetweenBatchesMs: 3_000,
      healthGate: { minHealthyTimeMs: 0 },
    });
    await waitForRollout(client, created.id, (rollout) => rollout.counts.succeeded === 1);
    const cancelled = await client.POST('/v1/rollouts/{id}/cancel', {
      params: { path: { id: created.id } },
      body: { reason: 'wrong change window' },
    });
    assert.equal(cancelled.response.status, 200, JSON.stringify(cancelled.error));
    assert.equal(cancelled.data!.status, 'cancelled');
    assert.match(cancelled.data!.reason ?? '', /wrong change window/);
    assert.equal(cancelled.data!.counts.cancelled, 5);
    const cancelAgain = await client.POST('/v1/rollouts/{id}/cancel', {
      params: { path: { id: created.id } },
      body: {},
    });
    assertProblem(cancelAgain, 409, 'rollout_cannot_cancel');
    // Longer than the pause: the second batch would have started by now.
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    assert.deepEqual(await starts(), [startsBefore[0]! + 1, ...startsBefore.slice(1)], 'nothing new started');

    const retried = await client.POST('/v1/rollouts/{id}/retry', { params: { path: { id: created.id } }, body: {} });
    assert.equal(retried.response.status, 200, JSON.stringify(retried.error));
    const done = await waitForSettled(client, created.id);
    assert.equal(done.status, 'succeeded', done.reason ?? '');
    assert.deepEqual(
      done.hosts.map((host) => host.state),
      hosts.map(() => 'succeeded'),
    );
    assert.deepEqual(
      await starts(),
      startsBefore.map((count) => count + 1),
      'the retry finished the rest, and every host started exactly once',
    );
  });
});

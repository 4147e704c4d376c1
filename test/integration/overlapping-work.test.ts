import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createDroverClient, type DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { waitForOperation } from '../support/operations';
import { assertProblem } from '../support/problems';
import {
  getRollout,
  onHost,
  probeDropIn,
  resetProbe,
  Rollout,
  RolloutStrategy,
  startRollout,
  waitForRollout,
  waitForSettled,
} from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const UNIT = 'drover-probe.service';
const SELECTOR = 'overlap=yes';

/** When drover-probe started on a host, oldest first (epoch ms, from the line each start writes). */
async function startTimes(host: FleetHost): Promise<number[]> {
  const text = await onHost(host, 'cat /var/lib/drover-probe/starts 2>/dev/null || true');
  return text === '' ? [] : text.split('\n').map((line) => Date.parse(line.split(' ')[1]!));
}

/**
 * systemd's start limit (5 starts in 10 s by default) would refuse some of the many restarts
 * these tests make in a row; how drover deals with it has its own tests.
 */
async function liftStartLimit(host: FleetHost): Promise<void> {
  await onHost(
    host,
    `mkdir -p /run/systemd/system/${UNIT}.d && printf '[Unit]\\nStartLimitIntervalSec=0\\n' > /run/systemd/system/${UNIT}.d/no-start-limit.conf && systemctl daemon-reload`,
  );
}

describe('work that meets on the same units', () => {
  let api: TestApi;
  let workers: TestWorker[];
  let client: DroverClient;
  let token: string;
  let hosts: FleetHost[];

  const rollout = (strategy: Partial<RolloutStrategy>): RolloutStrategy => ({
    unit: UNIT,
    selector: SELECTOR,
    batches: { size: 5 },
    healthGate: { minHealthyTimeMs: 300 },
    ...strategy,
  });

  before(async () => {
    const inventory = await readFleetInventory();
    hosts = inventory.hosts.slice(0, 10).sort((a, b) => a.name.localeCompare(b.name));
    assert.equal(hosts.length, 10, 'these tests need a fleet of at least 10 hosts');
    const queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
    // Two workers, as two replicas would be: steps and tasks of one rollout land on either.
    workers = await Promise.all([1, 2].map(() => startTestWorker(workerEnv(api.database.url, queuePrefix))));
    token = await api.token();
    client = createDroverClient(api.baseUrl, token);
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, overlap: 'yes', host: host.name } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
  });

  beforeEach(async () => {
    await Promise.all(
      hosts.map(async (host) => {
        await resetProbe(host);
        await liftStartLimit(host);
      }),
    );
  });

  after(async () => {
    await Promise.all(hosts.map(resetProbe));
    await Promise.all(workers.map((worker) => worker.close()));
    await api.close();
  });

  it('8 rollouts started at once on the same 10 hosts all succeed, one after another, first come first served', async () => {
    const startsBefore = await Promise.all(hosts.map(async (host) => (await startTimes(host)).length));
    const created = await Promise.all(Array.from({ length: 8 }, () => startRollout(client, rollout({}))));
    // Admitted one at a time: the first starts, each later one waits for every one before it.
    assert.deepEqual(created.map((item) => item.status).sort(), [
      'queued',
      'queued',
      'queued',
      'queued',
      'queued',
      'queued',
      'queued',
      'running',
    ]);
    assert.deepEqual(
      created.map((item) => item.blockedBy.length).sort(),
      [0, 1, 2, 3, 4, 5, 6, 7],
      'the k-th admitted waits for the k - 1 before it',
    );
    for (const item of created.filter((candidate) => candidate.status === 'queued')) {
      assert.match(item.reason ?? '', /^queued behind rollout /);
    }

    const ended = await Promise.all(created.map((item) => waitForSettled(client, item.id, 240_000)));
    for (const item of ended) assert.equal(item.status, 'succeeded', `${item.id}: ${item.reason ?? ''}`);
    const byId = new Map(ended.map((item) => [item.id, item]));
    for (const item of created) {
      // First come, first served: it acted only after everything it queued behind had finished.
      const firstBatch = Date.parse(byId.get(item.id)!.batches[0]!.startedAt);
      for (const blocker of item.blockedBy) {
        assert.ok(
          Date.parse(byId.get(blocker)!.finishedAt!) <= firstBatch,
          `${item.id} started before ${blocker} ended`,
        );
      }
    }

    for (const [index, host] of hosts.entries()) {
      const starts = (await startTimes(host)).slice(startsBefore[index]);
      assert.equal(starts.length, 8, `${host.name} was restarted once per rollout`);
      // The end of each rollout's health gate on this host (the host's finishedAt), in order.
      const gateEnds = ended
        .map((item) => Date.parse(item.hosts.find((entry) => entry.name === host.name)!.finishedAt!))
        .sort((a, b) => a - b);
      // Each start came after the previous rollout's gate on this host ended, and its own gate
      // ended after it: no action inside another rollout's gate, never two at once.
      for (let k = 0; k < 8; k += 1) {
        if (k > 0) assert.ok(starts[k]! >= gateEnds[k - 1]!, `${host.name}: start ${k} inside gate ${k - 1}`);
        assert.ok(gateEnds[k]! - starts[k]! >= 300, `${host.name}: gate ${k} shorter than minHealthyTimeMs`);
      }
    }
  });

  it('an operation during a health gate waits for it, saying so, then acts; one that rejects conflicts fails at once', async () => {
    const host = hosts[0]!;
    const gated = await startRollout(
      client,
      rollout({ selector: `${SELECTOR},host=${host.name}`, healthGate: { minHealthyTimeMs: 4_000 } }),
    );
    await waitForRollout(client, gated.id, (current) => current.hosts[0]!.state === 'gating');
    const startsBefore = (await startTimes(host)).length;

    const rejecting = await client.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: host.name } },
      body: { verb: 'restart', unit: UNIT, onConflict: 'reject' },
    });
    assert.equal(rejecting.response.status, 202, JSON.stringify(rejecting.error));
    const rejected = await waitForOperation(client, rejecting.data!.id);
    assert.equal(rejected.tasks[0]!.state, 'failed');
    assert.match(rejected.tasks[0]!.reason ?? '', new RegExp(`rollout ${gated.id} holds ${UNIT}.*reject conflicts`));

    const waiting = await client.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: host.name } },
      body: { verb: 'restart', unit: UNIT },
    });
    assert.equal(waiting.response.status, 202, JSON.stringify(waiting.error));
    await waitUntil(async () => {
      const current = await client.GET('/v1/operations/{id}', { params: { path: { id: waiting.data!.id } } });
      return current.data!.tasks[0]!.waitingFor?.rolloutId === gated.id;
    }, 'the operation shows the rollout it waits for');
    assert.equal((await startTimes(host)).length, startsBefore, 'nothing acted during the gate');

    const passed = await waitForSettled(client, gated.id);
    assert.equal(passed.status, 'succeeded', passed.reason ?? '');
    const acted = await waitForOperation(client, waiting.data!.id);
    assert.equal(acted.status, 'succeeded');
    assert.equal(acted.tasks[0]!.waitingFor, null);
    const starts = await startTimes(host);
    assert.equal(starts.length, startsBefore + 1);
    assert.ok(starts.at(-1)! >= Date.parse(passed.hosts[0]!.finishedAt!), 'the restart came after the gate ended');
  });

  it('onOverlap reject refuses with 409 naming the active rollout; the dry run shows the overlap', async () => {
    const active = await startRollout(
      client,
      rollout({
        selector: `${SELECTOR},host in (${hosts[0]!.name},${hosts[1]!.name})`,
        healthGate: { minHealthyTimeMs: 3_000 },
      }),
    );
    const plan = await client.POST('/v1/rollouts/plan', { body: rollout({ onOverlap: 'reject' }) });
    assert.equal(plan.response.status, 200, JSON.stringify(plan.error));
    assert.deepEqual(
      plan.data!.overlaps.map(({ rolloutId, hosts: shared, units }) => ({ rolloutId, hosts: shared, units })),
      [{ rolloutId: active.id, hosts: [hosts[0]!.name, hosts[1]!.name], units: [UNIT] }],
    );
    const before = (await client.GET('/v1/rollouts', { params: { query: { limit: 100 } } })).data!.items.length;
    const refused = await client.POST('/v1/rollouts', { body: rollout({ onOverlap: 'reject' }) });
    const problem = assertProblem(refused, 409, 'rollout_overlaps', 'onOverlap');
    assert.match(problem.detail ?? '', new RegExp(`rollout ${active.id} \\(running; ${UNIT} on`));
    const after = (await client.GET('/v1/rollouts', { params: { query: { limit: 100 } } })).data!.items.length;
    assert.equal(after, before, 'nothing was created');
    // Rollouts on other hosts, or other units, do not overlap.
    const elsewhere = await startRollout(
      client,
      rollout({ selector: `${SELECTOR},host=${hosts[2]!.name}`, onOverlap: 'reject' }),
    );
    assert.equal(elsewhere.status, 'running');
    for (const item of [active, elsewhere]) assert.equal((await waitForSettled(client, item.id)).status, 'succeeded');
  });

  it('onOverlap supersede cancels the older rollout cleanly, then runs', async () => {
    const four = hosts.slice(0, 4);
    const selector = `${SELECTOR},host in (${four.map((host) => host.name).join(',')})`;
    const startsBefore = await Promise.all(four.map(async (host) => (await startTimes(host)).length));
    const older = await startRollout(
      client,
      rollout({ selector, batches: { size: 2 }, healthGate: { minHealthyTimeMs: 5_000 } }),
    );
    await waitForRollout(client, older.id, (current) => current.counts.gating === 2);

    const newer = await startRollout(client, rollout({ selector, batches: { size: 4 }, onOverlap: 'supersede' }));
    // The older one's hosts were in their gate: it is cancelled at once, the newer waits for them to come to rest.
    const cancelled = await getRollout(client, older.id);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.reason, `cancelled: superseded by rollout ${newer.id}`);
    assert.equal(newer.status, 'queued');
    assert.deepEqual(newer.blockedBy, [older.id]);

    const done = await waitForSettled(client, newer.id);
    assert.equal(done.status, 'succeeded', done.reason ?? '');
    const rested = await getRollout(client, older.id);
    assert.deepEqual(
      rested.hosts.map((host) => host.state),
      ['interrupted', 'interrupted', 'cancelled', 'cancelled'],
      'acted hosts were left at rest, the others never acted on',
    );
    assert.ok(Date.parse(done.batches[0]!.startedAt) >= Date.parse(rested.hosts[1]!.finishedAt!));
    for (const [index, host] of four.entries()) {
      const starts = (await startTimes(host)).length - startsBefore[index]!;
      assert.equal(
        starts,
        index < 2 ? 2 : 1,
        `${host.name}: acted on by the older rollout only if it was in its batch`,
      );
      assert.equal(await onHost(host, `systemctl is-active ${UNIT}`), 'active');
    }
  });

  it('a retry of an older rollout while a newer one is active is refused, or queued behind it when asked', async () => {
    const two = hosts.slice(0, 2);
    const selector = `${SELECTOR},host in (${two.map((host) => host.name).join(',')})`;
    await probeDropIn(two[1]!, 'broken', ['ExecStartPre=/bin/false']);
    const older = await startRollout(client, rollout({ selector, batches: { size: 1 } }));
    const aborted = await waitForSettled(client, older.id);
    assert.equal(aborted.status, 'aborted');
    await resetProbe(two[1]!);
    await liftStartLimit(two[1]!);

    const newer = await startRollout(client, rollout({ selector, healthGate: { minHealthyTimeMs: 3_000 } }));
    const refused = await client.POST('/v1/rollouts/{id}/retry', { params: { path: { id: older.id } }, body: {} });
    const problem = assertProblem(refused, 409, 'rollout_overlaps', 'onOverlap');
    assert.match(problem.detail ?? '', new RegExp(`rollout ${newer.id}`));
    assert.equal((await getRollout(client, older.id)).status, 'aborted', 'a refused retry changes nothing');

    const queued = await client.POST('/v1/rollouts/{id}/retry', {
      params: { path: { id: older.id } },
      body: { onOverlap: 'queue' },
    });
    assert.equal(queued.response.status, 200, JSON.stringify(queued.error));
    assert.equal(queued.data!.status, 'queued');
    assert.deepEqual(queued.data!.blockedBy, [newer.id]);

    const newerDone = await waitForSettled(client, newer.id);
    assert.equal(newerDone.status, 'succeeded', newerDone.reason ?? '');
    const retried = await waitForSettled(client, older.id);
    assert.equal(retried.status, 'succeeded', retried.reason ?? '');
    assert.ok(Date.parse(retried.batches.at(-1)!.startedAt) >= Date.parse(newerDone.finishedAt!));
  });

  it('a queued rollout can be cancelled; the one behind it then runs', async () => {
    const host = hosts[0]!;
    const selector = `${SELECTOR},host=${host.name}`;
    const first = await startRollout(client, rollout({ selector, healthGate: { minHealthyTimeMs: 2_000 } }));
    const second = await startRollout(client, rollout({ selector }));
    const third = await startRollout(client, rollout({ selector }));
    assert.deepEqual(third.blockedBy.sort(), [first.id, second.id].sort());
    const cancel = await client.POST('/v1/rollouts/{id}/cancel', { params: { path: { id: second.id } }, body: {} });
    assert.equal(cancel.response.status, 200, JSON.stringify(cancel.error));
    assert.equal(cancel.data!.status, 'cancelled');
    assert.deepEqual(
      cancel.data!.hosts.map((entry) => entry.state),
      ['cancelled'],
    );
    const ends: Rollout[] = [];
    for (const item of [first, third]) ends.push(await waitForSettled(client, item.id));
    assert.deepEqual(
      ends.map((item) => item.status),
      ['succeeded', 'succeeded'],
    );
    // The stream of a settled rollout replays its events and ends.
    const stream = await fetch(`${api.baseUrl}/v1/rollouts/${third.id}/events`, {
      headers: { Accept: 'text/event-stream', Authorization: `Bearer ${token}` },
    });
    const events = (await stream.text()).split('\n\n').flatMap((block) => {
      const type = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      return type && data ? [{ type, data: JSON.parse(data) as Record<string, unknown> }] : [];
    });
    const queuedEvents = events.filter((event) => event.type === 'rollout.queued');
    assert.deepEqual((queuedEvents[0]!.data.blockedBy as string[]).sort(), [first.id, second.id].sort());
    assert.deepEqual(queuedEvents.at(-1)!.data.blockedBy, [first.id], 'the cancelled one no longer blocks it');
    const started = events.find((event) => event.type === 'rollout.started');
    assert.deepEqual(started?.data.waitedFor, [first.id]);
  });
});

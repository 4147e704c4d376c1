import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import type { DroverClient } from '../../src/client';
import { JobProducer } from '../../src/infra/queue/job-producer';
import { QueueName } from '@drover/protocol';
import { startTestApi, TestApi } from '../support/api';
import { testEnv } from '../support/env';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { actOnHost, waitForOperation } from '../support/operations';
import { startNodeProcess } from '../support/process';
import { waitUntil } from '../support/wait';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const DISCOVERIES = 5_000;

describe('lanes: user work never queues behind background work', () => {
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let host: FleetHost;
  let background: Queue;

  before(async () => {
    const inventory = await readFleetInventory();
    host = inventory.hosts[0]!;
    const queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
    // Few background workers, so the discoveries below stay queued for the whole test.
    worker = await startTestWorker({ ...workerEnv(api.database.url, queuePrefix), DISCOVERY_CONCURRENCY: '2' });
    client = await api.client();
    background = new Queue(QueueName.Background, { connection: { url: testEnv.redisUrl }, prefix: queuePrefix });

    // Hosts on the fleet's network that nobody answers for: each discovery waits out its connect timeout.
    const [a, b] = host.address.split('.');
    const silent = Array.from({ length: DISCOVERIES }, (_, index) => ({
      name: `silent-${index}`,
      address: `${a}.${b}.254.${(index % 250) + 1}`,
      labels: { lanes: 'silent' },
    }));
    for (let offset = 0; offset < silent.length; offset += 1_000) {
      const imported = await client.POST('/v1/hosts/bulk-upsert', {
        body: { hosts: silent.slice(offset, offset + 1_000) },
      });
      assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    }
    const real = await client.POST('/v1/hosts/bulk-upsert', { body: { hosts: [host] } });
    assert.equal(real.response.status, 200, JSON.stringify(real.error));
    const ids = await api.prisma.host.findMany({ where: { name: { startsWith: 'silent-' } }, select: { id: true } });
    const producer = api.app.get(JobProducer);
    await Promise.all(ids.map(({ id }) => producer.discoverHost(id)));
  });

  after(async () => {
    await background.obliterate({ force: true });
    await background.close();
    await worker.close();
    await api.close();
  });

  it(`an operation created while ${DISCOVERIES} discoveries are queued acts at once`, async () => {
    const queued = await background.getWaitingCount();
    assert.ok(queued >= DISCOVERIES - 50, `${queued} discoveries waiting`);

    const operation = await actOnHost(client, host.name, { verb: 'restart', unit: 'drover-probe.service' });
    assert.equal(operation.status, 'succeeded', operation.tasks[0]?.reason ?? '');

    // Nearly all discoveries are still waiting: the task did not queue behind them (in one shared
    // queue it would have waited for thousands of connect timeouts).
    const stillQueued = await background.getWaitingCount();
    assert.ok(stillQueued >= DISCOVERIES - 500, `only ${stillQueued} discoveries left waiting`);
    // And the background lane works: discoveries ran meanwhile, two at a time.
    const counts = await background.getJobCounts('active', 'completed', 'failed', 'delayed');
    assert.ok(counts.active! + counts.completed! + counts.failed! + counts.delayed! > 0, 'no discovery ran');
    assert.ok(counts.active! <= 2, `${counts.active} discoveries ran at once with DISCOVERY_CONCURRENCY 2`);
  });
});

describe('lanes: a worker process per lane (WORKER_LANES)', () => {
  let api: TestApi;
  let client: DroverClient;
  let host: FleetHost;
  let background: Queue;
  let queuePrefix: string;
  const workers: TestWorker[] = [];

  const startLaneWorker = async (lane: QueueName): Promise<TestWorker> => {
    const worker = await startTestWorker({ ...workerEnv(api.database.url, queuePrefix), WORKER_LANES: lane });
    workers.push(worker);
    return worker;
  };
  const unitsOf = (hostId: string) => api.prisma.unit.count({ where: { hostId } });

  before(async () => {
    host = (await readFleetInventory()).hosts[0]!;
    queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
    client = await api.client();
    background = new Queue(QueueName.Background, { connection: { url: testEnv.redisUrl }, prefix: queuePrefix });
  });

  after(async () => {
    await Promise.all(workers.map((worker) => worker.close()));
    await background.obliterate({ force: true });
    await background.close();
    await api.close();
  });

  it('a background-only worker discovers and runs no task; a lifecycle-only worker runs tasks and no discovery', async () => {
    const discoverer = await startLaneWorker(QueueName.Background);
    const imported = await client.POST('/v1/hosts/bulk-upsert', { body: { hosts: [host] } });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    const { id: hostId } = await api.prisma.host.findUniqueOrThrow({ where: { name: host.name } });
    // Discovered by the background-only worker, the only one running.
    await api.app.get(JobProducer).discoverHost(hostId);
    await waitUntil(async () => (await unitsOf(hostId)) > 0, 'the new host is discovered', 30_000);

    const created = await client.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: host.name } },
      body: { verb: 'restart', unit: 'drover-probe.service' },
    });
    assert.equal(created.response.status, 202, JSON.stringify(created.error));
    await sleep(2_000);
    const waiting = await api.prisma.task.findFirstOrThrow({ where: { operationId: created.data!.id } });
    assert.equal(waiting.startedAt, null, 'a worker without the lifecycle lane started a task');

    await discoverer.close();
    await startLaneWorker(QueueName.Lifecycle);
    const operation = await waitForOperation(client, created.data!.id);
    assert.equal(operation.status, 'succeeded', operation.tasks[0]?.reason ?? '');

    // The discovery the restart queued (and one more asked for now) waits for a background worker.
    await api.app.get(JobProducer).discoverHost(hostId);
    await sleep(2_000);
    const counts = await background.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
    assert.equal(counts.active, 0, 'a worker without the background lane ran a discovery');
    assert.ok(
      counts.waiting! + counts.delayed! + counts.prioritized! >= 1,
      `no discovery waiting: ${JSON.stringify(counts)}`,
    );
  });

  it("the readiness probe counts each lane's workers, and a stopped worker no longer counts", async () => {
    await Promise.all(workers.map((worker) => worker.close()));
    const laneWorkers = async () => {
      const ready = await client.GET('/healthz/ready');
      assert.equal(ready.response.status, 200, JSON.stringify(ready.error));
      return ready.data!.workers;
    };
    assert.deepEqual(await laneWorkers(), { lifecycle: 0, background: 0 });
    const discoverer = await startLaneWorker(QueueName.Background);
    assert.deepEqual(await laneWorkers(), { lifecycle: 0, background: 1 });
    await startLaneWorker(QueueName.Lifecycle);
    await startTestWorker({ ...workerEnv(api.database.url, queuePrefix) }).then((both) => workers.push(both));
    assert.deepEqual(await laneWorkers(), { lifecycle: 2, background: 2 });
    await discoverer.close();
    assert.deepEqual(await laneWorkers(), { lifecycle: 2, background: 1 });
  });

  it('a worker that leaves a lane out warns while no worker consumes it, and says when one does again', async () => {
    await Promise.all(workers.map((worker) => worker.close()));
    const lifecycleOnly = startNodeProcess(path.resolve(__dirname, '../../src/worker.js'), {
      ...workerEnv(api.database.url, queuePrefix),
      WORKER_LANES: 'lifecycle',
      RECONCILE_INTERVAL_MS: '1000',
      LOG_LEVEL: 'info',
    });
    try {
      await lifecycleOnly.waitForLine((line) => line.includes('no worker consumes the background lane'));
      await startLaneWorker(QueueName.Background);
      await lifecycleOnly.waitForLine((line) => line.includes('the background lane has a worker again'));
      const warnings = lifecycleOnly.lines().filter((line) => line.includes('no worker consumes'));
      assert.equal(warnings.length, 1, 'warned once, not at every look');
    } finally {
      await lifecycleOnly.stop('SIGTERM');
    }
  });
});

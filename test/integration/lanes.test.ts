import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import type { DroverClient } from '../../src/client';
import { JobProducer } from '../../src/infra/queue/job-producer';
import { QueueName } from '@drover/protocol';
import { startTestApi, TestApi } from '../support/api';
import { testEnv } from '../support/env';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { actOnHost } from '../support/operations';
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

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { startRedisCluster, type RedisCluster } from '../support/redis-servers';
import { probeStarts, resetProbe, startRollout, waitForSettled } from '../support/rollouts';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

describe('Redis Cluster', () => {
  let cluster: RedisCluster | undefined;
  let api: TestApi | undefined;
  let worker: TestWorker | undefined;
  let client: DroverClient;
  let hosts: FleetHost[];

  before(async () => {
    hosts = (await readFleetInventory()).hosts.slice(0, 4);
    assert.equal(hosts.length, 4, 'this test needs a fleet of at least 4 hosts');
    cluster = await startRedisCluster();
    // No braces: drover puts the prefix in a hash tag itself, or BullMQ's scripts would fail (CROSSSLOT).
    const viaCluster = { REDIS_URL: undefined, REDIS_CLUSTER_NODES: cluster.nodesSetting };
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix, ...viaCluster });
    worker = await startTestWorker({ ...workerEnv(api.database.url, prefix), ...viaCluster });
    client = await api.client();
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, cluster: 'yes' } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    await Promise.all(hosts.map(resetProbe));
  });

  after(async () => {
    await worker?.close().catch(() => undefined);
    await api?.close().catch(() => undefined);
    await cluster?.stop();
  });

  it('carries a rolling restart: every host restarted exactly once', async () => {
    const startsBefore = await Promise.all(hosts.map(async (host) => (await probeStarts(host)).length));
    const created = await startRollout(client, {
      unit: 'drover-probe.service',
      selector: 'cluster=yes',
      batches: { size: 2 },
      healthGate: { minHealthyTimeMs: 200 },
    });
    const rollout = await waitForSettled(client, created.id, 90_000);
    assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
    assert.deepEqual(
      await Promise.all(hosts.map(async (host) => (await probeStarts(host)).length)),
      startsBefore.map((count) => count + 1),
    );
  });
});

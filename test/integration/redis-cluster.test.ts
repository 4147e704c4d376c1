import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { assertWokenByNewTask, enrolledAgent } from '../support/agent-client';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { closeEachWithin, rolloutAcrossFailover } from '../support/redis-failover';
import { makeRedisTls, type RedisCluster, type RedisTls, startRedisCluster } from '../support/redis-servers';
import { probeDropIn, probeStarts, resetProbe, startRollout, waitForSettled } from '../support/rollouts';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

describe('Redis Cluster over TLS (three masters, a replica each): a rollout, and failovers in the middle of one', () => {
  let tls: RedisTls | undefined;
  let cluster: RedisCluster | undefined;
  let api: TestApi | undefined;
  let worker: TestWorker | undefined;
  let client: DroverClient;
  let hosts: FleetHost[];
  // No braces: drover puts the prefix in a hash tag itself, or BullMQ's scripts would fail (CROSSSLOT).
  const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
  /** Every BullMQ key of this drover lives in the slot of this hash tag, so on one master. */
  const hashTag = `{${prefix}}`;

  before(async () => {
    hosts = (await readFleetInventory()).hosts.slice(0, 4);
    assert.equal(hosts.length, 4, 'this test needs a fleet of at least 4 hosts');
    tls = await makeRedisTls();
    cluster = await startRedisCluster({ replicas: true, tls });
    // TLS everywhere, trusting only the test's own CA (the system's would refuse the certificate).
    const viaCluster = {
      REDIS_URL: undefined,
      REDIS_CLUSTER_NODES: cluster.nodesSetting,
      REDIS_TLS: 'true',
      REDIS_TLS_CA_FILE: tls.certFile,
    };
    api = await startTestApi({ QUEUE_PREFIX: prefix, ...viaCluster });
    worker = await startTestWorker({ ...workerEnv(api.database.url, prefix), ...viaCluster });
    client = await api.client();
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, cluster: 'yes' } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    await Promise.all(hosts.map(resetProbe));
    // A slow stop keeps each restart in flight for a while, so the failover can land in the middle of one.
    await Promise.all(hosts.map((host) => probeDropIn(host, 'slow-stop', ['ExecStopPost=/bin/sleep 1'])));
  });

  after(async () => {
    // Each step bounded (closeEachWithin): the Redis servers go whatever the closes before them do.
    await Promise.allSettled(hosts.map(resetProbe));
    const problems = await closeEachWithin([
      ['closing the worker', worker && (() => worker!.close())],
      ['closing the API', api && (() => api!.close())],
    ]);
    await cluster?.stop();
    await tls?.remove();
    assert.deepEqual(problems, [], 'the worker and the API closed');
  });

  // Agents' wake-ups are Redis pub/sub, not BullMQ: the API's subscriber stays on one node of the
  // Cluster (whichever ioredis picked) while drover's publishes reach any node.
  it('wakes a waiting agent through the Cluster when a task for its host is queued', async () => {
    await assertWokenByNewTask(client, await enrolledAgent(client, api!.baseUrl, 'cluster-agent-1'), 'cluster-agent-1');
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

  /** A rollout during which `failover` hands drover's slot from its master to that master's replica. */
  async function rolloutAcrossClusterFailover(failover: (shard: { master: number; replica: number }) => Promise<void>) {
    const set = cluster!;
    const { master, replica } = await set.shardOf(hashTag);
    assert.ok(replica !== null, `the master on port ${master} has a replica`);
    await rolloutAcrossFailover({
      api: api!,
      client,
      hosts,
      selector: 'cluster=yes',
      failover: () => failover({ master, replica }),
      failedOver: {
        check: async () => (await set.shardOf(hashTag)).master === replica,
        description: `the replica on port ${replica} serves drover's slot`,
      },
    });
  }

  it('failover on request (the old master lives on as a replica): every host restarted once, audit intact', async () => {
    await rolloutAcrossClusterFailover(({ replica }) => cluster!.failover(replica));
  });

  it('master crashes (SIGKILL; writes not yet replicated are lost): every host restarted once, audit intact', async () => {
    const set = cluster!;
    await rolloutAcrossClusterFailover(async ({ master }) => {
      const node = set.nodes.find((candidate) => candidate.port === master);
      assert.ok(node, `port ${master} is one of the cluster's nodes`);
      await node.kill();
    });
  });

  it('still wakes a waiting agent after both failovers (the subscriber follows the Cluster)', async () => {
    await assertWokenByNewTask(client, await enrolledAgent(client, api!.baseUrl, 'cluster-agent-2'), 'cluster-agent-2');
  });
});

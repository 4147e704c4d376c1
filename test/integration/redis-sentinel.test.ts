import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { assertWokenByNewTask, enrolledAgent } from '../support/agent-client';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { makeRedisTls, type RedisTls, startSentinelSet, type SentinelSet } from '../support/redis-servers';
import { closeEachWithin, rolloutAcrossFailover } from '../support/redis-failover';
import { probeDropIn, resetProbe } from '../support/rollouts';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const MASTER = 'drovermaster';

describe('Redis behind Sentinel, over TLS with passwords: a failover in the middle of a rollout', () => {
  let tls: RedisTls | undefined;
  let redis: SentinelSet | undefined;
  let api: TestApi | undefined;
  let worker: TestWorker | undefined;
  let client: DroverClient;
  let hosts: FleetHost[];

  before(async () => {
    hosts = (await readFleetInventory()).hosts.slice(0, 4);
    assert.equal(hosts.length, 4, 'this test needs a fleet of at least 4 hosts');
    tls = await makeRedisTls();
    const passwords = { servers: randomBytes(12).toString('hex'), sentinels: randomBytes(12).toString('hex') };
    redis = await startSentinelSet(MASTER, { tls, passwords });
    // Only the sentinels are named: drover must find the master (and later the new one) through them,
    // over TLS trusting only the test's own CA, with one password for the sentinels and one for Redis.
    const viaSentinels = {
      REDIS_URL: undefined,
      REDIS_SENTINELS: redis.sentinelsSetting,
      REDIS_SENTINEL_MASTER: MASTER,
      REDIS_TLS: 'true',
      REDIS_TLS_CA_FILE: tls.certFile,
      REDIS_PASSWORD: passwords.servers,
      REDIS_SENTINEL_PASSWORD: passwords.sentinels,
    };
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix, ...viaSentinels });
    worker = await startTestWorker({ ...workerEnv(api.database.url, prefix), ...viaSentinels });
    client = await api.client();
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, sentinel: 'yes' } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    await Promise.all(hosts.map(resetProbe));
    // A slow stop keeps each restart in flight for a while, so the failover can land in the middle of one.
    await Promise.all(hosts.map((host) => probeDropIn(host, 'slow-stop', ['ExecStopPost=/bin/sleep 1'])));
  });

  after(async () => {
    // Each step on its own and bounded: the Redis servers must go even when something before them
    // fails, and a close that never ends is named instead of holding the file until its time limit.
    await Promise.allSettled(hosts.map(resetProbe));
    const problems = await closeEachWithin([
      ['closing the worker', worker && (() => worker!.close())],
      ['closing the API', api && (() => api!.close())],
    ]);
    await redis?.stop();
    await tls?.remove();
    assert.deepEqual(problems, [], 'the worker and the API closed');
  });

  /** A rollout across the hosts during which the sentinels promote `newMasterPort`. */
  const rolloutAcrossSentinelFailover = (failover: () => Promise<void>, newMasterPort: number) =>
    rolloutAcrossFailover({
      api: api!,
      client,
      hosts,
      selector: 'sentinel=yes',
      failover,
      failedOver: {
        check: async () => (await redis!.currentMasterPort()) === newMasterPort,
        description: `the sentinels promoted port ${newMasterPort}`,
      },
    });

  // Agents' wake-ups are Redis pub/sub, not BullMQ: the API's subscriber must follow the master too.
  it('wakes a waiting agent through the master the sentinels name', async () => {
    await assertWokenByNewTask(
      client,
      await enrolledAgent(client, api!.baseUrl, 'sentinel-agent-1'),
      'sentinel-agent-1',
    );
  });

  it('master crashes (SIGKILL; writes not yet replicated are lost): every host restarted once, audit intact', async () => {
    const set = redis!;
    await rolloutAcrossSentinelFailover(() => set.master.kill(), set.replica.port);
  });

  it('failover on request (the old master lives on as a replica): every host restarted once, audit intact', async () => {
    const set = redis!;
    // The crashed master of the test before comes back, and becomes the new master's replica.
    const oldMaster = await set.revive(set.master);
    await rolloutAcrossSentinelFailover(() => set.failover(), oldMaster.port);
  });

  it('still wakes a waiting agent after both failovers', async () => {
    await assertWokenByNewTask(
      client,
      await enrolledAgent(client, api!.baseUrl, 'sentinel-agent-2'),
      'sentinel-agent-2',
    );
  });
});

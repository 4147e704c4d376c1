import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { startSentinelSet, type SentinelSet } from '../support/redis-servers';
import {
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
const MASTER = 'drovermaster';

describe('Redis behind Sentinel: a failover in the middle of a rollout', () => {
  let redis: SentinelSet | undefined;
  let api: TestApi | undefined;
  let worker: TestWorker | undefined;
  let client: DroverClient;
  let hosts: FleetHost[];

  before(async () => {
    hosts = (await readFleetInventory()).hosts.slice(0, 4);
    assert.equal(hosts.length, 4, 'this test needs a fleet of at least 4 hosts');
    redis = await startSentinelSet(MASTER);
    // Only the sentinels are named: drover must find the master (and later the new one) through them.
    const viaSentinels = {
      REDIS_URL: undefined,
      REDIS_SENTINELS: redis.sentinelsSetting,
      REDIS_SENTINEL_MASTER: MASTER,
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
    const problems: string[] = [];
    const step = async (name: string, close: (() => Promise<void>) | undefined) => {
      if (!close) return;
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('did not finish within 60 s')), 60_000);
      });
      await Promise.race([close(), bound])
        .catch((error: unknown) => problems.push(`${name}: ${String(error)}`))
        .finally(() => clearTimeout(timer));
    };
    await step('closing the worker', worker && (() => worker!.close()));
    await step('closing the API', api && (() => api!.close()));
    await redis?.stop();
    assert.deepEqual(problems, [], 'the worker and the API closed');
  });

  /**
   * Rolls drover-probe out over the hosts one at a time and, once the second batch's restart is
   * under way on its host, has Redis fail over to `newMasterPort`; then checks that the rollout
   * succeeded with every host started exactly once, and that the audit chain verifies.
   */
  async function rolloutAcrossFailover(failover: () => Promise<void>, newMasterPort: number): Promise<void> {
    const set = redis!;
    const startsBefore = await Promise.all(hosts.map(async (host) => (await probeStarts(host)).length));
    const created = await startRollout(client, {
      unit: UNIT,
      selector: 'sentinel=yes',
      batches: { size: 1 },
      healthGate: { minHealthyTimeMs: 1_000 },
    });
    await waitForRollout(client, created.id, (rollout) => rollout.batches.length >= 2, 60_000);
    await waitUntil(
      async () => {
        const [row] = await query<{ count: string }>(
          api!.database.url,
          `SELECT count(*) FROM tasks t JOIN rollout_batches b ON b.operation_id = t.operation_id
            WHERE b.rollout_id = $1 AND b.index = 1 AND t.state = 'running'`,
          [created.id],
        );
        return Number(row?.count) > 0;
      },
      'a task of the second batch runs',
      30_000,
    );
    await failover();
    await waitUntil(
      async () => (await set.currentMasterPort()) === newMasterPort,
      `the sentinels promoted port ${newMasterPort}`,
      30_000,
    );

    const rollout = await waitForSettled(client, created.id, 120_000);
    assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
    assert.deepEqual(
      await Promise.all(hosts.map(async (host) => (await probeStarts(host)).length)),
      startsBefore.map((count) => count + 1),
      'each host started exactly once, none skipped',
    );
    const auditor = await api!.client({ scopes: ['audit'] });
    const verification = await auditor.GET('/v1/audit/verify', {});
    assert.equal(verification.response.status, 200);
    assert.equal(verification.data!.ok, true, JSON.stringify(verification.data));
  }

  it('master crashes (SIGKILL; writes not yet replicated are lost): every host restarted once, audit intact', async () => {
    const set = redis!;
    await rolloutAcrossFailover(() => set.master.kill(), set.replica.port);
  });

  it('failover on request (the old master lives on as a replica): every host restarted once, audit intact', async () => {
    const set = redis!;
    // The crashed master of the test before comes back, and becomes the new master's replica.
    const oldMaster = await set.revive(set.master);
    await rolloutAcrossFailover(() => set.failover(), oldMaster.port);
  });
});

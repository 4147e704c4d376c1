import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { assertProblem } from '../support/problems';
import {
  getRollout,
  onHost,
  probeStarts,
  resetProbe,
  startRollout,
  waitForRollout,
  waitForSettled,
} from '../support/rollouts';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const UNIT = 'drover-probe.service';
const GATE_FILE = '/run/drover-gate-ok';

/**
 * What a token may make drover run on real hosts: catalogue probes only, host-level verbs as
 * host-level, and a rollout that stops when the token it acts under loses its right.
 */
describe('what tokens may run on booted hosts', () => {
  let api: TestApi;
  let worker: TestWorker;
  let admin: DroverClient;
  let hosts: FleetHost[];
  let selector: string;

  const starts = async () => Promise.all(hosts.map(async (host) => (await probeStarts(host)).length));

  /** An operate token bounded to this file's hosts and the probe unit, with its id for revoking. */
  async function boundedToken(): Promise<{ client: DroverClient; id: string }> {
    const name = `bounded-${randomBytes(4).toString('hex')}`;
    const client = await api.client({ name, scopes: ['operate'], hostSelector: selector, unitGlob: 'drover-probe*' });
    const [row] = await query<{ id: string }>(api.database.url, 'SELECT id FROM api_tokens WHERE name = $1', [name]);
    return { client, id: row!.id };
  }

  /**
   * A rollout of one host per batch whose first batch just finished, with a pause before the next
   * long enough to change its token or the hosts' labels in between.
   */
  async function rolloutPastItsFirstBatch(client: DroverClient) {
    const created = await startRollout(client, {
      unit: UNIT,
      selector,
      batches: { size: 1 },
      pauseBetweenBatchesMs: 4_000,
      healthGate: { minHealthyTimeMs: 200 },
    });
    await waitForRollout(client, created.id, (rollout) => rollout.batches[0]?.finishedAt != null);
    return created;
  }

  async function rowCount(table: string): Promise<number> {
    const [row] = await query<{ count: string }>(api.database.url, `SELECT count(*) FROM ${table}`);
    return Number(row?.count);
  }

  before(async () => {
    const inventory = await readFleetInventory();
    hosts = inventory.hosts.slice(0, 3).sort((a, b) => a.name.localeCompare(b.name));
    assert.equal(hosts.length, 3, 'these tests need a fleet of at least 3 hosts');
    const queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    const suite = `authz-${randomBytes(3).toString('hex')}`;
    selector = `suite=${suite}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
    worker = await startTestWorker(workerEnv(api.database.url, queuePrefix));
    admin = await api.client();
    const imported = await admin.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { suite } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
  });

  beforeEach(async () => {
    await Promise.all(hosts.map(resetProbe));
    await Promise.all(hosts.map((host) => onHost(host, `rm -f ${GATE_FILE}`)));
    for (const host of hosts) {
      const labelled = await admin.PATCH('/v1/hosts/{name}', {
        params: { path: { name: host.name } },
        body: { labels: { suite: selector.slice('suite='.length) } },
      });
      assert.equal(labelled.response.status, 200, JSON.stringify(labelled.error));
    }
  });

  after(async () => {
    await Promise.all(hosts.map((host) => onHost(host, `rm -f ${GATE_FILE}`)));
    await Promise.all(hosts.map(resetProbe));
    await worker.close();
    await api.close();
  });

  it('runs a catalogue probe on each gated host as the catalogue defines it', async () => {
    const put = await admin.PUT('/v1/probes/{name}', {
      params: { path: { name: 'gate-file' } },
      body: { argv: ['/usr/bin/test', '-e', GATE_FILE], unitGlob: 'drover-probe*' },
    });
    assert.equal(put.response.status, 201, JSON.stringify(put.error));
    // Healthy by the probe on the first host only.
    await onHost(hosts[0]!, `touch ${GATE_FILE}`);
    const { client } = await boundedToken();
    const created = await startRollout(client, {
      unit: UNIT,
      selector,
      batches: { size: 2 },
      maxFailures: 1,
      healthGate: { minHealthyTimeMs: 300, timeoutMs: 1_000, probes: [{ type: 'command', name: 'gate-file' }] },
    });
    const rollout = await waitForSettled(client, created.id);
    const byName = new Map(rollout.hosts.map((host) => [host.name, host]));
    assert.equal(byName.get(hosts[0]!.name)?.state, 'succeeded', byName.get(hosts[0]!.name)?.reason ?? '');
    assert.equal(byName.get(hosts[1]!.name)?.state, 'failed');
    assert.match(byName.get(hosts[1]!.name)?.reason ?? '', /probe 'gate-file' exited 1/);
  });

  it('treats daemon-reload as host-level for a bounded token, whatever unit the body names', async () => {
    const { client } = await boundedToken();
    const operationsBefore = await rowCount('operations');
    const rolloutsBefore = await rowCount('rollouts');
    const body = { verb: 'daemon-reload' as const, unit: UNIT };
    const refusals = [
      await client.POST('/v1/operations', { body: { ...body, selector } }),
      await client.POST('/v1/hosts/{name}/actions', { params: { path: { name: hosts[0]!.name } }, body }),
      await client.POST('/v1/rollouts', { body: { ...body, selector } }),
    ];
    for (const refused of refusals) {
      const problem = assertProblem(refused, 403, 'forbidden');
      assert.match(problem.detail, /not on the whole host \(such as daemon-reload\)/);
    }
    assert.equal(await rowCount('operations'), operationsBefore, 'nothing was queued');
    assert.equal(await rowCount('rollouts'), rolloutsBefore);
    // A unit verb inside its bounds is still fine.
    const status = await client.POST('/v1/operations', { body: { verb: 'status', unit: UNIT, selector } });
    assert.equal(status.response.status, 202, JSON.stringify(status.error));
  });

  it('stops a rollout before its next batch once its token is revoked, and never acts again', async () => {
    const { client, id } = await boundedToken();
    const startsBefore = await starts();
    const created = await rolloutPastItsFirstBatch(client);
    const revoked = await admin.POST('/v1/tokens/{id}/revoke', { params: { path: { id } } });
    assert.equal(revoked.response.status, 200);
    const rollout = await waitForSettled(admin, created.id);
    assert.equal(rollout.status, 'aborted');
    assert.match(rollout.reason ?? '', /stopped before batch 1: its token '[^']+' was revoked at/);
    assert.deepEqual(
      (await starts()).map((count, index) => count - startsBefore[index]!),
      [1, 0, 0],
      'only the first batch acted',
    );
    const [finish] = await query<{ result: string; reason: string }>(
      api.database.url,
      `SELECT result, reason FROM audit_events WHERE action = 'rollout.finish' AND parameters->>'runs' IS NOT NULL
         ORDER BY seq DESC LIMIT 1`,
    );
    assert.equal(finish?.result, 'aborted');
    assert.match(finish?.reason ?? '', /was revoked/);
    // Nobody can make it act under that token again.
    const retry = await admin.POST('/v1/rollouts/{id}/retry', { params: { path: { id: created.id } }, body: {} });
    assert.match(assertProblem(retry, 409, 'rollout_authority_lost').detail, /was revoked/);
    assert.deepEqual(
      (await starts()).map((count, index) => count - startsBefore[index]!),
      [1, 0, 0],
    );
  });

  it('stops before acting on a host relabelled out of its token bounds', async () => {
    const { client } = await boundedToken();
    const startsBefore = await starts();
    const created = await rolloutPastItsFirstBatch(client);
    const moved = await admin.PATCH('/v1/hosts/{name}', {
      params: { path: { name: hosts[1]!.name } },
      body: { labels: { suite: 'elsewhere' } },
    });
    assert.equal(moved.response.status, 200);
    const rollout = await waitForSettled(client, created.id);
    assert.equal(rollout.status, 'aborted');
    assert.match(rollout.reason ?? '', new RegExp(`1 host outside it: ${hosts[1]!.name}`));
    assert.deepEqual(
      (await starts()).map((count, index) => count - startsBefore[index]!),
      [1, 0, 0],
    );
  });

  it('refuses to approve a rollout whose token expired, and still lets anyone cancel it', async () => {
    const { client, id } = await boundedToken();
    const created = await startRollout(client, {
      unit: UNIT,
      selector,
      batches: { size: 1 },
      approveAfterCanary: true,
      healthGate: { minHealthyTimeMs: 200 },
    });
    await waitForRollout(client, created.id, (rollout) => rollout.status === 'awaiting_approval');
    await query(api.database.url, `UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, [id]);
    const approve = await admin.POST('/v1/rollouts/{id}/approve', { params: { path: { id: created.id } }, body: {} });
    assert.match(assertProblem(approve, 409, 'rollout_authority_lost').detail, /expired at/);
    assert.equal(
      (await getRollout(admin, created.id)).status,
      'awaiting_approval',
      'a refused approval changes nothing',
    );
    const cancel = await admin.POST('/v1/rollouts/{id}/cancel', { params: { path: { id: created.id } }, body: {} });
    assert.equal(cancel.response.status, 200, JSON.stringify(cancel.error));
    assert.equal(cancel.data?.status, 'cancelled');
  });
});

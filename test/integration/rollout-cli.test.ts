import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { CliResult, runCli } from '../support/cli';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { assertProblem } from '../support/problems';
import {
  getRollout,
  probeDropIn,
  probeStarts,
  resetProbe,
  startRollout,
  waitForRollout,
  waitForSettled,
} from '../support/rollouts';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

describe('drover rollout (CLI) and the rollout API for pipelines', () => {
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let token: string;
  let hosts: FleetHost[];

  function drover(args: string[], onStarted?: (stderr: string) => void): Promise<CliResult> {
    return runCli({ baseUrl: api.baseUrl, token }, args, onStarted);
  }

  before(async () => {
    hosts = (await readFleetInventory()).hosts.slice(0, 6);
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    worker = await startTestWorker(workerEnv(api.database.url, prefix));
    token = await api.token();
    client = await api.client();
    await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, cli: 'yes' } })) },
    });
  });

  beforeEach(async () => {
    await Promise.all(hosts.map(resetProbe));
  });

  after(async () => {
    await Promise.all(hosts.map(resetProbe));
    await worker.close();
    await api.close();
  });

  it('--wait follows the rollout with plain progress lines and exits 0 when it succeeded', async () => {
    const before = await Promise.all(hosts.map(async (host) => (await probeStarts(host)).length));
    const result = await drover([
      'rollout',
      'restart',
      'drover-probe',
      '-l',
      'cli=yes',
      '--batch',
      '1,50%',
      '--max-failures',
      '1',
      '--min-healthy',
      '200ms',
      '--wait',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /batch 0 started: fleet-01\n/);
    assert.match(result.stderr, /batch 1 started: /);
    assert.match(result.stderr, /rollout succeeded/);
    assert.match(result.stdout, /rollout [0-9a-f-]{36}: succeeded/);
    const afterStarts = await Promise.all(hosts.map(async (host) => (await probeStarts(host)).length));
    assert.deepEqual(
      afterStarts,
      before.map((count) => count + 1),
    );
  });

  it('exits 3 when the rollout aborted, 4 when it was cancelled, 5 when it could not start', async () => {
    await probeDropIn(hosts[0]!, 'broken', ['ExecStartPre=/bin/false']);
    const aborted = await drover(['rollout', 'restart', 'drover-probe.service', '-l', 'cli=yes', '--wait', '--json']);
    assert.equal(aborted.code, 3, aborted.stderr);
    assert.equal((JSON.parse(aborted.stdout) as { status: string }).status, 'aborted');

    await resetProbe(hosts[0]!);
    let cancelledId = '';
    const cancelled = await drover(
      ['rollout', 'restart', 'drover-probe.service', '-l', 'cli=yes', '--pause', '1m', '--wait'],
      (stderr) => {
        const id = /rollout ([0-9a-f-]{36}) started/.exec(stderr)?.[1];
        if (id && !cancelledId) {
          cancelledId = id;
          void waitForRollout(client, id, (rollout) => rollout.counts.succeeded === 1).then(() =>
            client.POST('/v1/rollouts/{id}/cancel', { params: { path: { id } }, body: { reason: 'test' } }),
          );
        }
      },
    );
    assert.equal(cancelled.code, 4, cancelled.stderr);
    assert.match(cancelled.stdout, /cancelled/);

    const rejected = await drover(['rollout', 'restart', 'nginx', '-l', 'cli=nothing-matches', '--wait']);
    assert.equal(rejected.code, 5);
    assert.match(rejected.stderr, /did not start: .*matches no host/);

    const usage = await drover(['rollout', 'restart', 'nginx', '-l', 'cli=yes', '--batch', 'lots']);
    assert.equal(usage.code, 64);
    assert.match(usage.stderr, /--batch takes a count/);
  });

  it('--wait shows a rollout queued behind an overlapping one, then its progress; --on-overlap reject exits 5', async () => {
    const first = await startRollout(client, {
      unit: 'drover-probe.service',
      selector: 'cli=yes',
      batches: { size: 6 },
      healthGate: { minHealthyTimeMs: 2_000 },
    });
    const refused = await drover(['rollout', 'restart', 'drover-probe', '-l', 'cli=yes', '--on-overlap', 'reject']);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, new RegExp(`did not start: .*rollout ${first.id} \\(running`));

    const queued = await drover([
      'rollout',
      'restart',
      'drover-probe',
      '-l',
      'cli=yes',
      '--min-healthy',
      '0s',
      '--wait',
    ]);
    assert.equal(queued.code, 0, queued.stderr);
    assert.match(queued.stderr, new RegExp(`rollout [0-9a-f-]{36} queued behind rollout ${first.id} \\(running;`));
    assert.match(queued.stderr, new RegExp(`rollout started \\(it waited for ${first.id}\\)\\n[^]*batch 0 started`));
    assert.match(queued.stderr, /rollout succeeded/);
    assert.equal((await getRollout(client, first.id)).status, 'succeeded');
  });

  it('Idempotency-Key: the same key and body give the same rollout, another body under it is a 409', async () => {
    const body = {
      unit: 'drover-probe.service',
      selector: 'cli=yes',
      pauseBetweenBatchesMs: 60_000,
      healthGate: { minHealthyTimeMs: 0 },
    };
    const key = `pipeline-${randomBytes(4).toString('hex')}`;
    const first = await client.POST('/v1/rollouts', { body, headers: { 'Idempotency-Key': key } });
    assert.equal(first.response.status, 201, JSON.stringify(first.error));
    const again = await client.POST('/v1/rollouts', { body, headers: { 'Idempotency-Key': key } });
    assert.equal(again.response.status, 200);
    assert.equal(again.response.headers.get('idempotent-replayed'), 'true');
    assert.equal(again.data!.id, first.data!.id);
    const other = await client.POST('/v1/rollouts', {
      body: { ...body, batches: { size: 2 } },
      headers: { 'Idempotency-Key': key },
    });
    assertProblem(other, 409, 'idempotency_key_reused', 'Idempotency-Key');
    const bad = await client.POST('/v1/rollouts', { body, headers: { 'Idempotency-Key': 'has space' } });
    assertProblem(bad, 400, 'validation_failed', 'Idempotency-Key');

    const listed = await client.GET('/v1/rollouts', { params: { query: { status: 'running', limit: 10 } } });
    assert.ok(listed.data!.items.some((rollout) => rollout.id === first.data!.id));
    const none = await client.GET('/v1/rollouts', { params: { query: { status: 'aborted', unit: 'nope.service' } } });
    assert.deepEqual(none.data!.items, []);

    await client.POST('/v1/rollouts/{id}/cancel', { params: { path: { id: first.data!.id } }, body: {} });
    const settled = await waitForSettled(client, first.data!.id);
    assert.equal(settled.status, 'cancelled');
  });

  it('refuses a rollout that cannot start, naming why, and writes nothing', async () => {
    const stop = await client.POST('/v1/rollouts', {
      body: { verb: 'stop', unit: 'drover-probe.service', selector: 'cli=yes', maxUnavailable: 2 },
    });
    const problem = assertProblem(stop, 422, 'rollout_cannot_start', 'strategy');
    assert.match(problem.detail, /stop leaves them down/);
    const listed = await client.GET('/v1/rollouts', { params: { query: { verb: 'stop' } } });
    assert.deepEqual(listed.data!.items, []);
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createDroverClient, type DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { RunningProcess, startNodeProcess } from '../support/process';
import { freePort, startRedisServer } from '../support/redis-servers';
import {
  probeDropIn,
  probeStarts,
  resetProbe,
  startRollout,
  waitForRollout,
  waitForSettled,
} from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { startTestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const WORKER = path.resolve(__dirname, '../../src/worker.js');
const API = path.resolve(__dirname, '../../src/main.js');
const UNIT = 'drover-probe.service';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface SseEvent {
  id: string;
  type: string;
  data: Record<string, unknown>;
}

/** Reads a rollout's event stream until it ends or `stopAfter` events arrived. */
async function readEvents(
  baseUrl: string,
  token: string,
  id: string,
  options: { lastEventId?: string; stopAfter?: number } = {},
): Promise<SseEvent[]> {
  const controller = new AbortController();
  const response = await fetch(`${baseUrl}/v1/rollouts/${id}/events`, {
    headers: {
      Authorization: `Bearer ${token}`,
      ...(options.lastEventId ? { 'Last-Event-ID': options.lastEventId } : {}),
    },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events: SseEvent[] = [];
  let buffer = '';
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += Buffer.from(chunk).toString('utf8');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const fields = new Map(
          buffer
            .slice(0, end)
            .split('\n')
            .filter((line) => !line.startsWith(':'))
            .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)] as const),
        );
        buffer = buffer.slice(end + 2);
        if (!fields.has('event')) continue;
        events.push({
          id: fields.get('id')!,
          type: fields.get('event')!,
          data: JSON.parse(fields.get('data')!) as Record<string, unknown>,
        });
        if (options.stopAfter !== undefined && events.length >= options.stopAfter) {
          controller.abort();
          return events;
        }
      }
    }
  } catch (error) {
    if (!(error instanceof Error && error.name === 'AbortError')) throw error;
  }
  return events;
}

describe('rollouts survive killed processes', () => {
  let api: TestApi;
  let client: DroverClient;
  let hosts: FleetHost[];
  let prefix: string;

  const starts = async () => Promise.all(hosts.map(async (host) => (await probeStarts(host)).length));

  /** Waits until a task of the rollout's batch `index` is running on its host. */
  const waitForRunningTask = (rolloutId: string, index: number) =>
    waitUntil(
      async () => {
        const [row] = await query<{ count: string }>(
          api.database.url,
          `SELECT count(*) FROM tasks t JOIN rollout_batches b ON b.operation_id = t.operation_id
            WHERE b.rollout_id = $1 AND b.index = $2 AND t.state = 'running'`,
          [rolloutId, index],
        );
        return Number(row?.count) > 0;
      },
      `a task of batch ${index} runs`,
      30_000,
    );

  before(async () => {
    hosts = (await readFleetInventory()).hosts.slice(0, 6);
    assert.equal(hosts.length, 6, 'these tests need a fleet of at least 6 hosts');
    prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    client = await api.client();
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, durability: 'yes' } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
  });

  beforeEach(async () => {
    await Promise.all(hosts.map(resetProbe));
    // A slow stop keeps each restart in flight long enough to kill something in the middle of it.
    await Promise.all(hosts.map((host) => probeDropIn(host, 'slow-stop', ['ExecStopPost=/bin/sleep 1'])));
  });

  after(async () => {
    await Promise.all(hosts.map(resetProbe));
    await api.close();
  });

  it('SIGKILL of workers mid-rollout: another worker goes on and every host restarts exactly once', async () => {
    const env = { ...workerEnv(api.database.url, prefix), LOG_LEVEL: 'info' };
    const spawnWorker = async () => {
      const worker = startNodeProcess(WORKER, env);
      await worker.waitForLine((line) => line.includes('drover worker connected'));
      return worker;
    };
    const workers: RunningProcess[] = [await spawnWorker(), await spawnWorker()];
    const startsBefore = await starts();
    try {
      const created = await startRollout(client, {
        unit: UNIT,
        selector: 'durability=yes',
        batches: { size: 2 },
        healthGate: { minHealthyTimeMs: 200 },
      });
      // In each of the first three batches, once a task of it runs on a host, kill every worker (so
      // the one holding that task's job surely dies mid-restart) and start fresh ones.
      for (let batch = 0; batch < 3; batch += 1) {
        await waitForRollout(client, created.id, (rollout) => rollout.batches.length > batch, 60_000);
        await waitForRunningTask(created.id, batch);
        const victims = workers.splice(0);
        for (const victim of victims) assert.equal((await victim.stop('SIGKILL')).signal, 'SIGKILL');
        workers.push(await spawnWorker(), await spawnWorker());
      }
      const rollout = await waitForSettled(client, created.id, 120_000);
      assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
      const [retried] = await query<{ count: string }>(
        api.database.url,
        `SELECT count(*) FROM tasks t JOIN operations o ON o.id = t.operation_id
          WHERE o.rollout_id = $1 AND t.attempts >= 2`,
        [created.id],
      );
      assert.ok(Number(retried?.count) >= 1, 'a task was taken over from a killed worker (attempts >= 2)');
      assert.deepEqual(
        await starts(),
        startsBefore.map((count) => count + 1),
        'each host started exactly once, none skipped',
      );
    } finally {
      await Promise.all(workers.map((worker) => worker.stop('SIGTERM')));
    }
  });

  it('a Redis restart (all queued jobs lost) mid-rollout: the rollout still completes, each host once', async () => {
    let redis = await startRedisServer();
    const redisUrl = `redis://127.0.0.1:${redis.port}`;
    const ownPrefix = `${prefix}-redis`;
    const ownApi = await startTestApi({ QUEUE_PREFIX: ownPrefix, REDIS_URL: redisUrl });
    const worker = await startTestWorker({ ...workerEnv(ownApi.database.url, ownPrefix), REDIS_URL: redisUrl });
    try {
      const admin = await ownApi.client();
      await admin.POST('/v1/hosts/bulk-upsert', {
        body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, durability: 'yes' } })) },
      });
      const startsBefore = await starts();
      const created = await startRollout(admin, {
        unit: UNIT,
        selector: 'durability=yes',
        batches: { size: 2 },
        healthGate: { minHealthyTimeMs: 200 },
      });
      await waitForRollout(admin, created.id, (rollout) => rollout.batches.length >= 2, 60_000);
      await redis.kill();
      await sleep(1_000);
      redis = await startRedisServer({ port: redis.port });
      const rollout = await waitForSettled(admin, created.id, 120_000);
      assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
      assert.deepEqual(
        await starts(),
        startsBefore.map((count) => count + 1),
      );
    } finally {
      await worker.close();
      await ownApi.close();
      await redis.kill();
    }
  });

  it('SIGKILL of the API mid-rollout: the rollout goes on, and its event stream resumes with Last-Event-ID', async () => {
    const worker = await startTestWorker(workerEnv(api.database.url, prefix));
    const port = await freePort();
    const apiEnv = {
      ...workerEnv(api.database.url, prefix),
      PORT: String(port),
      HOST: '127.0.0.1',
      MIGRATE_ON_START: 'false',
      TOKEN_RATE_LIMIT_PER_MINUTE: '0',
      LOG_LEVEL: 'info',
    };
    const baseUrl = `http://127.0.0.1:${port}`;
    const token = await api.token();
    const startApi = async () => {
      const started = startNodeProcess(API, apiEnv);
      try {
        await started.waitForLine((line) => line.includes('listening'));
      } catch (error) {
        // An API left running would keep this file's process alive until its time limit.
        await started.stop('SIGKILL');
        throw error;
      }
      return started;
    };
    let child = await startApi();
    try {
      const remote = createDroverClient(baseUrl, token);
      const startsBefore = await starts();
      const created = await startRollout(remote, {
        unit: UNIT,
        selector: 'durability=yes',
        batches: { size: 1 },
        healthGate: { minHealthyTimeMs: 200 },
      });
      const first = await readEvents(baseUrl, token, created.id, { stopAfter: 4 });
      assert.equal(first[0]!.type, 'rollout.created');
      await child.stop('SIGKILL');
      await sleep(1_500);
      child = await startApi();
      const rest = await readEvents(baseUrl, token, created.id, { lastEventId: first[first.length - 1]!.id });
      const seen = [...first, ...rest];
      const all = await readEvents(baseUrl, token, created.id);
      assert.deepEqual(
        seen.map((event) => event.id),
        all.map((event) => event.id),
        'resuming lost and repeated nothing',
      );
      assert.equal(seen[seen.length - 1]!.type, 'rollout.finished');
      assert.equal(seen[seen.length - 1]!.data.status, 'succeeded');
      assert.deepEqual(
        seen.filter((event) => event.type === 'batch.started').map((event) => (event.data.hosts as string[])[0]),
        [...hosts.map((host) => host.name)].sort(),
      );
      assert.deepEqual(
        await starts(),
        startsBefore.map((count) => count + 1),
      );
    } finally {
      await child.stop('SIGTERM');
      await worker.close();
    }
  });
});

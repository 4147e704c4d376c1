import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { QueueName } from '@drover/protocol';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { testEnv } from '../support/env';
import { readFleetInventory } from '../support/fleet';
import { onlyTask, waitForOperation } from '../support/operations';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

describe('a task still running whose job failed for good', () => {
  let api: TestApi;
  let prefix: string;
  let queue: Queue;
  let worker: TestWorker | undefined;

  before(async () => {
    prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    queue = new Queue(QueueName.Lifecycle, { connection: { url: testEnv.redisUrl }, prefix });
  });

  after(async () => {
    await worker?.close();
    await queue.close();
    await api.close();
  });

  it('is queued again by the reconciler and finishes', async () => {
    const host = (await readFleetInventory()).hosts[0]!;
    await (await api.client()).POST('/v1/hosts/bulk-upsert', { body: { hosts: [host] } });
    const client = await api.client({ scopes: ['operate'] });
    // No drover worker yet: the task's job waits in the queue.
    const created = await client.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: host.name } },
      body: { verb: 'status', unit: 'drover-probe.service' },
    });
    assert.equal(created.response.status, 202);
    const id = created.data!.id;
    const taskId = onlyTask((await client.GET('/v1/operations/{id}', { params: { path: { id } } })).data!).id;

    // Its attempt started, then its job failed for good and the task's end could not be recorded
    // (the database away through every retry): the job sits in the failed set, the task running.
    const failing = new Worker(
      QueueName.Lifecycle,
      () => Promise.reject(new UnrecoverableError('the database is away')),
      { connection: { url: testEnv.redisUrl }, prefix },
    );
    const deadline = Date.now() + 15_000;
    while ((await queue.getJobState(`task-${taskId}`)) !== 'failed') {
      assert.ok(Date.now() < deadline, 'the job failed');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await failing.close();
    await query(
      api.database.url,
      `UPDATE tasks SET state = 'running', attempts = 1, started_at = now() WHERE id = $1`,
      [taskId],
    );

    worker = await startTestWorker(workerEnv(api.database.url, prefix));
    const task = onlyTask(await waitForOperation(client, id, 30_000));
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    assert.equal(task.attempts, 2, 'a new attempt ran it');
  });
});

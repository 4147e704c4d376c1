import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { waitForOperation } from '../support/operations';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

/**
 * A task's end claims its operation's next tasks in the same database call
 * (finish_task_and_claim_next), so every way a task ends must queue what that call claimed: a claim
 * dropped leaves the next task marked dispatched and never queued. The reconciler, which re-queues
 * such tasks, runs every 10 minutes here, so it cannot stand in for the end.
 */
describe("a task's end queues its operation's next task", () => {
  let api: TestApi;
  let worker: TestWorker | undefined;
  let queuePrefix: string;

  before(async () => {
    queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
  });

  after(async () => {
    await worker?.close();
    await api.close();
  });

  it('when the task ended because its host was removed from the inventory', async () => {
    const client = await api.client();
    // Documentation addresses: never contacted, since the hosts are gone before any task runs.
    const hosts = ['gone-1', 'gone-2'].map((name, index) => ({
      name,
      address: `192.0.2.${index + 1}`,
      labels: { gone: 'yes' },
    }));
    const imported = await client.POST('/v1/hosts/bulk-upsert', { body: { hosts } });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    const created = await client.POST('/v1/operations', {
      body: { verb: 'restart', unit: 'nginx.service', selector: 'gone=yes', concurrency: 1 },
    });
    assert.equal(created.response.status, 202, JSON.stringify(created.error));
    // Concurrency 1: only the first task is queued; the second waits for the first's end.
    await query(api.database.url, `DELETE FROM hosts WHERE name IN ('gone-1', 'gone-2')`);

    worker = await startTestWorker({ ...workerEnv(api.database.url, queuePrefix), RECONCILE_INTERVAL_MS: '600000' });
    const operation = await waitForOperation(client, created.data!.id, 20_000);
    assert.equal(operation.status, 'failed');
    assert.deepEqual(
      operation.tasks.map((task) => [task.hostName, task.state, task.reason]),
      hosts.map((host) => [host.name, 'failed', `host ${host.name} was removed from the inventory`]),
    );
  });
});

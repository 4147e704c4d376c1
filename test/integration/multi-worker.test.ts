import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { waitForOperation } from '../support/operations';
import { RunningProcess, startNodeProcess } from '../support/process';
import { onHost, probeDropIn, probeStarts, resetProbe } from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const WORKER = path.resolve(__dirname, '../../src/worker.js');
const UNIT = 'drover-probe.service';
/** While this file is missing on a host, drover-probe's stop waits (see the drop-in below). */
const GATE = '/run/drover-test-multi-worker-go';

/** Task ids a worker's log says it finished as succeeded (its one line per recorded task end). */
function succeededTasks(worker: RunningProcess): string[] {
  // The worker logs JSON lines; anything else on its output (a Node warning) is not a task's end.
  return worker
    .lines()
    .filter((line) => line.startsWith('{'))
    .flatMap((line) => {
      const entry = JSON.parse(line) as { taskId?: string; state?: string; verb?: string };
      return entry.taskId !== undefined && entry.state === 'succeeded' && entry.verb === 'restart'
        ? [entry.taskId]
        : [];
    });
}

describe('two worker processes on one Redis', () => {
  let api: TestApi;
  let client: DroverClient;
  let hosts: FleetHost[];
  let prefix: string;
  const workers: RunningProcess[] = [];

  before(async () => {
    hosts = (await readFleetInventory()).hosts.slice(0, 4);
    assert.equal(hosts.length, 4, 'this test needs a fleet of at least 4 hosts');
    prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    client = await api.client();
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, workers: 'two' } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    await Promise.all(hosts.map(resetProbe));
    // A restart cannot complete until the test opens the gate: held there, each worker (one job at
    // a time) keeps its task, so the other has to take the next one.
    await Promise.all(
      hosts.map(async (host) => {
        await onHost(host, `rm -f ${GATE}`);
        await probeDropIn(host, 'gate', [`ExecStopPost=/bin/sh -c "while [ ! -e ${GATE} ]; do sleep 0.1; done"`]);
      }),
    );
  });

  after(async () => {
    await Promise.allSettled(workers.map((worker) => worker.stop('SIGTERM')));
    await Promise.allSettled(hosts.map((host) => onHost(host, `rm -f ${GATE}`)));
    await Promise.allSettled(hosts.map(resetProbe));
    await api.close();
  });

  it('share an operation over four hosts: each host restarted exactly once, both workers did some', async () => {
    const env = { ...workerEnv(api.database.url, prefix), WORKER_CONCURRENCY: '1', LOG_LEVEL: 'info' };
    for (let index = 0; index < 2; index += 1) {
      const worker = startNodeProcess(WORKER, env);
      workers.push(worker);
      await worker.waitForLine((line) => line.includes('drover worker connected'));
    }
    const startsBefore = await Promise.all(hosts.map(async (host) => (await probeStarts(host)).length));
    const created = await client.POST('/v1/operations', {
      body: { verb: 'restart', unit: UNIT, selector: 'workers=two' },
    });
    assert.equal(created.response.status, 202, JSON.stringify(created.error));
    const id = created.data!.id;

    // Two tasks running at once, with one job per worker at a time: each worker holds one.
    await waitUntil(
      async () => {
        const [row] = await query<{ count: string }>(
          api.database.url,
          `SELECT count(*) FROM tasks WHERE operation_id = $1 AND state = 'running'`,
          [id],
        );
        return Number(row?.count) === 2;
      },
      'two tasks of the operation run at once',
      60_000,
    );
    await Promise.all(hosts.map((host) => onHost(host, `touch ${GATE}`)));

    const operation = await waitForOperation(client, id, 90_000);
    assert.equal(operation.status, 'succeeded', JSON.stringify(operation.tasks.map((task) => task.reason)));
    assert.deepEqual(
      operation.tasks.map((task) => task.attempts),
      operation.tasks.map(() => 1),
      'no task needed a second attempt',
    );
    assert.deepEqual(
      await Promise.all(hosts.map(async (host) => (await probeStarts(host)).length)),
      startsBefore.map((count) => count + 1),
      'each host started exactly once, none skipped',
    );
    const [first, second] = workers.map(succeededTasks) as [string[], string[]];
    assert.ok(
      first.length >= 1 && second.length >= 1,
      `both workers finished tasks: ${first.length} and ${second.length}`,
    );
    assert.deepEqual(
      [...first, ...second].sort(),
      operation.tasks.map((task) => task.id).sort(),
      'every task was finished by exactly one worker, once',
    );
  });
});

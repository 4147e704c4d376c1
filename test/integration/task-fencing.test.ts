import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { onlyTask, waitForOperation } from '../support/operations';
import { startNodeProcess } from '../support/process';
import { onHost } from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { startTestWorker, workerEnv } from '../support/worker';

const WORKER = path.resolve(__dirname, '../../src/worker.js');
/** The advisory lock the test holds to hold up the first write of a state before (see the trigger). */
const GATE = 7_270_736_999;

describe('a worker paused (SIGSTOP) past its leases just before it restarts a unit', () => {
  let api: TestApi;
  let host: FleetInventory['hosts'][number];
  let env: Record<string, string>;

  const starts = async () => Number(await onHost(host, 'wc -l < /var/lib/drover-probe/starts'));

  before(async () => {
    const inventory = await readFleetInventory();
    host = inventory.hosts[inventory.hosts.length - 1]!;
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    // Leases that lapse a second after their worker stops renewing them.
    env = { ...workerEnv(api.database.url, prefix), JOB_LOCK_DURATION_MS: '1000' };
    await (await api.client()).POST('/v1/hosts/bulk-upsert', { body: { hosts: [host] } });
    await onHost(host, 'systemctl unmask drover-probe.service; systemctl start drover-probe.service');
    // The first write of a task's state before acting (the last step before "go") waits while the
    // test holds GATE; later ones pass. Statement-level, so it waits before locking the row: the
    // other worker is free to take the task over meanwhile.
    await query(
      api.database.url,
      `CREATE SEQUENCE test_gate_passes;
       CREATE FUNCTION test_gate_first_before() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF nextval('test_gate_passes') = 1 THEN PERFORM pg_advisory_xact_lock(${GATE}); END IF;
         RETURN NULL;
       END $$;
       CREATE TRIGGER test_gate_first_before BEFORE UPDATE OF "before" ON tasks
         FOR EACH STATEMENT EXECUTE FUNCTION test_gate_first_before();`,
    );
  });

  after(async () => {
    await api.close();
  });

  /** Holds up the next first write of a state before until `release`. */
  async function closeGate(): Promise<Client> {
    const gate = new Client({ connectionString: api.database.url });
    await gate.connect();
    await gate.query('ALTER SEQUENCE test_gate_passes RESTART');
    await gate.query('SELECT pg_advisory_lock($1)', [GATE]);
    return gate;
  }

  const release = (gate: Client) => gate.query('SELECT pg_advisory_unlock($1)', [GATE]);

  /** Until a worker waits at the gate: it has read the unit and is storing it, the host waiting for its "go". */
  const waitAtGate = () =>
    waitUntil(
      async () => {
        const [row] = await query<{ waiting: string }>(
          api.database.url,
          `SELECT count(*) AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`,
        );
        return Number(row!.waiting) > 0;
      },
      'the first worker reaches its last write before acting',
      20_000,
    );

  it('lets another worker take the task over; resumed, the paused one does not act: one start', async () => {
    const gate = await closeGate();
    const startsBefore = await starts();
    const paused = startNodeProcess(WORKER, { ...env, LOG_LEVEL: 'info' });
    let rescuer: Awaited<ReturnType<typeof startTestWorker>> | undefined;
    try {
      await paused.waitForLine((line) => line.includes('drover worker connected'));
      const client = await api.client({ scopes: ['operate'] });
      const created = await client.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: host.name } },
        // Long enough that the paused worker's session is still open when it resumes.
        body: { verb: 'restart', unit: 'drover-probe.service', timeoutMs: 60_000 },
      });
      assert.equal(created.response.status, 202);
      const id = created.data!.id;

      await waitAtGate();
      paused.child.kill('SIGSTOP');

      rescuer = await startTestWorker(env);
      const task = onlyTask(await waitForOperation(client, id, 60_000));
      assert.equal(task.state, 'succeeded', task.reason ?? '');
      assert.equal(task.attempts, 2, 'the second worker took the task over');
      assert.equal(await starts(), startsBefore + 1);

      // Resume the first worker where it stood, let its write through, and let it end its job.
      await release(gate);
      paused.child.kill('SIGCONT');
      const exited = await paused.stop('SIGTERM', 60_000);
      // (Nest re-raises the SIGTERM once it has shut down; the stop helper's fallback is SIGKILL.)
      assert.notEqual(exited.signal, 'SIGKILL', 'the resumed worker ended its job and shut down');
      assert.equal(await starts(), startsBefore + 1, 'the unit was started exactly once');
      assert.ok(
        paused.lines().some((line) => line.includes('lost the task to a newer attempt')),
        'the resumed worker saw it had lost the task',
      );
      const final = onlyTask((await client.GET('/v1/operations/{id}', { params: { path: { id } } })).data!);
      assert.deepEqual([final.state, final.attempts, final.reason], [task.state, task.attempts, task.reason]);
    } finally {
      paused.child.kill('SIGCONT');
      await paused.stop('SIGKILL');
      await rescuer?.close();
      await gate.end();
    }
  });

  it('makes the next worker wait out a paused one that was cleared to act, and see its restart: one start', async () => {
    const gate = await closeGate();
    const startsBefore = await starts();
    const paused = startNodeProcess(WORKER, { ...env, LOG_LEVEL: 'info' });
    let rescuer: ReturnType<typeof startNodeProcess> | undefined;
    try {
      await paused.waitForLine((line) => line.includes('drover worker connected'));
      const client = await api.client({ scopes: ['operate'] });
      const created = await client.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: host.name } },
        body: { verb: 'restart', unit: 'drover-probe.service', timeoutMs: 30_000 },
      });
      assert.equal(created.response.status, 202);
      const id = created.data!.id;

      // Paused just after its write went through: it owns the task and is cleared to act, but
      // its "go" has not been sent.
      await waitAtGate();
      paused.child.kill('SIGSTOP');
      await release(gate);

      rescuer = startNodeProcess(WORKER, { ...env, LOG_LEVEL: 'info' });
      await rescuer.waitForLine((line) => line.includes('waiting out its window'), 30_000);
      assert.equal(await starts(), startsBefore, 'the second worker did not act while the first may');
      paused.child.kill('SIGCONT');

      const task = onlyTask(await waitForOperation(client, id, 60_000));
      assert.equal(task.state, 'succeeded', task.reason ?? '');
      assert.equal(task.attempts, 2);
      assert.match(task.reason ?? '', /completed by an earlier attempt/);
      await paused.stop('SIGTERM', 60_000);
      assert.equal(await starts(), startsBefore + 1, 'the unit was started exactly once');
    } finally {
      paused.child.kill('SIGCONT');
      await paused.stop('SIGKILL');
      await rescuer?.stop('SIGKILL');
      await gate.end();
    }
  });
});

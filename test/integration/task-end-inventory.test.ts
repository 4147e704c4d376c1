import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Client } from 'pg';
import { parseConfig } from '../../src/config/config.schema';
import { PrismaService } from '../../src/infra/prisma/prisma.service';
import { OperationsRepository, TaskOutcome, TaskWithContext } from '../../src/operations/operations.repository';
import type { AuditActor } from '../../src/audit/audit-actor';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { testEnv } from '../support/env';
import { waitUntil } from '../support/wait';
import { buildOperation } from '../factories/operation.factory';

/** The advisory lock the test holds to stop a task's end right after it wrote the task's row. */
const GATE = 7_270_737_001;
const UNIT = 'nginx.service';
const ACTOR: AuditActor = { actorTokenId: null, actorName: 'task-end-test', requestId: null, sourceAddress: null };

function snapshot(mainPid: number, loadState = 'loaded') {
  return {
    loadState,
    activeState: 'active',
    subState: 'running',
    unitFileState: 'enabled',
    mainPid,
    description: 'A web server',
  };
}

function outcome(after: ReturnType<typeof snapshot> | null): TaskOutcome {
  return { state: 'succeeded', reason: 'restarted', exitCode: 0, before: snapshot(100), after, output: null };
}

/**
 * A task's end (OperationsRepository.finish, the database function finish_task) records the host's
 * contact and the unit's state in the same call, only for the attempt that ended the task, claims
 * its operation's next tasks (finish_task_and_claim_next), and takes its locks in an order that
 * cannot deadlock with a host's deletion.
 */
describe("a task's end keeps the inventory current", () => {
  let database: TestDatabase;
  let prisma: PrismaService;
  let operations: OperationsRepository;
  let hostId: string;

  before(async () => {
    database = await createTestDatabase();
    prisma = new PrismaService(parseConfig({ DATABASE_URL: database.url, REDIS_URL: testEnv.redisUrl }));
    operations = new OperationsRepository(prisma);
  });

  after(async () => {
    await prisma.onModuleDestroy(); // its pool too: the drop below would break its connections, each a warning
    await database.drop();
  });

  beforeEach(async () => {
    const [host] = await query<{ id: string }>(
      database.url,
      `INSERT INTO hosts (id, name, address) VALUES (gen_random_uuid(), 'web-' || md5(random()::text), '10.0.0.1')
       RETURNING id::text`,
    );
    hostId = host!.id;
  });

  /** A new operation restarting the unit on these hosts, one at a time: its tasks' ids by position. */
  async function createOperation(hosts: { id: string; name: string }[]): Promise<{ id: string; taskIds: string[] }> {
    const operation = await operations.create(buildOperation(ACTOR.actorName, { unit: UNIT }), hosts, {}, ACTOR);
    const tasks = await query<{ id: string }>(
      database.url,
      'SELECT id::text FROM tasks WHERE operation_id = $1::uuid ORDER BY position',
      [operation.id],
    );
    return { id: operation.id, taskIds: tasks.map((task) => task.id) };
  }

  /** The task, started: its first attempt holds it. */
  async function startedAttempt(taskId: string): Promise<TaskWithContext> {
    const found = await operations.findForRun(taskId);
    const started = await operations.startAttempt(found!);
    return { ...found!, attempts: started!.attempt };
  }

  /** A new operation of one task on the host, started. */
  async function startedTask(): Promise<TaskWithContext> {
    const [host] = await query<{ name: string }>(database.url, 'SELECT name FROM hosts WHERE id = $1::uuid', [hostId]);
    const { taskIds } = await createOperation([{ id: hostId, name: host!.name }]);
    return startedAttempt(taskIds[0]!);
  }

  const hostRow = async () =>
    (
      await query<{ status: string; last_seen_at: Date | null }>(
        database.url,
        'SELECT status::text, last_seen_at FROM hosts WHERE id = $1::uuid',
        [hostId],
      )
    )[0]!;
  const unitRow = async () =>
    (
      await query<{ load_state: string; active_state: string; main_pid: number | null; description: string | null }>(
        database.url,
        'SELECT load_state, active_state, main_pid, description FROM units WHERE host_id = $1::uuid AND name = $2',
        [hostId, UNIT],
      )
    )[0];

  it("records the host as reachable and the unit as the task left it, creating the unit's row", async () => {
    const task = await startedTask();
    assert.equal(await unitRow(), undefined);
    assert.notEqual(await operations.finish(task, outcome(snapshot(4242)), ACTOR, true), null);
    const host = await hostRow();
    assert.equal(host.status, 'reachable');
    assert.ok(host.last_seen_at instanceof Date);
    assert.deepEqual(await unitRow(), {
      load_state: 'loaded',
      active_state: 'active',
      main_pid: 4242,
      description: 'A web server',
    });

    const next = await startedTask();
    assert.notEqual(await operations.finish(next, outcome(snapshot(4343)), ACTOR, true), null);
    assert.equal((await unitRow())?.main_pid, 4343, 'the existing row is updated');
  });

  it('records nothing for an attempt that a newer one took over', async () => {
    const task = await startedTask();
    await operations.startAttempt(task);
    assert.equal(await operations.finish(task, outcome(snapshot(777)), ACTOR, true), null);
    assert.equal((await hostRow()).status, 'unknown');
    assert.equal(await unitRow(), undefined);
  });

  it("claims the operation's next task as it ends, and says when none it dispatched is left", async () => {
    const hosts = await query<{ id: string; name: string }>(
      database.url,
      `INSERT INTO hosts (id, name, address)
       SELECT gen_random_uuid(), 'web-' || md5(random()::text), '10.0.0.' || n FROM generate_series(2, 3) n
       RETURNING id::text, name`,
    );
    const operation = await createOperation(hosts);
    const [first, second] = operation.taskIds;
    assert.deepEqual(await operations.claimDispatchable(operation.id), {
      claimed: [first],
      idle: false,
      rolloutId: null,
    });
    // Concurrency 1: the first task's end is what frees the second's place.
    const afterFirst = await operations.finish(await startedAttempt(first!), outcome(snapshot(1)), ACTOR, true);
    assert.deepEqual(afterFirst, { claimed: [second], idle: false, rolloutId: null });
    const afterLast = await operations.finish(await startedAttempt(second!), outcome(snapshot(2)), ACTOR, true);
    assert.deepEqual(afterLast, { claimed: [], idle: true, rolloutId: null });
    const [row] = await query<{ status: string }>(
      database.url,
      'SELECT status::text FROM operations WHERE id = $1::uuid',
      [operation.id],
    );
    assert.equal(row?.status, 'succeeded');
  });

  it('marks the host unreachable without moving its last contact, and stores no state it was not given', async () => {
    const first = await startedTask();
    await operations.finish(first, outcome(snapshot(1)), ACTOR, true);
    const seen = (await hostRow()).last_seen_at;
    const task = await startedTask();
    assert.notEqual(await operations.finish(task, outcome(null), ACTOR, false), null);
    const host = await hostRow();
    assert.equal(host.status, 'unreachable');
    assert.deepEqual(host.last_seen_at, seen);
    assert.equal((await unitRow())?.main_pid, 1, 'no after state: the unit row stays');
  });

  it("cuts a reported state to its column's width instead of failing the task's end", async () => {
    const task = await startedTask();
    assert.notEqual(await operations.finish(task, outcome(snapshot(5, 'x'.repeat(5_000))), ACTOR, null), null);
    assert.equal((await unitRow())?.load_state, 'x'.repeat(32));
    assert.equal((await hostRow()).status, 'unknown', 'contact null: nothing told about the host');
  });

  it('reads a task with its operation and host in one statement, as Prisma reads them', async () => {
    const task = await startedTask();
    assert.equal(await operations.clearToAct(task.id, task.attempts, snapshot(31)), true);
    const read = await operations.findForRun(task.id);
    assert.ok(read?.startedAt instanceof Date, 'timestamps are Dates');
    assert.ok(read.host, 'the task has its host');
    assert.deepEqual(read.before, snapshot(31), 'jsonb is parsed');
    // Prisma's include of the same host fields (TaskWithContext's host type fixes which).
    const hostFields = Object.fromEntries(Object.keys(read.host).map((field) => [field, true]));
    const viaPrisma = () =>
      prisma.task.findUnique({ where: { id: task.id }, include: { operation: true, host: { select: hostFields } } });
    assert.deepEqual(read, await viaPrisma());

    await query(database.url, 'DELETE FROM hosts WHERE id = $1::uuid', [hostId]);
    const orphan = await operations.findForRun(task.id);
    assert.equal(orphan?.host, null, 'a deleted host leaves the task without one');
    assert.deepEqual(orphan, await viaPrisma());
    assert.equal(await operations.findForRun('00000000-0000-4000-8000-000000000000'), null);
  });

  it('does not deadlock with the deletion of its host', async () => {
    const task = await startedTask();
    await query(
      database.url,
      `CREATE SEQUENCE IF NOT EXISTS test_gate_passes;
       ALTER SEQUENCE test_gate_passes RESTART;
       CREATE OR REPLACE FUNCTION test_gate_task_end() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF nextval('test_gate_passes') = 1 THEN PERFORM pg_advisory_xact_lock(${GATE}); END IF;
         RETURN NULL;
       END $$;
       CREATE TRIGGER test_gate_task_end AFTER UPDATE OF state ON tasks
         FOR EACH ROW WHEN (NEW.state = 'succeeded') EXECUTE FUNCTION test_gate_task_end();`,
    );
    const gate = new Client({ connectionString: database.url });
    const deleter = new Client({ connectionString: database.url });
    await Promise.all([gate.connect(), deleter.connect()]);
    try {
      await gate.query('SELECT pg_advisory_lock($1)', [GATE]);
      // The end stops right after writing the task's row (the trigger waits for the gate)...
      const ended = operations.finish(task, outcome(snapshot(9)), ACTOR, true);
      await waitUntil(async () => (await waitingOn(gate, 'advisory')) > 0, 'the task end waits at the gate');
      // ... and the host is deleted meanwhile, which sets the task's host to null.
      const deleted = deleter.query('DELETE FROM hosts WHERE id = $1::uuid', [hostId]);
      await waitUntil(
        async () => (await waitingOn(gate, 'tuple|transactionid')) > 0,
        'the deletion waits for a row the task end holds',
      );
      await gate.query('SELECT pg_advisory_unlock($1)', [GATE]);
      const [end, deletion] = await Promise.allSettled([ended, deleted]);
      assert.ok(end.status === 'fulfilled', end.status === 'rejected' ? String(end.reason) : '');
      assert.notEqual(end.value, null, 'the task ended');
      assert.equal(deletion.status, 'fulfilled', deletion.status === 'rejected' ? String(deletion.reason) : '');
      const [row] = await query<{ state: string; host_id: string | null }>(
        database.url,
        'SELECT state::text, host_id::text FROM tasks WHERE id = $1::uuid',
        [task.id],
      );
      assert.deepEqual(row, { state: 'succeeded', host_id: null });
    } finally {
      await query(database.url, 'DROP TRIGGER IF EXISTS test_gate_task_end ON tasks');
      await Promise.all([gate.end(), deleter.end()]);
    }
  });
});

/** How many sessions of the test database wait on a lock of these kinds (pg_stat_activity.wait_event). */
async function waitingOn(client: Client, events: string): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity
     WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event ~ $1`,
    [`^(${events})$`],
  );
  return Number(rows[0]?.n);
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { AuditRepository } from '../../src/audit/audit.repository';
import { AuditService } from '../../src/audit/audit.service';
import { MetricsService } from '../../src/infra/metrics/metrics.service';
import { PrismaService } from '../../src/infra/prisma/prisma.service';
import { OperationsRepository, TaskOutcome, TaskWithContext } from '../../src/operations/operations.repository';
import type { AuditActor } from '../../src/audit/audit-actor';
import { countingPrisma, type CountingPrisma } from '../support/counting-prisma';
import { createTestDatabase, insertHosts, query, TestDatabase } from '../support/database';
import { waitUntil } from '../support/wait';
import { buildOperation } from '../factories/operation.factory';

const UNIT = 'nginx.service';
const ACTOR: AuditActor = { actorTokenId: null, actorName: 'batch-test', requestId: null, sourceAddress: null };
const HOSTS = 20;

function outcome(mainPid: number): TaskOutcome {
  const state = { loadState: 'loaded', activeState: 'active', subState: 'running', mainPid };
  return { state: 'succeeded', reason: 'restarted', exitCode: 0, before: state, after: state, output: null };
}

/**
 * A worker's tasks that reach the same step in the same turn of its event loop share one statement
 * for it (OperationsRepository's batchers: reads, starts, clearances to act, ends). Each call still
 * gets its own answer, a stale attempt or a bad input stays its own, and the ends keep the audit
 * chain whole.
 */
describe('task reads and writes made together go in one statement', () => {
  let database: TestDatabase;
  let prisma: PrismaService;
  let operations: OperationsRepository;
  let counted: CountingPrisma['counted'];

  before(async () => {
    database = await createTestDatabase();
    ({ prisma, counted } = countingPrisma(database.url));
    operations = new OperationsRepository(prisma);
  });

  after(async () => {
    await prisma.onModuleDestroy(); // its pool too: the drop below would break its connections, each a warning
    await database.drop();
  });

  /** `count` new hosts. */
  const newHosts = (count: number) => insertHosts(database.url, count, 'web-');

  /**
   * A new operation restarting the unit on each of these hosts (or the unit an entry names), all at
   * once, claimed: its tasks' ids.
   */
  async function dispatchedOperation(
    hosts: { id: string; name: string; unit?: string }[],
  ): Promise<{ id: string; taskIds: string[] }> {
    const operation = await prisma.$transaction((tx) =>
      operations.createIn(
        tx,
        buildOperation(ACTOR.actorName, { unit: UNIT, concurrency: hosts.length }),
        hosts,
        {},
        ACTOR,
      ),
    );
    const { claimed } = await operations.claimDispatchable(operation.id);
    assert.equal(claimed.length, hosts.length);
    return { id: operation.id, taskIds: claimed };
  }

  const taskTimes = (operationId: string) =>
    query<{ started: string; cleared: string; finished: string }>(
      database.url,
      `SELECT count(DISTINCT started_at)::text AS started, count(DISTINCT command_sent_at)::text AS cleared,
         count(DISTINCT finished_at)::text AS finished
       FROM tasks WHERE operation_id = $1::uuid`,
      [operationId],
    );

  it('reads, starts, clears and ends 20 tasks in one statement each, each with its own answer', async () => {
    const operation = await dispatchedOperation(await newHosts(HOSTS));

    const reads = await counted(() => Promise.all(operation.taskIds.map((id) => operations.findForRun(id))));
    assert.equal(reads.statements, 1);
    assert.deepEqual(
      reads.result.map((task) => task?.id),
      operation.taskIds,
    );
    const tasks = reads.result as TaskWithContext[];

    const starts = await counted(() => Promise.all(tasks.map((task) => operations.startUnlessHeld(task))));
    assert.equal(starts.statements, 1);
    assert.deepEqual(
      starts.result.map(({ started, hold }) => [started?.attempt, hold]),
      tasks.map(() => [1, null]),
    );
    const [running] = await query<{ status: string }>(
      database.url,
      'SELECT status::text FROM operations WHERE id = $1::uuid',
      [operation.id],
    );
    assert.equal(running?.status, 'running', 'the operation of the tasks started is marked running');
    const attempts = tasks.map((task) => ({ ...task, attempts: 1 }));

    const clearances = await counted(() =>
      Promise.all(attempts.map((task, index) => operations.clearToAct(task.id, task.attempts, outcome(index).before))),
    );
    assert.equal(clearances.statements, 1);
    assert.deepEqual(
      clearances.result,
      attempts.map(() => true),
    );

    const ends = await counted(() =>
      Promise.all(attempts.map((task, index) => operations.finish(task, outcome(1000 + index), ACTOR, true))),
    );
    assert.equal(ends.statements, 1);
    // Ended in turn within the call: only the last end finds nothing of the operation left running.
    assert.deepEqual(
      ends.result.map((claim) => claim && [claim.claimed, claim.idle]),
      attempts.map((_, index) => [[], index === HOSTS - 1]),
    );
    // One statement, one transaction: now() is the same for every row it wrote.
    assert.deepEqual(await taskTimes(operation.id), [{ started: '1', cleared: '1', finished: '1' }]);
    const [summary] = await query<{ status: string; events: string; units: string }>(
      database.url,
      `SELECT o.status::text,
         (SELECT count(*) FROM audit_events a WHERE a.operation_id = o.id AND a.task_id IS NOT NULL)::text AS events,
         (SELECT count(*) FROM units u JOIN tasks t ON t.host_id = u.host_id AND t.unit = u.name
          WHERE t.operation_id = o.id AND u.main_pid >= 1000)::text AS units
       FROM operations o WHERE o.id = $1::uuid`,
      [operation.id],
    );
    assert.deepEqual(summary, { status: 'succeeded', events: String(HOSTS), units: String(HOSTS) });
    const verification = await new AuditService(new AuditRepository(prisma), new MetricsService()).verify();
    assert.equal(verification.ok, true, JSON.stringify(verification.firstBroken));
  });

  it('leaves a finished task and a superseded attempt out of a batch, and ends the rest', async () => {
    const operation = await dispatchedOperation(await newHosts(4));
    const tasks = (await Promise.all(operation.taskIds.map((id) => operations.findForRun(id)))) as TaskWithContext[];
    const started = await Promise.all(tasks.map((task) => operations.startUnlessHeld(task)));
    const attempts = tasks.map((task, index) => ({ ...task, attempts: started[index]!.started!.attempt }));
    // The first task ends; the second is taken over by a newer attempt (a redelivered job).
    assert.notEqual(await operations.finish(attempts[0]!, outcome(1), ACTOR, true), null);
    assert.equal((await operations.startAttempt(attempts[1]!))?.attempt, 2);

    const restarted = await counted(() => Promise.all(attempts.map((task) => operations.startUnlessHeld(task))));
    assert.equal(restarted.statements, 1);
    assert.deepEqual(
      restarted.result.map(({ started: again }) => again?.attempt ?? null),
      [null, 3, 2, 2],
      'an ended task is not started again; the others are taken over once more',
    );
    const ends = await counted(() =>
      Promise.all(attempts.map((task, index) => operations.finish(task, outcome(10 + index), ACTOR, true))),
    );
    assert.equal(ends.statements, 1);
    assert.deepEqual(
      ends.result.map((claim) => claim !== null),
      [false, false, false, false],
      'every attempt in hand was superseded by the starts above',
    );
    const current = attempts.map((task, index) => ({
      ...task,
      attempts: restarted.result[index]?.started?.attempt ?? 0,
    }));
    const last = await Promise.all(current.slice(1).map((task) => operations.finish(task, outcome(20), ACTOR, true)));
    assert.deepEqual(
      last.map((claim) => claim?.idle),
      [false, false, true],
    );
  });

  it('puts at most one end per host in a call, and makes a failed batch call by call', async () => {
    const [host] = await newHosts(1);
    const units = ['a.service', 'b.service'];
    const operation = await dispatchedOperation(units.map((unit) => ({ ...host!, unit })));
    const tasks = (await Promise.all(operation.taskIds.map((id) => operations.findForRun(id)))) as TaskWithContext[];
    assert.deepEqual(
      tasks.map((task) => [task.hostId, task.unit]),
      units.map((unit) => [host!.id, unit]),
    );
    const started = await Promise.all(tasks.map((task) => operations.startUnlessHeld(task)));
    const attempts = tasks.map((task, index) => ({ ...task, attempts: started[index]!.started!.attempt }));
    const ends = await counted(() =>
      Promise.all(attempts.map((task, index) => operations.finish(task, outcome(index), ACTOR, true))),
    );
    assert.equal(ends.statements, 2, 'one call for each end of the host');
    assert.deepEqual(
      ends.result.map((claim) => claim?.idle),
      [false, true],
    );

    // A read of a malformed id fails the batch's statement: the reads are made again one by one,
    // and only the malformed one fails.
    const reads = await counted(() =>
      Promise.allSettled([operations.findForRun(tasks[0]!.id), operations.findForRun('not-a-uuid')]),
    );
    assert.equal(reads.statements, 3, 'the batch, then each read alone');
    assert.equal(reads.result[0].status === 'fulfilled' && reads.result[0].value?.id, tasks[0]?.id);
    assert.equal(reads.result[1].status, 'rejected');
  });
  /** The tasks of an operation over `count` new hosts, each started (attempt 1), in position order. */
  async function startedTasks(count: number, concurrency = count): Promise<{ id: string; tasks: TaskWithContext[] }> {
    const hosts = await newHosts(count);
    const operation = await operations.create(buildOperation(ACTOR.actorName, { concurrency }), hosts, {}, ACTOR);
    const { claimed } = await operations.claimDispatchable(operation.id);
    const tasks = (await Promise.all(claimed.map((id) => operations.findForRun(id)))) as TaskWithContext[];
    const started = await Promise.all(tasks.map((task) => operations.startUnlessHeld(task)));
    return {
      id: operation.id,
      tasks: tasks.map((task, index) => ({ ...task, attempts: started[index]!.started!.attempt })),
    };
  }

  it('clears in one statement the attempts that hold their task, and refuses the others', async () => {
    const { tasks } = await startedTasks(4);
    const [current, stale, agentsOwn, othersHost] = tasks as [
      TaskWithContext,
      TaskWithContext,
      TaskWithContext,
      TaskWithContext,
    ];
    await query(database.url, 'UPDATE tasks SET offered_at = now() WHERE id = ANY($1::uuid[])', [
      [agentsOwn.id, othersHost.id],
    ]);
    // A newer attempt took `stale` over: its first attempt's writes must change nothing.
    assert.equal((await operations.startAttempt(stale))?.attempt, stale.attempts + 1);
    await operations.markWaiting(stale, 'the start limit', null);
    const leaseMs = 60_000;
    const cleared = await counted(() =>
      Promise.all([
        operations.clearToAct(current.id, current.attempts, null),
        operations.clearToAct(stale.id, stale.attempts, null),
        operations.clearToAct(agentsOwn.id, agentsOwn.attempts, null, { hostId: agentsOwn.hostId!, leaseMs }),
        operations.clearToAct(othersHost.id, othersHost.attempts, null, { hostId: agentsOwn.hostId!, leaseMs }),
      ]),
    );
    assert.equal(cleared.statements, 1);
    assert.deepEqual(cleared.result, [true, false, true, false]);
    const rows = await query<{ id: string; cleared: boolean; leased: boolean; waiting: string | null }>(
      database.url,
      `SELECT id::text, command_sent_at IS NOT NULL AS cleared, lease_expires_at > now() + interval '50 seconds' AS leased,
         waiting_for AS waiting
       FROM tasks WHERE id = ANY($1::uuid[]) ORDER BY position`,
      [tasks.map((task) => task.id)],
    );
    assert.deepEqual(
      rows.map((row) => [row.cleared, row.leased ?? false, row.waiting]),
      [
        [true, false, null],
        [false, false, null],
        [true, true, null],
        [false, false, null],
      ],
      "only the agent's own offered task had its claim renewed; the stale attempt's wait was not recorded",
    );
  });

  it("offers agent hosts' tasks in one statement, except those whose unit another rollout holds", async () => {
    const hosts = await newHosts(HOSTS);
    const operation = await operations.create(
      buildOperation(ACTOR.actorName, { concurrency: HOSTS }),
      hosts,
      {},
      ACTOR,
    );
    const { claimed } = await operations.claimDispatchable(operation.id);
    const tasks = (await Promise.all(claimed.map((id) => operations.findForRun(id)))) as TaskWithContext[];
    const [gated, acted, ended] = tasks as [TaskWithContext, TaskWithContext, TaskWithContext];
    // Another rollout judges the unit on the first host in its health gate, and a third acts on it
    // on the second host (its task there runs); the third task ended.
    const acting = await operations.create(
      buildOperation('other', { concurrency: 1 }),
      [{ id: acted.hostId!, name: acted.hostName }],
      {},
      ACTOR,
    );
    await query(database.url, "UPDATE tasks SET state = 'running' WHERE operation_id = $1::uuid", [acting.id]);
    await query(
      database.url,
      `WITH holder AS (
         INSERT INTO rollouts (id, verb, unit, selector, strategy, total, max_failures, request_hash, requested_by)
         SELECT gen_random_uuid(), 'restart', $1, 'x=y', '{}', 1, 0, repeat('0', 64), 'other'
         FROM generate_series(1, 2) RETURNING id),
       numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM holder)
       INSERT INTO rollout_hosts (id, rollout_id, host_id, host_name, position, units, state, operation_id, gate_started_at)
       SELECT gen_random_uuid(), numbered.id, CASE n WHEN 1 THEN $2::uuid ELSE $3::uuid END, 'held', 0, ARRAY[$1],
         CASE n WHEN 1 THEN 'gating' ELSE 'acting' END::"RolloutHostState",
         CASE n WHEN 1 THEN NULL ELSE $4::uuid END, CASE n WHEN 1 THEN now() END
       FROM numbered`,
      [UNIT, gated.hostId, acted.hostId, acting.id],
    );
    await query(database.url, "UPDATE tasks SET state = 'cancelled', finished_at = now() WHERE id = $1::uuid", [
      ended.id,
    ]);

    const offers = await counted(() => Promise.all(tasks.map((task) => operations.offerUnlessHeld(task))));
    assert.equal(offers.statements, 1);
    assert.deepEqual(
      offers.result.slice(0, 3).map(({ offered, hold }) => [offered, hold?.hostState ?? null]),
      [
        [false, 'gating'],
        [false, 'acting'],
        [false, null],
      ],
      'a gated and an acted-on unit are held, an ended task is not offered',
    );
    assert.deepEqual(
      offers.result.slice(3),
      tasks.slice(3).map(() => ({ offered: true, hold: null })),
    );
    const again = await operations.offerUnlessHeld(tasks[3]!);
    assert.deepEqual(again, { offered: false, hold: null }, 'a task is offered once');
    const [counts] = await query<{ offered: number; distinct_times: number }>(
      database.url,
      `SELECT count(offered_at)::int AS offered, count(DISTINCT offered_at)::int AS distinct_times
       FROM tasks WHERE operation_id = $1::uuid`,
      [operation.id],
    );
    assert.deepEqual(counts, { offered: HOSTS - 3, distinct_times: 1 });
  });

  it("ends claim the operation's next tasks in turn, and store what each end was given", async () => {
    const { id, tasks } = await startedTasks(4, 2);
    assert.equal(tasks.length, 2, 'concurrency 2: two tasks dispatched');
    const [first, second] = tasks as [TaskWithContext, TaskWithContext];
    const ends = await counted(() =>
      Promise.all([
        operations.finish(first, { ...outcome(1), before: null, after: null, output: 'restarted\n' }, ACTOR, false),
        operations.finish(second, { ...outcome(2), state: 'failed', diagnostics: 'journal lines' }, ACTOR, null),
      ]),
    );
    assert.equal(ends.statements, 1);
    const positions = await query<{ id: string; position: number }>(
      database.url,
      'SELECT id::text, position FROM tasks WHERE operation_id = $1::uuid ORDER BY position',
      [id],
    );
    assert.deepEqual(
      ends.result.map((claim) => claim && [claim.claimed, claim.idle]),
      [
        [[positions[2]?.id], false],
        [[positions[3]?.id], false],
      ],
    );
    const stored = await query<{
      state: string;
      before: unknown;
      after: unknown;
      stateless: boolean;
      output: string | null;
      diagnostics: string | null;
      host: string;
    }>(
      database.url,
      `SELECT t.state::text, t.before, t.after, t.before IS NULL AND t.after IS NULL AS stateless, t.output,
         t.diagnostics, h.status::text AS host
       FROM tasks t JOIN hosts h ON h.id = t.host_id WHERE t.id = ANY($1::uuid[]) ORDER BY t.position`,
      [[first.id, second.id]],
    );
    assert.deepEqual(stored, [
      {
        state: 'succeeded',
        before: null,
        after: null,
        stateless: true, // SQL NULL, not a JSON null (node-postgres reads both as null)
        output: 'restarted\n',
        diagnostics: null,
        host: 'unreachable',
      },
      {
        state: 'failed',
        before: outcome(2).before,
        after: outcome(2).after,
        stateless: false,
        output: null,
        diagnostics: 'journal lines',
        host: 'unknown',
      },
    ]);
  });

  it('makes an end whose host row another writer holds after the rest, without a deadlock', async () => {
    const { tasks } = await startedTasks(2);
    const [first, second] = tasks as [TaskWithContext, TaskWithContext];
    const writer = new Client({ connectionString: database.url });
    await writer.connect();
    try {
      // Another writer of several host rows (as an agents' sighting batch), holding the second's...
      await writer.query('BEGIN');
      await writer.query('UPDATE hosts SET updated_at = now() WHERE id = $1::uuid', [second.hostId]);
      const ends = counted(() =>
        Promise.all([first, second].map((task, index) => operations.finish(task, outcome(index), ACTOR, true))),
      );
      // ... the first end does not wait for it ...
      await waitUntil(async () => (await endedTasks([first.id, second.id])) === 1, 'the first end is made');
      // ... nor holds its own host's row any more, which the writer takes next: a batch that took
      // its hosts' rows in turn, waiting, would hold the first's here and wait in a circle.
      await writer.query('UPDATE hosts SET updated_at = now() WHERE id = $1::uuid', [first.hostId]);
      await writer.query('COMMIT');
      const done = await ends;
      assert.ok(done.result.every((claim) => claim !== null));
      assert.equal(done.statements, 2, 'the batch, then the end left out');
    } finally {
      await writer.end();
    }
  });

  const endedTasks = async (ids: string[]) =>
    Number(
      (
        await query<{ n: string }>(
          database.url,
          "SELECT count(*)::text AS n FROM tasks WHERE id = ANY($1::uuid[]) AND state <> 'running'",
          [ids],
        )
      )[0]?.n,
    );
});

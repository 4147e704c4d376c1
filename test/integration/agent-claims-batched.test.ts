import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { AgentsRepository } from '../../src/agents/agents.repository';
import type { AuditActor } from '../../src/audit/audit-actor';
import { PrismaService } from '../../src/infra/prisma/prisma.service';
import { OperationsRepository } from '../../src/operations/operations.repository';
import { countingPrisma, type CountingPrisma } from '../support/counting-prisma';
import { createTestDatabase, insertHosts, query, TestDatabase } from '../support/database';
import { waitUntil } from '../support/wait';
import { buildOperation } from '../factories/operation.factory';

const ACTOR: AuditActor = { actorTokenId: null, actorName: 'claims-test', requestId: null, sourceAddress: null };
const HOSTS = 30;
const LEASE_MS = 20_000;

/**
 * The agents' polls that look for work in the same turn of the API's event loop (a rollout's batch
 * offers its tasks together, so their polls wake together) claim in one statement: each poll gets
 * its own host's task, once, and two API processes claiming for the same hosts at once neither
 * claim a task twice nor deadlock.
 */
describe('agent claims made together go in one statement', () => {
  let database: TestDatabase;
  let prisma: PrismaService;
  let agents: AgentsRepository;
  let operations: OperationsRepository;
  let counted: CountingPrisma['counted'];

  before(async () => {
    database = await createTestDatabase();
    ({ prisma, counted } = countingPrisma(database.url));
    agents = new AgentsRepository(prisma);
    operations = new OperationsRepository(prisma);
  });

  after(async () => {
    await prisma.onModuleDestroy(); // its pool too: the drop below would break its connections, each a warning
    await database.drop();
  });

  const newHosts = (count: number) => insertHosts(database.url, count, 'agent-', 'agent');

  /** An operation restarting nginx on these hosts (a host listed twice gets two tasks), every task offered: host id → its tasks' ids. */
  async function offeredOperation(hosts: { id: string; name: string }[]): Promise<Map<string, string[]>> {
    const operation = await prisma.$transaction((tx) =>
      operations.createIn(tx, buildOperation(ACTOR.actorName, { concurrency: hosts.length }), hosts, {}, ACTOR),
    );
    const tasks = await query<{ id: string; host_id: string }>(
      database.url,
      'SELECT id::text, host_id::text FROM tasks WHERE operation_id = $1::uuid ORDER BY position',
      [operation.id],
    );
    const byHost = new Map<string, string[]>();
    for (const task of tasks) {
      assert.deepEqual(await operations.offerUnlessHeld((await operations.findForRun(task.id))!), {
        offered: true,
        hold: null,
      });
      byHost.set(task.host_id, [...(byHost.get(task.host_id) ?? []), task.id]);
    }
    return byHost;
  }

  const claimAll = (repository: AgentsRepository, hostIds: string[]) =>
    Promise.all(hostIds.map((hostId) => repository.claimNext(hostId, LEASE_MS)));

  it("claims 30 hosts' tasks in one statement, each poll its own host's task, and none again", async () => {
    const hosts = await newHosts(HOSTS);
    const tasks = await offeredOperation(hosts);
    const hostIds = hosts.map((host) => host.id);

    const { result: claims, statements } = await counted(() => claimAll(agents, hostIds));
    assert.equal(statements, 1);
    claims.forEach((claim, index) => {
      assert.equal(claim.task?.id, tasks.get(hostIds[index]!)?.[0], `host ${index} claims its own task`);
      assert.equal(claim.task?.attempt, 1);
      assert.equal(claim.task?.verb, 'restart');
      assert.equal(claim.task?.unit, 'nginx.service');
      assert.equal(claim.nextLapseInMs, null, 'nothing of the host ran before the claim');
    });
    const running = await query<{ state: string; attempts: number; lease_ms: number }>(
      database.url,
      `SELECT state::text, attempts, (EXTRACT(EPOCH FROM lease_expires_at - now()) * 1000)::float8 AS lease_ms
       FROM tasks WHERE host_id = ANY($1::uuid[])`,
      [hostIds],
    );
    assert.equal(running.length, HOSTS);
    for (const task of running) {
      assert.equal(task.state, 'running');
      assert.equal(task.attempts, 1);
      assert.ok(task.lease_ms > 0 && task.lease_ms <= LEASE_MS, `a lease of ${task.lease_ms} ms`);
    }

    const again = await claimAll(agents, hostIds);
    for (const claim of again) {
      assert.equal(claim.task, null, 'a running task with a live claim is not claimed again');
      assert.ok(claim.nextLapseInMs !== null && claim.nextLapseInMs > 0 && claim.nextLapseInMs <= LEASE_MS);
    }
  });

  it('gives a host polled twice in one turn its task once, and its second task on the same unit only after the first', async () => {
    const [host] = await newHosts(1);
    const tasks = await offeredOperation([host!, host!]);
    const [first, second] = tasks.get(host!.id)!;

    const claims = await claimAll(agents, [host!.id, host!.id]);
    assert.deepEqual(
      claims.map((claim) => claim.task?.id ?? null).sort(),
      [first, null].sort(),
      "the two polls' statements run at once: the one that takes the host's lock second sees the first's claim",
    );
    await query(database.url, `UPDATE tasks SET state = 'succeeded', finished_at = now() WHERE id = $1::uuid`, [first]);
    const [next] = await claimAll(agents, [host!.id]);
    assert.equal(next?.task?.id, second);
  });

  /** A second API process (its own connections and batches), until `work` is done. */
  async function withOtherProcess<T>(
    work: (other: AgentsRepository, counted: CountingPrisma['counted']) => Promise<T>,
  ) {
    const other = countingPrisma(database.url);
    try {
      const otherAgents = new AgentsRepository(other.prisma);
      // Both connected before (a claim for a host without tasks), so that their statements overlap.
      const nobody = randomUUID();
      await Promise.all([agents.claimNext(nobody, LEASE_MS), otherAgents.claimNext(nobody, LEASE_MS)]);
      return await work(otherAgents, other.counted);
    } finally {
      await other.prisma.onModuleDestroy();
    }
  }

  /** Claims for `mine` here and for `theirs` in the other process at once; each must take one statement (a deadlock would show as a batch made again claim by claim). */
  async function claimTogether(
    other: AgentsRepository,
    otherCounted: CountingPrisma['counted'],
    mine: string[],
    theirs: string[],
  ): Promise<string[]> {
    const [here, there] = await Promise.all([
      counted(() => claimAll(agents, mine)),
      otherCounted(() => claimAll(other, theirs)),
    ]);
    assert.deepEqual([here.statements, there.statements], [1, 1], 'one statement in each process');
    return [...here.result, ...there.result].flatMap((claim) => (claim.task ? [claim.task.id] : []));
  }

  const attemptsOf = (hostIds: string[]) =>
    query<{ attempts: number }>(database.url, 'SELECT attempts FROM tasks WHERE host_id = ANY($1::uuid[])', [hostIds]);

  it('claims each task once when two API processes claim for overlapping hosts at once', async () => {
    await withOtherProcess(async (other, otherCounted) => {
      const hosts = await newHosts(HOSTS);
      const tasks = await offeredOperation(hosts);
      const hostIds = hosts.map((host) => host.id);

      const claimed = await claimTogether(other, otherCounted, hostIds.slice(0, 20), hostIds.slice(10));
      assert.deepEqual(claimed.sort(), [...tasks.values()].flat().sort(), 'every task claimed, none twice');
      assert.deepEqual(
        (await attemptsOf(hostIds)).map((task) => task.attempts),
        hostIds.map(() => 1),
      );
    });
  });

  it('does not deadlock when two processes claim the first tasks of two new operations on interleaved hosts', async () => {
    await withOtherProcess(async (other, otherCounted) => {
      // In host order, as claims take the hosts: this process claims hosts 0, 2, 4, ..., the other
      // 1, 3, 5, ...; operation one has hosts 0, 3, 4, 7, ..., operation two 1, 2, 5, 6, ...: each
      // statement claims for both operations, first for the one the other claims for second.
      const hosts = (await newHosts(16)).sort((a, b) => (a.id < b.id ? -1 : 1));
      const one = hosts.filter((_, index) => index % 4 === 0 || index % 4 === 3);
      const two = hosts.filter((_, index) => index % 4 === 1 || index % 4 === 2);
      const tasks = [...(await offeredOperation(one)).values(), ...(await offeredOperation(two)).values()].flat();
      const ids = hosts.map((host) => host.id);

      // Each statement claims its first host, then waits at its second (its claim lock, held here)
      // until both got there, so that each claimed for the operation the other claims for next:
      // claims that locked their operation's row at once then waited for each other.
      const gate = new Client({ connectionString: database.url });
      await gate.connect();
      try {
        await gate.query(
          'SELECT pg_advisory_lock(hashtextextended($1, 7)), pg_advisory_lock(hashtextextended($2, 7))',
          [ids[2], ids[3]],
        );
        const claiming = claimTogether(
          other,
          otherCounted,
          ids.filter((_, index) => index % 2 === 0),
          ids.filter((_, index) => index % 2 === 1),
        );
        await waitUntil(
          async () =>
            (
              await gate.query<{ waiting: number }>(
                `SELECT count(*)::int AS waiting FROM pg_locks
                 WHERE locktype = 'advisory' AND NOT granted
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
              )
            ).rows[0]?.waiting === 2,
          'both statements wait at their second host',
        );
        await gate.query('SELECT pg_advisory_unlock_all()');
        const claimed = await claiming;
        assert.deepEqual(claimed.sort(), tasks.sort(), 'every task claimed, none twice');
      } finally {
        await gate.end();
      }
      const statuses = await query<{ status: string }>(
        database.url,
        'SELECT DISTINCT o.status::text FROM operations o JOIN tasks t ON t.operation_id = o.id WHERE t.host_id = ANY($1::uuid[])',
        [ids],
      );
      assert.deepEqual(statuses, [{ status: 'running' }], 'both operations are running');
    });
  });
});

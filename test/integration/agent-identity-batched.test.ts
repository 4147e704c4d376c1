import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AgentsRepository } from '../../src/agents/agents.repository';
import { PrismaService } from '../../src/infra/prisma/prisma.service';
import { countingPrisma, type CountingPrisma } from '../support/counting-prisma';
import { createTestDatabase, query, TestDatabase } from '../support/database';

const AGENTS = 30;

/**
 * The agent guard reads the agent on every request (revocation stops an agent at its next request);
 * the reads of requests arriving in the same turn go to PostgreSQL as one statement, each request
 * still reading after it arrived.
 */
describe('agent identity reads made together go in one statement', () => {
  let database: TestDatabase;
  let prisma: PrismaService;
  let agents: AgentsRepository;
  let counted: CountingPrisma['counted'];
  const ids: string[] = [];

  before(async () => {
    database = await createTestDatabase();
    ({ prisma, counted } = countingPrisma(database.url));
    agents = new AgentsRepository(prisma);
    for (let i = 0; i < AGENTS; i += 1) ids.push(randomUUID());
    await query(
      database.url,
      `WITH new AS (SELECT * FROM unnest($1::text[], $2::uuid[]) AS n(name, agent_id)),
         hosts_made AS (
           INSERT INTO hosts (id, name, address, port, transport, labels, status, created_at, updated_at)
           SELECT gen_random_uuid(), name, name, 0, 'agent', '{}', 'reachable', now(), now() FROM new
           RETURNING id, name)
       INSERT INTO agents (id, host_id, public_key, facts, protocol_version, enrolled_at)
       SELECT new.agent_id, hosts_made.id, 'key-' || new.name, '{}'::jsonb, 1, now()
       FROM new JOIN hosts_made USING (name)`,
      [ids.map((_, i) => `agent-host-${String(i).padStart(2, '0')}`), ids],
    );
  });

  after(async () => {
    await prisma.onModuleDestroy(); // its pool too: the drop below would break its connections, each a warning
    await database.drop();
  });

  it('reads 30 agents and an unknown one in one statement, each request with its own answer', async () => {
    const unknown = randomUUID();
    const { result: read, statements } = await counted(() =>
      Promise.all([...ids, unknown].map((id) => agents.identity(id))),
    );
    assert.equal(statements, 1);
    assert.equal(read.at(-1), null);
    read.slice(0, AGENTS).forEach((agent, index) => {
      assert.equal(agent?.agentId, ids[index]);
      assert.equal(agent?.hostName, `agent-host-${String(index).padStart(2, '0')}`);
      assert.equal(agent?.revokedAt, null);
    });
  });

  it('sees a revocation committed before the request, in a batch with others', async () => {
    await query(database.url, 'UPDATE agents SET revoked_at = now() WHERE id = $1::uuid', [ids[3]]);
    const { result: read, statements } = await counted(() =>
      Promise.all(ids.slice(0, 5).map((id) => agents.identity(id))),
    );
    assert.equal(statements, 1);
    assert.ok(read[3]?.revokedAt instanceof Date);
    for (const index of [0, 1, 2, 4]) assert.equal(read[index]?.revokedAt, null);
  });

  it('reads the same agent twice in one turn with its own answer each time', async () => {
    const read = await Promise.all([agents.identity(ids[0]!), agents.identity(ids[0]!)]);
    assert.deepEqual(read[0], read[1]);
    assert.equal(read[0]?.agentId, ids[0]);
  });
});

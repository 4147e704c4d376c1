import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createServer } from 'node:net';
import { Client } from 'pg';
import type { DroverClient } from '../../src/client';
import { isDatabaseUnavailable } from '../../src/common/errors/database-unavailable';
import { parseConfig } from '../../src/config/config.schema';
import { Prisma } from '../../src/generated/prisma/client';
import { PrismaService } from '../../src/infra/prisma/prisma.service';
import { ADMISSION_LOCK_KEY } from '../../src/rollouts/rollouts.repository';
import { buildHosts } from '../factories/host.factory';
import { countRows, createTestDatabase } from '../support/database';
import { testEnv } from '../support/env';
import { startTestApi, TestApi } from '../support/api';
import { assertProblem } from '../support/problems';

describe('a database that cannot serve a request in time', () => {
  let api: TestApi;
  let admin: DroverClient;
  /** Another session of the database, holding what a rollout's admission needs. */
  let blocker: Client;

  const rolloutCount = async () => countRows(api.database.url, 'rollouts');

  before(async () => {
    api = await startTestApi();
    admin = await api.client();
    const hosts = buildHosts(3, () => ({ labels: { suite: 'busy' } }));
    const added = await admin.POST('/v1/hosts/bulk-upsert', { body: { hosts } });
    assert.equal(added.response.status, 200, JSON.stringify(added.error));
    blocker = new Client({ connectionString: api.database.url });
    await blocker.connect();
  });
  after(async () => {
    await blocker.end();
    await api.close();
  });

  it('answers 503 problem+json with Retry-After, commits nothing, and the same request succeeds later', async () => {
    const body = { unit: 'app.service', selector: 'suite=busy' };
    // The admission transaction waits for this lock beyond its time limit (Prisma's 5 s), as it
    // would behind a database too loaded to answer: the API must say "later", not "internal error".
    // The lock goes after 7 s: a query blocked in PostgreSQL is not cut off by the time limit, the
    // expired transaction is only noticed when its query returns.
    await blocker.query('SELECT pg_advisory_lock($1)', [ADMISSION_LOCK_KEY.toString()]);
    const released = delay(7_000).then(() =>
      blocker.query('SELECT pg_advisory_unlock($1)', [ADMISSION_LOCK_KEY.toString()]),
    );
    const refused = await admin.POST('/v1/rollouts', { body });
    await released;
    const problem = assertProblem(refused, 503, 'database_unavailable');
    assert.match(problem.detail, /could not serve this request in time/);
    assert.equal(refused.response.headers.get('retry-after'), '2');
    assert.equal(await rolloutCount(), 0, 'nothing of the refused request was committed');

    const accepted = await admin.POST('/v1/rollouts', { body });
    assert.equal(accepted.response.status, 201, JSON.stringify(accepted.error));
    assert.equal(await rolloutCount(), 1);
  });
});

describe('reads past Prisma (PrismaService.rows) when the database fails', () => {
  const prismaOn = (url: string) => new PrismaService(parseConfig({ DATABASE_URL: url, REDIS_URL: testEnv.redisUrl }));

  it('an unreachable server is "unavailable" there and through a raw statement of Prisma (P2010); a faulty statement is not', async () => {
    // A port nothing listens on: taken, then freed.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const unreachable = prismaOn(`postgresql://drover:drover@127.0.0.1:${port}/nothing`);
    try {
      const direct = await unreachable.rows(Prisma.sql`SELECT 1`).then(
        () => assert.fail('a read from a closed port succeeded'),
        (error: unknown) => error,
      );
      assert.equal(isDatabaseUnavailable(direct), true, `not seen as unavailable: ${String(direct)}`);
      const viaPrisma = await unreachable.$queryRaw`SELECT 1`.then(
        () => assert.fail('a read from a closed port succeeded'),
        (error: unknown) => error,
      );
      assert.equal(isDatabaseUnavailable(viaPrisma), true, `not seen as unavailable: ${String(viaPrisma)}`);
    } finally {
      await unreachable.onModuleDestroy();
    }

    const database = await createTestDatabase({ migrated: false });
    const prisma = prismaOn(database.url);
    try {
      const faulty = await prisma.rows(Prisma.sql`SELECT 1 / ${0}::int`).then(
        () => assert.fail('a division by zero succeeded'),
        (error: unknown) => error,
      );
      assert.equal(isDatabaseUnavailable(faulty), false, 'the statement is at fault, not the database');
    } finally {
      await prisma.onModuleDestroy();
      await database.drop();
    }
  });

  it('a connection the server ends mid-read is "unavailable", and the next read gets a new one', async () => {
    const database = await createTestDatabase({ migrated: false });
    const prisma = prismaOn(database.url);
    const admin = new Client({ connectionString: database.url });
    await admin.connect();
    try {
      const reading = prisma.rows(Prisma.sql`SELECT pg_sleep(30)`).then(
        () => assert.fail('the read outlived its connection'),
        (error: unknown) => error,
      );
      let terminated = 0;
      for (let tries = 0; terminated === 0 && tries < 100; tries += 1) {
        await delay(50);
        const ended = await admin.query<{ count: string }>(
          `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()`,
        );
        terminated = Number(ended.rows[0]!.count);
      }
      assert.equal(terminated, 1, 'the read was seen running and its connection ended');
      const error = await reading;
      assert.equal(isDatabaseUnavailable(error), true, `not seen as unavailable: ${String(error)}`);
      assert.deepEqual(await prisma.rows(Prisma.sql`SELECT 1 AS one`), [{ one: 1 }]);
    } finally {
      await admin.end();
      await prisma.onModuleDestroy();
      await database.drop();
    }
  });
});

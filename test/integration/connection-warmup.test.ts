import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RedisClient } from '../../src/infra/redis/redis-connection';
import { REDIS } from '../../src/infra/redis/redis.token';
import { startTestApi } from '../support/api';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

/** Longer than node-postgres' 10 s idle timeout, after which a pool closes the idle connections above its minimum. */
const QUIET_SPELL_MS = 11_000;

/**
 * The pooled connections to `database`: other sessions' (this query's own left out), but not the
 * one a process keeps for LISTEN, which stays open whatever the pool does.
 */
async function connectionsTo(database: TestDatabase): Promise<number> {
  const [row] = await query<{ n: number }>(
    database.url,
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND query NOT LIKE 'LISTEN %'`,
  );
  return row!.n;
}

describe('connections a process keeps ready (DATABASE_POOL_MIN)', () => {
  const databases: TestDatabase[] = [];
  const workers: TestWorker[] = [];

  async function idleWorker(poolMin: string): Promise<{ database: TestDatabase; worker: TestWorker }> {
    const database = await createTestDatabase();
    databases.push(database);
    const worker = await startTestWorker({
      ...workerEnv(database.url, `drover-test-${randomBytes(4).toString('hex')}`),
      DATABASE_POOL_MIN: poolMin,
      // Nothing periodic touches the database while the test watches the pool sit idle.
      RECONCILE_INTERVAL_MS: '3600000',
    });
    workers.push(worker);
    return { database, worker };
  }

  let kept: { database: TestDatabase; worker: TestWorker };
  let none: { database: TestDatabase; worker: TestWorker };

  before(async () => {
    [kept, none] = await Promise.all([idleWorker('3'), idleWorker('0')]);
  });

  after(async () => {
    await Promise.all(workers.map((worker) => worker.close()));
    await Promise.all(databases.map((database) => database.drop()));
  });

  it('an API starts with its Redis client connected, before any request needs it', async () => {
    const api = await startTestApi();
    try {
      assert.equal(
        api.app.get<RedisClient>(REDIS).status,
        'ready',
        'the shared Redis client waits for a first command',
      );
    } finally {
      await api.close();
    }
  });

  it('a worker starts with DATABASE_POOL_MIN connections open, and keeps them through a quiet spell', async () => {
    assert.ok((await connectionsTo(kept.database)) >= 3, 'the pool did not open its kept connections at start');
    await sleep(QUIET_SPELL_MS);
    assert.ok((await connectionsTo(kept.database)) >= 3, 'the pool closed its kept connections while idle');
    // The same quiet spell with none kept: every connection the start used has closed.
    assert.equal(await connectionsTo(none.database), 0);
  });
});

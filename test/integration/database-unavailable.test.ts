import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Client } from 'pg';
import type { DroverClient } from '../../src/client';
import { ADMISSION_LOCK_KEY } from '../../src/rollouts/rollouts.repository';
import { buildHosts } from '../factories/host.factory';
import { countRows } from '../support/database';
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

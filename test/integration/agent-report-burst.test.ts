import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import type { ListedUnit } from '@drover/protocol';
import type { DroverClient } from '../../src/client';
import { ProtocolAgent } from '../support/agent-client';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { waitUntil } from '../support/wait';

const AGENTS = 20;
const UNITS = 1_000;
/** Full listings each agent sends at once (as after a restart of every agent of a fleet, twice). */
const LISTINGS_PER_AGENT = 2;
/** A small pool, so that reports taking every connection would show within a test. */
const POOL_SIZE = '4';
/** Requests an operator makes while writes to the units table stall. */
const OPERATOR_REQUESTS = 3;
/** The longest the units table stays locked (the test fails if the operator is not answered by then). */
const MAX_STALL_MS = 8_000;

function fullListing(round: number): { full: true; units: ListedUnit[]; removed: string[] } {
  const units = Array.from({ length: UNITS }, (_, index) => ({
    name: `drover-burst-${index}.service`,
    loadState: 'loaded',
    activeState: 'active',
    subState: 'running',
    description: `burst unit ${index}, listing ${round}`,
    unitFileState: 'enabled',
  }));
  return { full: true, units, removed: [] };
}

/**
 * Many agents send their full unit listings at once (a fleet enrolling, agents restarting) to an API
 * whose database pool is small, while writes to the units table are slow (a lock held for a few
 * seconds stands for a database at load 20, where it was seen): the reports take turns
 * (AGENT_REPORT_CONCURRENCY, a quarter of the pool), so the stalled ones hold one connection, not
 * all, and an operator's requests are still answered. A report that waited too long for its turn is
 * answered 503 database_unavailable and stored when the agent sends it again.
 */
describe("agents' unit reports in a burst", () => {
  let api: TestApi;
  let admin: DroverClient;
  const agents: ProtocolAgent[] = [];

  before(async () => {
    api = await startTestApi({ DATABASE_POOL_SIZE: POOL_SIZE });
    admin = await api.client();
    for (let index = 0; index < AGENTS; index++) {
      const created = await admin.POST('/v1/agent-join-tokens', { body: {} });
      assert.equal(created.response.status, 201, JSON.stringify(created.error));
      const agent = new ProtocolAgent(api.baseUrl);
      const enrolled = await agent.enrol(created.data!.joinToken, `burst-${index}`);
      assert.equal(enrolled.status, 201, JSON.stringify(enrolled.body));
      assert.equal((await agent.login()).status, 201);
      agents.push(agent);
    }
  });

  after(async () => {
    await api?.close();
  });

  /** Sends the listing until it is stored, as the agent does; the statuses it got on the way. */
  async function reportUntilStored(agent: ProtocolAgent, round: number): Promise<number[]> {
    const statuses: number[] = [];
    for (;;) {
      const reply = await agent.call<{ code?: string }>('POST', 'units', fullListing(round));
      statuses.push(reply.status);
      if (reply.status === 204) return statuses;
      assert.equal(reply.status, 503, JSON.stringify(reply.body));
      assert.equal(reply.body.code, 'database_unavailable');
      await sleep(200);
    }
  }

  it("answers an operator's requests while the listings wait for slow writes", async () => {
    const locker = new Client({ connectionString: api.database.url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE units IN EXCLUSIVE MODE');
    let locked = true;
    const reports = Promise.all(
      agents.flatMap((agent) =>
        Array.from({ length: LISTINGS_PER_AGENT }, (_, round) => reportUntilStored(agent, round)),
      ),
    );
    let operatorAsks: Promise<void> = Promise.resolve();
    try {
      await waitUntil(async () => (await stalledOnUnits()) > 0, 'a report waits for the locked units table', 10_000);
      // The operator asks while writes to units stall: a token and its audit event, no unit involved.
      let answeredWhileStalled = 0;
      operatorAsks = (async () => {
        for (let index = 0; answeredWhileStalled < OPERATOR_REQUESTS; index++) {
          const created = await admin.POST('/v1/agent-join-tokens', { body: { hostName: `later-${index}` } });
          assert.equal(created.response.status, 201, JSON.stringify(created.error));
          if (!locked) return;
          answeredWhileStalled += 1;
        }
      })();
      await Promise.race([operatorAsks, sleep(MAX_STALL_MS, undefined, { ref: false })]);
      assert.equal(await stalledOnUnits(), 1, 'one report at a time holds a connection waiting for the units table');
      await locker.query('COMMIT');
      locked = false;
      await operatorAsks;
      assert.equal(
        answeredWhileStalled,
        OPERATOR_REQUESTS,
        'the operator was answered while the stored reports waited, not after them',
      );
    } finally {
      // Whatever failed, the writes go on and everything in flight ends before the API is closed.
      locked = false;
      await locker.end();
      await Promise.allSettled([operatorAsks, reports]);
    }

    const statuses = await reports;
    assert.equal(statuses.length, AGENTS * LISTINGS_PER_AGENT);
    const stored = await query<{ n: number }>(
      api.database.url,
      `SELECT count(*)::int AS n FROM units u JOIN hosts h ON h.id = u.host_id WHERE h.name LIKE 'burst-%' GROUP BY h.id`,
    );
    assert.deepEqual(
      stored.map((row) => row.n),
      Array.from({ length: AGENTS }, () => UNITS),
      'every host has its units',
    );
  });

  /** Backends of the API waiting for the lock on the units table. */
  async function stalledOnUnits(): Promise<number> {
    const [row] = await query<{ n: number }>(
      api.database.url,
      `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
       WHERE c.relname = 'units' AND NOT l.granted`,
    );
    return row!.n;
  }
});

import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { keyRotationSigningText, type TaskCommand } from '@drover/protocol';
import { createDroverClient, type DroverClient } from '../../src/client';
import { unitSnapshot } from '../factories/unit-snapshot.factory';
import type { AgentReply } from '../support/agent-client';
import {
  assertWokenByNewTask,
  createJoinToken,
  enrolledAgent,
  okOutcome,
  ProtocolAgent,
  testFacts,
} from '../support/agent-client';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { waitForOperation } from '../support/operations';
import { waitUntil } from '../support/wait';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

/** Short enough that "not delivered" and a lapsed claim show within a test, long enough to work. */
const AGENT_SETTINGS = {
  AGENT_OFFLINE_AFTER_MS: '4000',
  AGENT_TASK_LEASE_MS: '3000',
  AGENT_POLL_MAX_WAIT_MS: '20000',
};
const SETTLE_MS = 60_000;

/**
 * The agent protocol against the real API, worker, PostgreSQL and Redis, spoken request by request
 * (test/support/agent-client.ts) so every race, replay and stale report can be forced: enrolment,
 * credentials, what an agent credential may and may not reach, claims fenced by attempt, delivery
 * timeouts, revocation. The real agent on real hosts is in agent-fleet.test.ts.
 */
describe('agent protocol', () => {
  let api: TestApi;
  let worker: TestWorker;
  let admin: DroverClient;

  before(async () => {
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix, ...AGENT_SETTINGS });
    worker = await startTestWorker({ ...workerEnv(api.database.url, prefix), ...AGENT_SETTINGS });
    admin = await api.client();
  });

  after(async () => {
    await worker?.close();
    await api?.close();
  });

  const joinToken = (body: { hostName?: string; labels?: Record<string, string> } = {}) => createJoinToken(admin, body);
  const enrolled = (hostName: string, labels: Record<string, string> = {}) =>
    enrolledAgent(admin, api.baseUrl, hostName, labels);

  async function act(host: string, verb: string, unit: string, timeoutMs = 20_000): Promise<string> {
    const created = await admin.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: host } },
      body: { verb: verb as 'restart', unit, timeoutMs },
    });
    assert.equal(created.response.status, 202, JSON.stringify(created.error));
    return created.data!.id;
  }

  async function auditCount(): Promise<number> {
    const [row] = await query<{ n: number }>(api.database.url, 'SELECT count(*)::int AS n FROM audit_events');
    return row!.n;
  }

  async function claim(agent: ProtocolAgent): Promise<TaskCommand> {
    let command: TaskCommand | null = null;
    await waitUntil(
      async () => {
        const reply = await agent.next(1_000);
        assert.equal(reply.status, 200, JSON.stringify(reply.body));
        if (reply.body.command?.kind === 'task') command = reply.body.command;
        return command !== null;
      },
      'the agent is given a task',
      SETTLE_MS,
    );
    return command!;
  }

  it('enrols an agent with a one-time join token: the host appears with transport agent, its labels, and an audit event', async () => {
    const agent = await enrolled('agent-one', { role: 'web' });
    const host = await admin.GET('/v1/hosts/{name}', { params: { path: { name: 'agent-one' } } });
    assert.equal(host.response.status, 200);
    assert.equal(host.data!.transport, 'agent');
    assert.deepEqual(host.data!.labels, { role: 'web' });
    const events = await query<{ action: string; host_name: string }>(
      api.database.url,
      `SELECT action, host_name FROM audit_events WHERE action LIKE 'agent.%' ORDER BY seq`,
    );
    assert.ok(events.some((event) => event.action === 'agent.enroll' && event.host_name === 'agent-one'));
    assert.ok(events.some((event) => event.action === 'agent.join_token_create'));
    const listed = await admin.GET('/v1/agents');
    const mine = listed.data!.items.find((item) => item.id === agent.agentId)!;
    assert.equal(mine.online, true);
    assert.equal(mine.facts?.hostname, 'agent-one');
  });

  it('lets exactly one of two agents presenting the same join token enrol', async () => {
    const token = await joinToken();
    const [first, second] = [new ProtocolAgent(api.baseUrl), new ProtocolAgent(api.baseUrl)];
    const replies = await Promise.all([first.enrol(token, 'race-a'), second.enrol(token, 'race-b')]);
    assert.deepEqual(replies.map((reply) => reply.status).sort(), [201, 401]);
    const hosts = await query<{ name: string }>(
      api.database.url,
      `SELECT name FROM hosts WHERE name IN ('race-a', 'race-b')`,
    );
    assert.equal(hosts.length, 1);
    // Spent: a third try is refused too.
    assert.equal((await new ProtocolAgent(api.baseUrl).enrol(token, 'race-c')).status, 401);
  });

  it('refuses an expired or revoked join token, and an unbound one claiming a host already in the inventory', async () => {
    const expired = await joinToken();
    await query(api.database.url, `UPDATE agent_join_tokens SET expires_at = now() - interval '1 second'`);
    const reply = await new ProtocolAgent(api.baseUrl).enrol(expired, 'late-host');
    assert.equal(reply.status, 401);
    assert.match(JSON.stringify(reply.body), /expired/);

    const revocable = await admin.POST('/v1/agent-join-tokens', { body: {} });
    const revoked = await admin.DELETE('/v1/agent-join-tokens/{id}', { params: { path: { id: revocable.data!.id } } });
    assert.equal(revoked.response.status, 204);
    assert.equal((await new ProtocolAgent(api.baseUrl).enrol(revocable.data!.joinToken, 'never-host')).status, 401);

    await admin.POST('/v1/hosts', { body: { name: 'ssh-host', address: '10.9.9.9' } });
    const takeover = await new ProtocolAgent(api.baseUrl).enrol(await joinToken(), 'ssh-host');
    assert.equal(takeover.status, 409);
    // Bound to that host name, a join token does bind it (and the host becomes an agent host).
    const bound = await new ProtocolAgent(api.baseUrl).enrol(await joinToken({ hostName: 'ssh-host' }), 'whatever');
    assert.equal(bound.status, 201);
    assert.equal(bound.body.hostName, 'ssh-host');
  });

  it('gives a credential only for a signature of a fresh challenge by the enrolled key, and each challenge once', async () => {
    const agent = await enrolled('signer');
    const impostor = new ProtocolAgent(api.baseUrl);
    const forged = await agent.login((text) => sign(null, Buffer.from(text), impostor.privateKey).toString('base64'));
    assert.equal(forged.status, 401);
    // A challenge answered once cannot be answered again (a captured exchange is worthless).
    const challenge = await agent.call<{ challenge: string }>('POST', 'challenge', { agentId: agent.agentId }, null);
    const body = {
      agentId: agent.agentId,
      challenge: challenge.body.challenge,
      signature: sign(
        null,
        Buffer.from(`drover-agent-session:v1:${agent.agentId}:${challenge.body.challenge}`),
        agent.privateKey,
      ).toString('base64'),
    };
    assert.equal((await agent.call('POST', 'sessions', body, null)).status, 201);
    assert.equal((await agent.call('POST', 'sessions', body, null)).status, 401);
  });

  it('accepts an agent credential on agent routes only, and an API token never on them', async () => {
    const agent = await enrolled('fenced-host');
    const asOperator = createDroverClient(api.baseUrl, agent.credential);
    for (const refused of [
      await asOperator.GET('/v1/hosts', {}),
      await asOperator.GET('/v1/agents'),
      await asOperator.POST('/v1/agent-join-tokens', { body: {} }),
      await asOperator.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: 'fenced-host' } },
        body: { verb: 'restart', unit: 'nginx.service' },
      }),
    ]) {
      assert.equal(refused.response.status, 401);
    }
    const apiToken = await api.token();
    assert.equal((await agent.call('GET', 'commands/next?waitMs=0', undefined, apiToken)).status, 401);
    assert.equal((await agent.call('POST', 'heartbeat', { facts: {} }, null)).status, 401);
  });

  it('gives each agent only its own host’s tasks, refuses any call on another host’s, and records the first result of an attempt only', async () => {
    const [mine, theirs] = [await enrolled('own-a'), await enrolled('own-b')];
    const operationId = await act('own-b', 'restart', 'nginx.service');
    // own-a is woken by nothing and given nothing, however long it asks.
    assert.equal((await mine.next(1_500)).body.command, null);
    const task = await claim(theirs);
    assert.equal(task.spec.verb, 'restart');
    assert.equal(task.spec.unit, 'nginx.service');
    assert.equal(task.attempt, 1);
    for (const step of ['lease', 'clear', 'stopped', 'output']) {
      const body = step === 'clear' ? { before: null } : step === 'output' ? { seq: 0, text: 'x' } : undefined;
      assert.equal((await mine.attempt(task.taskId, 1, step, body)).status, 404, step);
    }
    assert.equal((await mine.result(task.taskId, 1, okOutcome('nginx.service'))).status, 404);

    const eventsBefore = await auditCount();
    assert.equal((await theirs.attempt(task.taskId, 1, 'lease')).status, 204);
    assert.equal((await theirs.attempt(task.taskId, 1, 'clear', { before: unitSnapshot() })).status, 204);
    assert.equal((await theirs.attempt(task.taskId, 1, 'output', { seq: 0, text: 'restarting\n' })).status, 204);
    // A chunk sent twice (a retry) is stored once.
    assert.equal((await theirs.attempt(task.taskId, 1, 'output', { seq: 0, text: 'restarting\n' })).status, 204);
    const first = await theirs.result(task.taskId, 1, okOutcome('nginx.service'));
    assert.deepEqual(first, { status: 200, body: { recorded: true } });
    const again = await theirs.result(task.taskId, 1, okOutcome('nginx.service', 'a second report'));
    assert.deepEqual(again, { status: 200, body: { recorded: false } });

    const operation = await waitForOperation(admin, operationId);
    assert.equal(operation.status, 'succeeded');
    // The attempt's calls are its progress; only its end is recorded, once.
    assert.equal((await auditCount()) - eventsBefore, 1);
    const [row] = await query<{ output: string; reason: string; state: string }>(
      api.database.url,
      `SELECT output, reason, state FROM tasks WHERE id = $1`,
      [task.taskId],
    );
    assert.deepEqual(row, { output: 'restarting\n', reason: 'restarted', state: 'succeeded' });
    const audited = await query<{ n: number }>(
      api.database.url,
      `SELECT count(*)::int AS n FROM audit_events WHERE task_id = $1 AND action = 'unit.restart'`,
      [task.taskId],
    );
    assert.equal(audited[0]!.n, 1);
  });

  it('wakes a waiting agent when a task for its host is queued', async () => {
    await assertWokenByNewTask(admin, await enrolled('wakeful'), 'wakeful');
  });

  it('lets a newer attempt take over a task whose agent stopped renewing its claim; the old attempt can no longer act or report', async () => {
    const agent = await enrolled('lapsing');
    await act('lapsing', 'restart', 'nginx.service');
    const first = await claim(agent);
    const before = unitSnapshot({ mainPid: 321 });
    assert.equal((await agent.attempt(first.taskId, 1, 'clear', { before })).status, 204);
    // No renewal for longer than the lease: the claim lapses, and the next request takes it over.
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    const second = await claim(agent);
    assert.equal(second.taskId, first.taskId);
    assert.equal(second.attempt, 2);
    // The new attempt knows what the first one recorded and when it was cleared, to settle it by reading.
    assert.deepEqual(second.earlier.before, before);
    assert.ok(second.earlier.clearedMsAgo !== null && second.earlier.clearedMsAgo >= 3_000);
    const stale: AgentReply = await agent.attempt(first.taskId, 1, 'clear', { before });
    assert.equal(stale.status, 409);
    assert.deepEqual(await agent.result(first.taskId, 1, okOutcome('nginx.service')), {
      status: 200,
      body: { recorded: false },
    });
    assert.deepEqual(await agent.result(second.taskId, 2, okOutcome('nginx.service', 'settled by reading')), {
      status: 200,
      body: { recorded: true },
    });
  });

  it('ends a task no agent fetched as unreachable, "not delivered"', async () => {
    await enrolled('silent');
    const operationId = await act('silent', 'restart', 'nginx.service', 1_000);
    const operation = await waitForOperation(admin, operationId, SETTLE_MS);
    assert.equal(operation.tasks[0]!.state, 'unreachable');
    assert.match(operation.tasks[0]!.reason ?? '', /^not delivered: the agent of silent did not fetch the task/);
  });

  it('ends a task whose agent claimed it and fell silent as timed_out, "timed out while running"', async () => {
    const agent = await enrolled('vanishing');
    const operationId = await act('vanishing', 'restart', 'nginx.service', 1_000);
    await claim(agent);
    const operation = await waitForOperation(admin, operationId, SETTLE_MS);
    assert.equal(operation.tasks[0]!.state, 'timed_out');
    assert.match(
      operation.tasks[0]!.reason ?? '',
      /^timed out while running: the agent of vanishing stopped reporting/,
    );
  });

  it('rotates an agent’s key on proof of the new one: sessions need the new key from then on, audited', async () => {
    const agent = await enrolled('rotating');
    const next = generateKeyPairSync('ed25519');
    const publicKey = next.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    const proofBy = (key: KeyObject) =>
      sign(null, Buffer.from(keyRotationSigningText(agent.agentId, publicKey)), key).toString('base64');
    // Proving with the old key is not proving to hold the new one.
    const unproven = await agent.call('POST', 'keys', { publicKey, proof: proofBy(agent.privateKey) });
    assert.equal(unproven.status, 400);
    assert.match(JSON.stringify(unproven.body), /"field":"proof"/);
    assert.equal((await agent.call('POST', 'keys', { publicKey, proof: proofBy(next.privateKey) })).status, 204);
    assert.equal((await agent.login()).status, 401, 'the old key no longer obtains a credential');
    const signed = await agent.login((text) => sign(null, Buffer.from(text), next.privateKey).toString('base64'));
    assert.equal(signed.status, 201);
    const [event] = await query<{ before: { publicKey: string }; after: { publicKey: string } }>(
      api.database.url,
      `SELECT before, after FROM audit_events WHERE action = 'agent.rotate_key' AND host_name = 'rotating'`,
    );
    assert.equal(event?.before.publicKey, agent.publicKey);
    assert.equal(event?.after.publicKey, publicKey);
  });

  it('records a heartbeat before answering it (last-seen and facts), and a poll of an agent long unseen as a sighting', async () => {
    const agent = await enrolled('beating');
    const listed = async () => (await admin.GET('/v1/agents')).data!.items.find((item) => item.id === agent.agentId)!;
    const atEnrolment = Date.parse((await listed()).lastSeenAt!);
    const beat = await agent.call('POST', 'heartbeat', { facts: { ...testFacts('beating'), uptimeSeconds: 4242 } });
    assert.equal(beat.status, 200, JSON.stringify(beat.body));
    const afterBeat = await listed();
    assert.ok(Date.parse(afterBeat.lastSeenAt!) > atEnrolment, `${afterBeat.lastSeenAt} after enrolment`);
    assert.equal(afterBeat.facts?.uptimeSeconds, 4242);

    await query(api.database.url, `UPDATE agents SET last_seen_at = now() - interval '1 hour' WHERE id = $1::uuid`, [
      agent.agentId,
    ]);
    await query(api.database.url, `UPDATE hosts SET status = 'unreachable' WHERE name = 'beating'`);
    assert.equal((await listed()).online, false);
    assert.equal((await agent.next(0)).status, 200);
    // Not waited for by the poll: written with the next batch.
    await waitUntil(async () => (await listed()).online, 'the poll is recorded as a sighting', SETTLE_MS);
    const host = await admin.GET('/v1/hosts/{name}', { params: { path: { name: 'beating' } } });
    assert.equal(host.data!.status, 'reachable');
    assert.equal((await listed()).facts?.uptimeSeconds, 4242);
  });

  it('keeps an agent’s connection open from one heartbeat to the next, past Node’s 5 s default', async () => {
    const agent = await enrolled('kept-alive');
    const server = api.app.getHttpServer();
    const first = await agent.call('POST', 'heartbeat', { facts: testFacts('kept-alive') });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    let opened = 0;
    const count = () => void opened++;
    server.on('connection', count);
    try {
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      const second = await agent.call('POST', 'heartbeat', { facts: testFacts('kept-alive') });
      assert.equal(second.status, 200, JSON.stringify(second.body));
    } finally {
      server.off('connection', count);
    }
    assert.equal(opened, 0, 'the second heartbeat reused the first one’s connection');
  });

  it('refuses a request without a protocol version this server speaks, naming the header', async () => {
    const agent = await enrolled('old-protocol');
    for (const version of [undefined, '99', 'one']) {
      const response = await fetch(`${api.baseUrl}/agent/v1/commands/next?waitMs=0`, {
        headers: {
          authorization: `Bearer ${agent.credential}`,
          ...(version ? { 'drover-agent-protocol': version } : {}),
        },
      });
      assert.equal(response.status, 400, String(version));
      assert.match(await response.text(), /drover-agent-protocol/);
    }
  });

  it('refuses a revoked agent at once, on every route and for a new credential', async () => {
    const agent = await enrolled('revoked-host');
    assert.equal((await agent.next(0)).status, 200);
    const revoked = await admin.POST('/v1/agents/{id}/revoke', { params: { path: { id: agent.agentId } } });
    assert.equal(revoked.response.status, 204);
    assert.equal((await agent.next(0)).status, 403);
    assert.equal((await agent.login()).status, 403);
    const [event] = await query<{ action: string }>(
      api.database.url,
      `SELECT action FROM audit_events WHERE action = 'agent.revoke' AND host_name = 'revoked-host'`,
    );
    assert.equal(event?.action, 'agent.revoke');
  });
});

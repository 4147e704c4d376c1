import assert from 'node:assert/strict';
import { generateKeyPairSync, KeyObject, sign } from 'node:crypto';
import {
  AGENT_PROTOCOL_HEADER,
  AGENT_PROTOCOL_VERSION,
  sessionSigningText,
  type AgentCommand,
  type EnrollResponse,
  type HostFacts,
  type TaskCommand,
  type UnitActionOutcome,
} from '@drover/protocol';
import type { DroverClient } from '../../src/client';
import { unitSnapshot } from '../factories/unit-snapshot.factory';

/** What an agent endpoint answered: status and parsed body (problem+json included). */
export interface AgentReply<T = unknown> {
  status: number;
  body: T;
}

export function testFacts(hostname: string, protocolVersion = AGENT_PROTOCOL_VERSION): HostFacts {
  return {
    hostname,
    os: 'Debian GNU/Linux 12 (bookworm)',
    kernel: '6.1.0-test',
    systemdVersion: 'systemd 252',
    uptimeSeconds: 42,
    agentVersion: '0.1.0-test',
    protocolVersion,
    runsAsRoot: true,
  };
}

/**
 * The agent protocol spoken by hand, as an agent speaks it (its own Ed25519 key, a join token, a
 * signed challenge, then its credential): for tests that need to control every request, such as
 * races, replays, revocation and attempts that report twice. The real agent is in agents/.
 */
export class ProtocolAgent {
  readonly privateKey: KeyObject;
  readonly publicKey: string;
  agentId = '';
  hostId = '';
  credential = '';

  constructor(private readonly baseUrl: string) {
    const pair = generateKeyPairSync('ed25519');
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
  }

  async call<T = unknown>(
    method: 'GET' | 'POST',
    route: string,
    body?: unknown,
    credential: string | null = this.credential,
  ): Promise<AgentReply<T>> {
    const response = await fetch(`${this.baseUrl}/agent/v1/${route}`, {
      method,
      headers: {
        [AGENT_PROTOCOL_HEADER]: String(AGENT_PROTOCOL_VERSION),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(credential ? { authorization: `Bearer ${credential}` } : {}),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
  }

  async enrol(joinToken: string, hostname: string): Promise<AgentReply<EnrollResponse>> {
    const reply = await this.call<EnrollResponse>(
      'POST',
      'enroll',
      { joinToken, publicKey: this.publicKey, facts: testFacts(hostname) },
      null,
    );
    if (reply.status === 201) {
      this.agentId = reply.body.agentId;
      this.hostId = reply.body.hostId;
    }
    return reply;
  }

  /** Signs a fresh challenge; returns the session reply (and keeps the credential on success). */
  async login(
    sign_ = (text: string) => sign(null, Buffer.from(text), this.privateKey).toString('base64'),
  ): Promise<AgentReply> {
    const challenge = await this.call<{ challenge: string }>('POST', 'challenge', { agentId: this.agentId }, null);
    const reply = await this.call<{ credential: string }>(
      'POST',
      'sessions',
      {
        agentId: this.agentId,
        challenge: challenge.body.challenge,
        signature: sign_(sessionSigningText(this.agentId, challenge.body.challenge)),
      },
      null,
    );
    if (reply.status === 201) this.credential = reply.body.credential;
    return reply;
  }

  next(waitMs = 0): Promise<AgentReply<{ command: AgentCommand | null }>> {
    return this.call('GET', `commands/next?waitMs=${waitMs}`);
  }

  attempt(taskId: string, attempt: number, step: string, body?: unknown): Promise<AgentReply> {
    return this.call(step === 'stopped' ? 'GET' : 'POST', `tasks/${taskId}/attempts/${attempt}/${step}`, body);
  }

  result(taskId: string, attempt: number, outcome: UnitActionOutcome): Promise<AgentReply<{ recorded: boolean }>> {
    return this.call('POST', `tasks/${taskId}/attempts/${attempt}/result`, { outcome });
  }
}

/** The outcome of a restart that went well, as an agent reports it. */
export function okOutcome(unit: string, reason = 'restarted') {
  const before = unitSnapshot({ id: unit, mainPid: 100 });
  const after = unitSnapshot({ id: unit, mainPid: 200, invocationId: 'b' });
  return {
    result: 'succeeded' as const,
    reason,
    exitCode: 0,
    before,
    after,
    output: null,
    verdict: { outcome: 'ok' as const, detail: 'a new run' },
    daemonReloaded: false,
  };
}

/** A one-time join token made by an operator, optionally bound to a host name and labels. */
export async function createJoinToken(
  admin: DroverClient,
  body: { hostName?: string; labels?: Record<string, string> } = {},
): Promise<string> {
  const created = await admin.POST('/v1/agent-join-tokens', { body });
  assert.equal(created.response.status, 201, JSON.stringify(created.error));
  assert.match(created.data!.joinToken, /^drj_/);
  return created.data!.joinToken;
}

/** A ProtocolAgent enrolled as the new host `hostName` (with `labels`) and holding its credential. */
export async function enrolledAgent(
  admin: DroverClient,
  baseUrl: string,
  hostName: string,
  labels: Record<string, string> = {},
): Promise<ProtocolAgent> {
  const agent = new ProtocolAgent(baseUrl);
  const reply = await agent.enrol(await createJoinToken(admin, { labels }), hostName);
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  assert.equal((await agent.login()).status, 201);
  return agent;
}

/**
 * Holds the agent's poll for work (a 20 s wait), queues `action` on its host meanwhile, and checks
 * that the poll is answered with that task by the wake-up through Redis: long before its wait ends,
 * when the API would have looked again anyway. The task is left claimed (attempt 1) for the caller.
 */
export async function assertWokenByNewTask(
  admin: DroverClient,
  agent: ProtocolAgent,
  hostName: string,
  action: { verb: 'status' | 'restart'; unit: string } = { verb: 'status', unit: 'nginx.service' },
): Promise<{ operationId: string; task: TaskCommand }> {
  const waiting = agent.next(20_000);
  // The poll is held, and its host's wake-ups listened to, before the task is queued.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const queuedAt = Date.now();
  const created = await admin.POST('/v1/hosts/{name}/actions', {
    params: { path: { name: hostName } },
    body: { ...action, timeoutMs: 20_000 },
  });
  assert.equal(created.response.status, 202, JSON.stringify(created.error));
  const reply = await waiting;
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  const command = reply.body.command;
  assert.equal(command?.kind, 'task', JSON.stringify(reply.body));
  assert.ok(Date.now() - queuedAt < 15_000, `answered ${Date.now() - queuedAt} ms after the task was queued`);
  return { operationId: created.data!.id, task: command };
}

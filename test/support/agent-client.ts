import { generateKeyPairSync, KeyObject, sign } from 'node:crypto';
import {
  AGENT_PROTOCOL_HEADER,
  AGENT_PROTOCOL_VERSION,
  sessionSigningText,
  type AgentCommand,
  type EnrollResponse,
  type HostFacts,
  type UnitActionOutcome,
} from '@drover/protocol';

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

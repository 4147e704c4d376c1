import { createPublicKey, type KeyObject, randomBytes, verify } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import {
  AGENT_PROTOCOL_SUPPORTED_BEHIND,
  AGENT_PROTOCOL_VERSION,
  JOIN_TOKEN_PREFIX,
  keyRotationSigningText,
  sessionSigningText,
  type EnrollRequest,
  type EnrollResponse,
  type SessionResponse,
} from '@drover/protocol';
import type { AuditActor } from '../audit/audit-actor';
import { ForbiddenError, RequestValidationError, UnauthenticatedError } from '../common/errors/domain-errors';
import { hostNameSchema } from '../common/validation/names';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { hashTokenSecret } from '../tokens/token-secret';
import { AgentCredentials, CHALLENGE_TTL_MS } from './agent-credentials';
import { AgentsRepository, type AgentIdentity, type JoinToken } from './agents.repository';

export const DEFAULT_JOIN_TOKEN_TTL_MINUTES = 30;

export interface CreatedJoinToken {
  id: string;
  joinToken: string;
  hostName: string | null;
  labels: Record<string, string>;
  expiresAt: string;
}

/**
 * Refuses a protocol this server does not speak: newer than its own, or more than
 * AGENT_PROTOCOL_SUPPORTED_BEHIND versions older (such agents are served, and listed as outdated).
 */
export function checkProtocol(version: number, field: string): void {
  if (
    !Number.isInteger(version) ||
    version > AGENT_PROTOCOL_VERSION ||
    version < AGENT_PROTOCOL_VERSION - AGENT_PROTOCOL_SUPPORTED_BEHIND
  ) {
    throw new RequestValidationError([
      {
        field,
        message: `this server speaks agent protocol ${AGENT_PROTOCOL_VERSION} and accepts ${Math.max(1, AGENT_PROTOCOL_VERSION - AGENT_PROTOCOL_SUPPORTED_BEHIND)} to ${AGENT_PROTOCOL_VERSION}: install the agent this server serves`,
      },
    ]);
  }
}

/** The public key an agent sent: an Ed25519 key in SPKI DER, or a 400 naming the field. */
function ed25519Key(publicKey: string): KeyObject {
  try {
    const key = createPublicKey({ key: Buffer.from(publicKey, 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType === 'ed25519') return key;
  } catch {
    // reported below
  }
  throw new RequestValidationError([
    { field: 'publicKey', message: 'must be an Ed25519 public key, SPKI DER in base64' },
  ]);
}

/**
 * How agents join and prove who they are: operators issue one-time join tokens; an agent spends
 * one to register its public key for its host; from then on it signs a one-time challenge to
 * obtain a short-lived credential.
 */
@Injectable()
export class EnrollmentService {
  constructor(
    private readonly agents: AgentsRepository,
    private readonly credentials: AgentCredentials,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async createJoinToken(
    request: {
      hostName?: string | null | undefined;
      labels?: Record<string, string> | undefined;
      expiresInMinutes?: number | undefined;
    },
    actor: AuditActor,
  ): Promise<CreatedJoinToken> {
    const secret = JOIN_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const minutes = request.expiresInMinutes ?? DEFAULT_JOIN_TOKEN_TTL_MINUTES;
    const token = await this.agents.createJoinToken(
      {
        secretHash: hashTokenSecret(secret),
        hostName: request.hostName ?? null,
        labels: request.labels ?? {},
        expiresAt: new Date(Date.now() + minutes * 60_000),
      },
      actor,
    );
    return { ...this.joinTokenView(token), joinToken: secret };
  }

  joinTokenView(token: JoinToken): Omit<CreatedJoinToken, 'joinToken'> {
    return {
      id: token.id,
      hostName: token.hostName,
      labels: token.labels as Record<string, string>,
      expiresAt: token.expiresAt.toISOString(),
    };
  }

  async enrol(request: EnrollRequest, sourceAddress: string | null, requestId: string | null): Promise<EnrollResponse> {
    checkProtocol(request.facts.protocolVersion, 'facts.protocolVersion');
    ed25519Key(request.publicKey);
    const agent = await this.agents.enrol(
      {
        secretHash: hashTokenSecret(request.joinToken),
        publicKey: request.publicKey,
        facts: request.facts,
        sourceAddress,
        requestId,
      },
      (token) => {
        if (token.hostName !== null) return token.hostName;
        const named = hostNameSchema.safeParse(request.facts.hostname);
        if (!named.success) {
          throw new RequestValidationError([
            { field: 'facts.hostname', message: `cannot be a host name: ${named.error.issues[0]?.message ?? ''}` },
          ]);
        }
        return named.data;
      },
    );
    return { agentId: agent.id, hostId: agent.hostId, hostName: agent.host.name, serverTime: new Date().toISOString() };
  }

  /**
   * Replaces an agent's key with a new one it proves to hold (signed by the new key); asked with a
   * credential the old key obtained. Credentials issued before stay valid until they expire.
   */
  async rotateKey(
    agent: AgentIdentity,
    publicKey: string,
    proof: string,
    sourceAddress: string | null,
    requestId: string | null,
  ): Promise<void> {
    const key = ed25519Key(publicKey);
    if (
      !verify(null, Buffer.from(keyRotationSigningText(agent.agentId, publicKey)), key, Buffer.from(proof, 'base64'))
    ) {
      throw new RequestValidationError([
        { field: 'proof', message: 'is not a signature of the rotation text by the new key' },
      ]);
    }
    await this.agents.rotateKey(agent, publicKey, sourceAddress, requestId);
  }

  async challenge(agentId: string): Promise<{ challenge: string; expiresInMs: number; serverTime: string }> {
    // Issued for any id (unknown ones too), so the answer tells nothing about which agents exist.
    return {
      challenge: await this.credentials.challenge(agentId),
      expiresInMs: CHALLENGE_TTL_MS,
      serverTime: new Date().toISOString(),
    };
  }

  async session(agentId: string, challenge: string, signature: string): Promise<SessionResponse> {
    const refused = new UnauthenticatedError(
      'the challenge is unknown, spent or expired, or the signature does not verify',
    );
    if ((await this.credentials.takeChallenge(challenge)) !== agentId) throw refused;
    const agent = await this.agents.findById(agentId);
    if (!agent) throw refused;
    if (agent.revokedAt) throw new ForbiddenError('this agent was revoked: enrol it again with a new join token');
    const key = createPublicKey({ key: Buffer.from(agent.publicKey, 'base64'), format: 'der', type: 'spki' });
    if (!verify(null, Buffer.from(sessionSigningText(agentId, challenge)), key, Buffer.from(signature, 'base64'))) {
      throw refused;
    }
    return {
      credential: await this.credentials.issue(agentId),
      ttlMs: this.config.AGENT_CREDENTIAL_TTL_MS,
      serverTime: new Date().toISOString(),
    };
  }
}

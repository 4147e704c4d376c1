import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { RedisClient } from '../infra/redis/redis-connection';
import { AGENT_CREDENTIAL_PREFIX } from '@drover/protocol';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { REDIS } from '../infra/redis/redis.module';

/** How long a challenge may be signed and presented. */
export const CHALLENGE_TTL_MS = 60_000;

function digest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/**
 * One-time challenges and short-lived agent credentials, in Redis with their time to live: any API
 * replica checks them, and losing Redis only makes agents sign a new challenge (their keys are what
 * lasts, in PostgreSQL). Only SHA-256 digests of credentials are stored.
 */
@Injectable()
export class AgentCredentials {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async challenge(agentId: string): Promise<string> {
    const challenge = randomBytes(32).toString('base64url');
    await this.redis.set(this.key('challenge', challenge), agentId, 'PX', CHALLENGE_TTL_MS);
    return challenge;
  }

  /** The agent a challenge was issued to, once: a challenge can be spent only once. */
  takeChallenge(challenge: string): Promise<string | null> {
    return this.redis.getdel(this.key('challenge', challenge));
  }

  async issue(agentId: string): Promise<string> {
    const credential = AGENT_CREDENTIAL_PREFIX + randomBytes(32).toString('base64url');
    await this.redis.set(
      this.key('credential', digest(credential)),
      agentId,
      'PX',
      this.config.AGENT_CREDENTIAL_TTL_MS,
    );
    return credential;
  }

  /** The agent a credential was issued to, while it is valid. */
  resolve(credential: string): Promise<string | null> {
    if (!credential.startsWith(AGENT_CREDENTIAL_PREFIX) || credential.length > 100) return Promise.resolve(null);
    return this.redis.get(this.key('credential', digest(credential)));
  }

  private key(kind: 'challenge' | 'credential', value: string): string {
    return `${this.config.QUEUE_PREFIX}:agent-${kind}:${value}`;
  }
}

import { Injectable } from '@nestjs/common';
import { UnauthenticatedError } from '../common/errors/domain-errors';
import { generateTokenSecret, hashTokenSecret, isWellFormedTokenSecret } from './token-secret';
import { TokenScope } from './token-scope';
import { TokensRepository } from './tokens.repository';

/** Who is calling: the token's identity and bounds, attached to every authenticated request. */
export interface Principal {
  tokenId: string;
  tokenName: string;
  scopes: TokenScope[];
  hostSelector: string | null;
  unitGlob: string | null;
}

export interface CreateTokenInput {
  name: string;
  scopes: TokenScope[];
  hostSelector?: string | null;
  unitGlob?: string | null;
  expiresAt?: Date | null;
}

@Injectable()
export class TokensService {
  constructor(private readonly tokens: TokensRepository) {}

  /** Creates a token and returns its secret: the only time the secret exists outside the caller. */
  async create(input: CreateTokenInput): Promise<{ id: string; name: string; secret: string }> {
    const secret = generateTokenSecret();
    const token = await this.tokens.create({
      name: input.name,
      secretHash: hashTokenSecret(secret),
      scopes: input.scopes,
      hostSelector: input.hostSelector ?? null,
      unitGlob: input.unitGlob ?? null,
      expiresAt: input.expiresAt ?? null,
    });
    return { id: token.id, name: token.name, secret };
  }

  async authenticate(secret: string, now = new Date()): Promise<Principal> {
    if (!isWellFormedTokenSecret(secret)) throw new UnauthenticatedError('the bearer token is malformed');
    const token = await this.tokens.findBySecretHash(hashTokenSecret(secret));
    if (!token) throw new UnauthenticatedError('the bearer token is not known');
    if (token.revokedAt) throw new UnauthenticatedError('the bearer token was revoked');
    if (token.expiresAt && token.expiresAt <= now) throw new UnauthenticatedError('the bearer token has expired');
    await this.tokens.touchLastUsed(token.id, now);
    return {
      tokenId: token.id,
      tokenName: token.name,
      scopes: token.scopes,
      hostSelector: token.hostSelector,
      unitGlob: token.unitGlob,
    };
  }
}

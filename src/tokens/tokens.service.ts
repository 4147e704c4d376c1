import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { ForbiddenError, RequestValidationError } from '../common/errors/domain-errors';
import { decodeCursor, Page, toPage } from '../common/pagination/cursor';
import { parseSelector, unitGlobProblem } from '@drover/protocol';
import type { Principal } from '../common/auth/principal';
import { TokenRejectedError } from './auth-failures';
import type { CreatedTokenResponse, CreateTokenRequest, ListTokensQuery, TokenResponse } from './dto/token.dto';
import { generateTokenSecret, hashTokenSecret, isWellFormedTokenSecret } from './token-secret';
import { TokenScope } from './token-scope';
import { lostStanding } from './token-standing';
import { StoredToken, TokenAuditActor, TokensRepository } from './tokens.repository';

export type { TokenAuditActor };

/** Who is calling: the token's identity and bounds, attached to every authenticated request. */
export interface CreateTokenInput {
  name: string;
  scopes: TokenScope[];
  hostSelector?: string | null;
  unitGlob?: string | null;
  expiresAt?: Date | null;
}

/** The actor of tokens made outside the API: the `drover-admin create-token` command. */
export const ADMIN_COMMAND_ACTOR: TokenAuditActor = {
  actorTokenId: null,
  actorName: 'drover-admin',
  requestId: null,
  sourceAddress: null,
};

const DAY_MS = 86_400_000;

const tokenCursorSchema = z.object({ name: z.string() });

export function toTokenResponse(token: StoredToken): TokenResponse {
  return {
    id: token.id,
    name: token.name,
    scopes: token.scopes,
    hostSelector: token.hostSelector,
    unitGlob: token.unitGlob,
    expiresAt: token.expiresAt?.toISOString() ?? null,
    revokedAt: token.revokedAt?.toISOString() ?? null,
    lastUsedAt: token.lastUsedAt?.toISOString() ?? null,
    createdAt: token.createdAt.toISOString(),
  };
}

/**
 * Token management is for unbounded tokens only: a token limited to some hosts or units could
 * otherwise mint itself an unlimited token, or revoke the tokens of those who limited it.
 */
function assertMayManageTokens(caller: Principal): void {
  if (caller.hostSelector !== null || caller.unitGlob !== null) {
    throw new ForbiddenError(
      'a token bounded by hostSelector or unitGlob cannot create or revoke tokens: ask for an unbounded admin token',
    );
  }
}

/** The bounds as stored: checked here too, since the admin command does not pass the HTTP DTO. */
function validBounds(input: CreateTokenInput): { hostSelector: string | null; unitGlob: string | null } {
  // A selector without requirements ('' or blanks) selects every host, which is what no bound
  // means: store it as none, so the token counts as unbounded everywhere.
  const hostSelector =
    input.hostSelector && parseSelector(input.hostSelector, 'hostSelector').length > 0 ? input.hostSelector : null;
  const unitGlob = input.unitGlob ?? null;
  const globProblem = unitGlob === null ? null : unitGlobProblem(unitGlob);
  if (globProblem) throw new RequestValidationError([{ field: 'unitGlob', message: globProblem }]);
  return { hostSelector, unitGlob };
}

@Injectable()
export class TokensService {
  constructor(private readonly tokens: TokensRepository) {}

  /**
   * Creates a token, audited as done by `actor`, and returns its secret: the only time the secret
   * exists outside the caller. Only its hash is stored, and neither goes into the audit event.
   */
  async create(input: CreateTokenInput, actor: TokenAuditActor = ADMIN_COMMAND_ACTOR): Promise<CreatedTokenResponse> {
    const secret = generateTokenSecret();
    const token = await this.tokens.create(
      {
        name: input.name,
        secretHash: hashTokenSecret(secret),
        scopes: [...new Set(input.scopes)],
        ...validBounds(input),
        expiresAt: input.expiresAt ?? null,
      },
      actor,
    );
    return {
      id: token.id,
      name: token.name,
      secret,
      scopes: token.scopes,
      hostSelector: token.hostSelector,
      unitGlob: token.unitGlob,
      expiresAt: token.expiresAt?.toISOString() ?? null,
      createdAt: token.createdAt.toISOString(),
    };
  }

  /** POST /v1/tokens: a token created by another (unbounded admin) token. */
  async createFor(
    caller: Principal,
    request: CreateTokenRequest,
    actor: TokenAuditActor,
    now = new Date(),
  ): Promise<CreatedTokenResponse> {
    assertMayManageTokens(caller);
    const expiresAt =
      request.expiresInDays !== undefined
        ? new Date(now.getTime() + request.expiresInDays * DAY_MS)
        : request.expiresAt !== undefined
          ? new Date(request.expiresAt)
          : null;
    return this.create(
      {
        name: request.name,
        scopes: request.scopes,
        hostSelector: request.hostSelector ?? null,
        unitGlob: request.unitGlob ?? null,
        expiresAt,
      },
      actor,
    );
  }

  async list(query: ListTokensQuery): Promise<Page<TokenResponse>> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, tokenCursorSchema).name;
    const rows = await this.tokens.list(after, query.limit + 1);
    return toPage(rows, query.limit, toTokenResponse, (token) => ({ name: token.name }));
  }

  async get(id: string): Promise<TokenResponse> {
    return toTokenResponse(await this.tokens.findById(id));
  }

  /** Revokes a token at once (every request is authenticated against the database). Idempotent. */
  async revoke(caller: Principal, id: string, actor: TokenAuditActor, now = new Date()): Promise<TokenResponse> {
    assertMayManageTokens(caller);
    return toTokenResponse(await this.tokens.revoke(id, now, actor));
  }

  async authenticate(secret: string, now = new Date()): Promise<Principal> {
    if (!isWellFormedTokenSecret(secret)) throw new TokenRejectedError('the bearer token is malformed', 'malformed');
    const token = await this.tokens.findBySecretHash(hashTokenSecret(secret));
    if (!token) throw new TokenRejectedError('the bearer token is not known', 'unknown');
    const lost = lostStanding(token, now);
    if (lost === 'revoked') throw new TokenRejectedError('the bearer token was revoked', lost);
    if (lost === 'expired') throw new TokenRejectedError('the bearer token has expired', lost);
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

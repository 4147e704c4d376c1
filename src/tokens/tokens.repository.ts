import { Injectable } from '@nestjs/common';
import { AUDIT_ACTION } from '@drover/protocol';
import { ResourceConflictError, ResourceNotFoundError } from '../common/errors/domain-errors';
import { isUniqueViolation } from '../infra/prisma/prisma-errors';
import { PrismaService } from '../infra/prisma/prisma.service';
import { ApiToken, Prisma, TokenScope } from '../generated/prisma/client';

export interface NewToken {
  name: string;
  secretHash: string;
  scopes: TokenScope[];
  hostSelector: string | null;
  unitGlob: string | null;
  expiresAt: Date | null;
}

/** A token as the API shows it: the secret hash is never even read for these. */
export type StoredToken = Omit<ApiToken, 'secretHash'>;

const WITHOUT_HASH = { secretHash: true } as const;

/**
 * Who changed a token, as its audit event records it. (Structurally the audit module's AuditActor;
 * declared here because importing that would make the auth guard's imports circular.)
 */
export interface TokenAuditActor {
  actorTokenId: string | null;
  actorName: string;
  requestId: string | null;
  sourceAddress: string | null;
}

/** Copies exactly the audit columns (a caller's actor object may carry more). */
function actorColumns(actor: TokenAuditActor): TokenAuditActor {
  return {
    actorTokenId: actor.actorTokenId,
    actorName: actor.actorName,
    requestId: actor.requestId,
    sourceAddress: actor.sourceAddress,
  };
}

/** What an audit event says about a token: its identity and bounds, never its secret or hash. */
function auditParameters(token: StoredToken): Prisma.InputJsonObject {
  return {
    tokenId: token.id,
    name: token.name,
    scopes: token.scopes,
    hostSelector: token.hostSelector,
    unitGlob: token.unitGlob,
    expiresAt: token.expiresAt?.toISOString() ?? null,
  };
}

@Injectable()
export class TokensRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** Creates a token and its `token.create` audit event atomically. */
  async create(token: NewToken, actor: TokenAuditActor): Promise<StoredToken> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        const created = await tx.apiToken.create({ data: token, omit: WITHOUT_HASH });
        await tx.auditEvent.create({
          data: {
            ...actorColumns(actor),
            action: AUDIT_ACTION.tokenCreate,
            result: 'succeeded',
            parameters: auditParameters(created),
          },
        });
        return created;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ResourceConflictError('token', 'name', token.name);
      throw error;
    }
  }

  /** The token as stored now, or null once it no longer exists. */
  findOptional(id: string): Promise<StoredToken | null> {
    return this.prisma.apiToken.findUnique({ where: { id }, omit: WITHOUT_HASH });
  }

  async findById(id: string): Promise<StoredToken> {
    const token = await this.prisma.apiToken.findUnique({ where: { id }, omit: WITHOUT_HASH });
    if (!token) throw new ResourceNotFoundError('token', id);
    return token;
  }

  /** Up to `take` tokens ordered by name, strictly after `afterName`. */
  list(afterName: string | undefined, take: number): Promise<StoredToken[]> {
    return this.prisma.apiToken.findMany({
      where: afterName === undefined ? {} : { name: { gt: afterName } },
      orderBy: { name: 'asc' },
      take,
      omit: WITHOUT_HASH,
    });
  }

  /**
   * Revokes a token with its `token.revoke` audit event, atomically. Only an unrevoked token is
   * written (the conditional update re-checks after any concurrent revoke commits), so the first
   * revocation time stays; a repeat is still audited, marked `alreadyRevoked`.
   */
  async revoke(id: string, now: Date, actor: TokenAuditActor): Promise<StoredToken> {
    return this.prisma.$transaction(async (tx) => {
      const [revoked] = await tx.apiToken.updateManyAndReturn({
        where: { id, revokedAt: null },
        data: { revokedAt: now },
        omit: WITHOUT_HASH,
      });
      const token = revoked ?? (await tx.apiToken.findUnique({ where: { id }, omit: WITHOUT_HASH }));
      if (!token) throw new ResourceNotFoundError('token', id);
      await tx.auditEvent.create({
        data: {
          ...actorColumns(actor),
          action: AUDIT_ACTION.tokenRevoke,
          result: 'succeeded',
          parameters: { ...auditParameters(token), alreadyRevoked: revoked === undefined },
        },
      });
      return token;
    });
  }

  findBySecretHash(secretHash: string): Promise<ApiToken | null> {
    return this.prisma.apiToken.findUnique({ where: { secretHash } });
  }

  /** Records use at most once a minute per token, so reads do not turn into a write each. */
  async touchLastUsed(id: string, now: Date): Promise<void> {
    const staleBefore = new Date(now.getTime() - 60_000);
    await this.prisma.apiToken.updateMany({
      where: { id, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: staleBefore } }] },
      data: { lastUsedAt: now },
    });
  }
}

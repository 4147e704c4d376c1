import { Injectable } from '@nestjs/common';
import { ResourceConflictError } from '../common/errors/domain-errors';
import { isUniqueViolation } from '../infra/prisma/prisma-errors';
import { PrismaService } from '../infra/prisma/prisma.service';
import { ApiToken, TokenScope } from '../generated/prisma/client';

export interface NewToken {
  name: string;
  secretHash: string;
  scopes: TokenScope[];
  hostSelector: string | null;
  unitGlob: string | null;
  expiresAt: Date | null;
}

@Injectable()
export class TokensRepository {
  constructor(private readonly prisma: PrismaService) {}

  async create(token: NewToken): Promise<ApiToken> {
    try {
      return await this.prisma.apiToken.create({ data: token });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ResourceConflictError('token', 'name', token.name);
      throw error;
    }
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

import { CanActivate, ExecutionContext, Inject, Injectable, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Response } from 'express';
import type { RedisClient } from '../infra/redis/redis-connection';
import { REDIS } from '../infra/redis/redis.module';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { TokenRateLimiter, TooManyRequestsError } from './rate-limit';
import { AuthFailureRecorder } from './auth-failure-recorder';
import { TokenRejectedError, tokenPrefixOf } from './auth-failures';
import type { Principal } from '../common/auth/principal';
import { TokensService } from './tokens.service';
import { scopesAllow, TokenScope } from './token-scope';
import { ForbiddenError } from '../common/errors/domain-errors';
import { ANY_SCOPE, PUBLIC_ROUTE, REQUIRED_SCOPE, UNBOUNDED_ONLY } from '../common/auth/auth.decorators';
import type { AuthenticatedRequest } from '../common/auth/authenticated-request';

/**
 * Global guard: every route needs a valid (known, unexpired, unrevoked) bearer token with the
 * route's scope, unless @Public; and each token gets a bounded number of requests per minute.
 * Every refused token is counted and recorded (coalesced) in the audit trail.
 */
@Injectable()
export class BearerAuthGuard implements CanActivate {
  private readonly logger = new Logger(BearerAuthGuard.name);
  private readonly limiter: TokenRateLimiter | null;

  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: TokensService,
    private readonly failures: AuthFailureRecorder,
    @Inject(REDIS) redis: RedisClient,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    const limit = config.TOKEN_RATE_LIMIT_PER_MINUTE;
    this.limiter = limit > 0 ? new TokenRateLimiter(redis, config.QUEUE_PREFIX, limit) : null;
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const request = context.switchToHttp().getRequest<AuthenticatedRequest & { id?: unknown }>();
    const header = request.headers.authorization;
    const presented = (header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null)?.[1] ?? null;
    const principal = await this.authenticate(presented).catch(async (error: unknown) => {
      if (error instanceof TokenRejectedError) {
        await this.failures.record({
          reason: error.reason,
          tokenPrefix: tokenPrefixOf(presented),
          sourceAddress: request.ip ?? request.socket.remoteAddress ?? null,
          requestId: typeof request.id === 'string' ? request.id : null,
        });
      }
      throw error;
    });
    // Attached before any refusal below, so the problem filter can record who was refused.
    request.principal = principal;
    // Counted after authentication, so unknown secrets cannot fill Redis with counters, and before
    // the scope check, so a token probing routes it may not use is limited too.
    await this.enforceRateLimit(principal.tokenId, context.switchToHttp().getResponse<Response>());
    const required = this.reflector.getAllAndOverride<TokenScope | typeof ANY_SCOPE>(REQUIRED_SCOPE, targets) ?? 'read';
    if (required !== ANY_SCOPE && !scopesAllow(principal.scopes, required)) {
      throw new ForbiddenError(`this operation needs a token with the '${required}' scope`);
    }
    const unboundedOnly = this.reflector.getAllAndOverride<boolean>(UNBOUNDED_ONLY, targets) ?? false;
    if (unboundedOnly && (principal.hostSelector !== null || principal.unitGlob !== null)) {
      throw new ForbiddenError(
        'a token bounded by hostSelector or unitGlob cannot do this (it could widen its own bounds): use an unbounded token',
      );
    }
    return true;
  }

  private authenticate(presented: string | null): Promise<Principal> {
    if (presented === null) {
      return Promise.reject(new TokenRejectedError('send an API token as "Authorization: Bearer <token>"', 'missing'));
    }
    return this.tokens.authenticate(presented);
  }

  private async enforceRateLimit(tokenId: string, response: Response): Promise<void> {
    if (!this.limiter) return;
    const decision = await this.limiter.consume(tokenId).catch((error: unknown) => {
      // The limit protects capacity, it does not decide who may do what: with Redis unreachable,
      // serving authenticated requests beats refusing all of them.
      this.logger.warn(`rate limit not checked (Redis: ${error instanceof Error ? error.message : String(error)})`);
      return null;
    });
    if (!decision || decision.allowed) return;
    // The problem filter writes the body only; the header has to be on the response already.
    response.setHeader('Retry-After', String(decision.retryAfterSeconds));
    throw new TooManyRequestsError(decision.limit, decision.retryAfterSeconds);
  }
}

import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { TokensService } from '../../tokens/tokens.service';
import { scopesAllow, TokenScope } from '../../tokens/token-scope';
import { ForbiddenError, UnauthenticatedError } from '../errors/domain-errors';
import { PUBLIC_ROUTE, REQUIRED_SCOPE } from './auth.decorators';
import type { AuthenticatedRequest } from './authenticated-request';

/** Global guard: every route needs a valid bearer token with the route's scope, unless @Public. */
@Injectable()
export class BearerAuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: TokensService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match?.[1]) {
      throw new UnauthenticatedError('send an API token as "Authorization: Bearer <token>"');
    }
    const principal = await this.tokens.authenticate(match[1]);
    const required = this.reflector.getAllAndOverride<TokenScope>(REQUIRED_SCOPE, targets) ?? 'read';
    if (!scopesAllow(principal.scopes, required)) {
      throw new ForbiddenError(`this operation needs a token with the '${required}' scope`);
    }
    request.principal = principal;
    return true;
  }
}

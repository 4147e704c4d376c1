import { applyDecorators, createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';
import type { TokenScope } from '../../generated/prisma/enums';
import type { AuthenticatedRequest } from './authenticated-request';

export const PUBLIC_ROUTE = 'drover:public';
export const REQUIRED_SCOPE = 'drover:scope';

export const PUBLIC_OPERATION_EXTENSION = 'x-drover-public';

/** Marks a route that needs no token (health probes only), for the guard and the OpenAPI document. */
export const Public = () =>
  applyDecorators(SetMetadata(PUBLIC_ROUTE, true), ApiExtension(PUBLIC_OPERATION_EXTENSION, true));

export const AGENT_OPERATION_EXTENSION = 'x-drover-agent';

/**
 * Marks a route a per-host agent calls with its own short-lived credential (dra_...), never with an
 * API token: the bearer guard leaves it to the agents module's guard, and the OpenAPI document says so.
 */
export const AgentCredentialRoute = () =>
  applyDecorators(SetMetadata(PUBLIC_ROUTE, true), ApiExtension(AGENT_OPERATION_EXTENSION, true));

export const UNBOUNDED_ONLY = 'drover:unbounded-only';

/**
 * Routes a token limited to some hosts or units must not use because they could widen its reach:
 * changing host labels (which decide what a selector matches), granting root rules.
 */
export const UnboundedTokenOnly = () => SetMetadata(UNBOUNDED_ONLY, true);

/** The scope a route needs; routes without it need `read`. */
export const RequireScope = (scope: TokenScope) => SetMetadata(REQUIRED_SCOPE, scope);

export const ANY_SCOPE = 'any';

/** Routes any valid token may call whatever its scopes (a token reading what it is). */
export const AnyScope = () => SetMetadata(REQUIRED_SCOPE, ANY_SCOPE);

/** Who is calling and under which request id: what every audit event of the request records. */
export interface RequestActor {
  tokenId: string;
  tokenName: string;
  requestId: string | null;
  /** The client's address as the API saw it. */
  sourceAddress: string | null;
}

export const Actor = createParamDecorator((_data: unknown, context: ExecutionContext): RequestActor => {
  const request = context.switchToHttp().getRequest<AuthenticatedRequest & { id?: unknown }>();
  return {
    tokenId: request.principal.tokenId,
    tokenName: request.principal.tokenName,
    requestId: typeof request.id === 'string' ? request.id : null,
    sourceAddress: request.ip ?? request.socket.remoteAddress ?? null,
  };
});

import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { AuthenticatedRequest } from '../common/auth/authenticated-request';
import type { Principal } from '../common/auth/principal';

/**
 * The calling token with its scopes and bounds (hostSelector, unitGlob), for handlers whose
 * decision depends on them; @Actor() carries only what audit events record.
 */
export const CurrentPrincipal = createParamDecorator(
  (_data: unknown, context: ExecutionContext): Principal =>
    context.switchToHttp().getRequest<AuthenticatedRequest>().principal,
);

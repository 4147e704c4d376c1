import { applyDecorators, SetMetadata } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';
import type { TokenScope } from '../../tokens/token-scope';

export const PUBLIC_ROUTE = 'drover:public';
export const REQUIRED_SCOPE = 'drover:scope';

export const PUBLIC_OPERATION_EXTENSION = 'x-drover-public';

/** Marks a route that needs no token (health probes only), for the guard and the OpenAPI document. */
export const Public = () =>
  applyDecorators(SetMetadata(PUBLIC_ROUTE, true), ApiExtension(PUBLIC_OPERATION_EXTENSION, true));

/** The scope a route needs; routes without it need `read`. */
export const RequireScope = (scope: TokenScope) => SetMetadata(REQUIRED_SCOPE, scope);

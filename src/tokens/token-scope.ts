import { TokenScope } from '../generated/prisma/enums';

export { TokenScope };

/**
 * What each scope grants. `admin` can do everything; `operate` (acting on units) includes `read`;
 * `audit` reads the audit trail only.
 */
const GRANTS: Record<TokenScope, readonly TokenScope[]> = {
  read: ['read'],
  operate: ['operate', 'read'],
  admin: ['admin', 'operate', 'read', 'audit'],
  audit: ['audit'],
};

export function scopesAllow(held: readonly TokenScope[], required: TokenScope): boolean {
  return held.some((scope) => GRANTS[scope].includes(required));
}

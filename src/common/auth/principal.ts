import type { TokenScope } from '../../generated/prisma/enums';

/** Who a request acts as: the bearer token the guard accepted, with its scopes and bounds. */
export interface Principal {
  tokenId: string;
  tokenName: string;
  scopes: TokenScope[];
  hostSelector: string | null;
  unitGlob: string | null;
}

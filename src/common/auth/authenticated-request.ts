import type { Request } from 'express';
import type { Principal } from './principal';

/** A request the bearer guard let through, carrying who made it. */
export interface AuthenticatedRequest extends Request {
  principal: Principal;
}

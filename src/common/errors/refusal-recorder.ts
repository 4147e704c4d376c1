import type { Principal } from '../auth/principal';

/** A request refused with 403 after its token was accepted: who tried what, from where, and why not. */
export interface Refusal {
  principal: Principal;
  requestId: string | null;
  sourceAddress: string | null;
  method: string;
  path: string;
  reason: string;
}

/**
 * Where the problem filter records refusals. The audit module provides it: the filter is common code,
 * which depends on no domain module, so it knows only this contract.
 */
export abstract class RefusalRecorder {
  abstract record(refusal: Refusal): Promise<void>;
}

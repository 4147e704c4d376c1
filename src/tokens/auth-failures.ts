import { UnauthenticatedError } from '../common/errors/domain-errors';

/** Why a request was not authenticated; the label of drover_auth_failures_total. */
export const AUTH_FAILURE_REASONS = ['missing', 'malformed', 'unknown', 'expired', 'revoked'] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** A 401 that says why, so the guard can record it. */
export class TokenRejectedError extends UnauthenticatedError {
  constructor(
    message: string,
    readonly reason: AuthFailureReason,
  ) {
    super(message);
  }
}

/**
 * Characters of a presented token kept to tell attempts apart: `drv_` and 8 of its 43 random
 * characters (48 of 256 bits), enough to group retries of one token, useless to guess it.
 */
const TOKEN_PREFIX_LENGTH = 12;

export function tokenPrefixOf(presented: string | null): string | null {
  return presented === null ? null : presented.slice(0, TOKEN_PREFIX_LENGTH);
}

export interface AuthFailure {
  reason: AuthFailureReason;
  tokenPrefix: string | null;
  sourceAddress: string | null;
  requestId: string | null;
}

/** One audit event's worth of failures: `count` failures of one key in one window. */
export interface AuthFailureRecord {
  reason: AuthFailureReason;
  /** '*' when the source tried too many different tokens in the window to list them apart. */
  tokenPrefix: string | null;
  /** '*' when too many sources failed in the window to list them apart. */
  sourceAddress: string | null;
  requestId: string | null;
  windowStart: Date;
  count: number;
}

/** Distinct tokens one source may have recorded apart per window; the rest are folded into '*'. */
export const MAX_PREFIXES_PER_SOURCE = 10;
/** Distinct keys per window (bounds memory and audit events per window); the rest fold into '*'. */
export const MAX_KEYS_PER_WINDOW = 1_000;

interface OpenWindow {
  record: AuthFailureRecord;
  /** How many of `record.count` are already in an audit event. */
  written: number;
}

/**
 * Coalesces failed authentications per (source address, token prefix, reason) and fixed time
 * window, so a flood of bad tokens costs the audit chain at most two events per key and window:
 * the first failure at once (an attack shows up without delay), the rest as one event with their
 * count when the window ends. Pure: the caller supplies the time and writes the records.
 */
export class AuthFailureWindows {
  private windowStart = 0;
  private readonly open = new Map<string, OpenWindow>();
  private readonly prefixesPerSource = new Map<string, number>();

  constructor(private readonly windowMs: number) {}

  /** Counts a failure; returns the record to write now when it is the first of its key and window. */
  add(failure: AuthFailure, nowMs: number): { due: AuthFailureRecord[]; first: AuthFailureRecord | null } {
    const due = this.takeDue(nowMs);
    const source = failure.sourceAddress ?? '';
    let tokenPrefix = failure.tokenPrefix;
    let sourceAddress = failure.sourceAddress;
    let key = JSON.stringify([source, tokenPrefix, failure.reason]);
    if (!this.open.has(key)) {
      const prefixes = this.prefixesPerSource.get(source) ?? 0;
      if (prefixes >= MAX_PREFIXES_PER_SOURCE) tokenPrefix = '*';
      if (this.open.size >= MAX_KEYS_PER_WINDOW) [sourceAddress, tokenPrefix] = ['*', '*'];
      key = JSON.stringify([sourceAddress, tokenPrefix, failure.reason]);
      if (tokenPrefix !== '*') this.prefixesPerSource.set(source, prefixes + 1);
    }
    const existing = this.open.get(key);
    if (existing) {
      existing.record.count += 1;
      return { due, first: null };
    }
    const record: AuthFailureRecord = {
      reason: failure.reason,
      tokenPrefix,
      sourceAddress,
      requestId: failure.requestId,
      windowStart: new Date(this.windowStart),
      count: 1,
    };
    this.open.set(key, { record, written: 1 });
    return { due, first: { ...record } };
  }

  /** The unwritten rest of every window that ended by `nowMs` (all of them when nowMs is Infinity). */
  takeDue(nowMs: number): AuthFailureRecord[] {
    const current = Number.isFinite(nowMs) ? Math.floor(nowMs / this.windowMs) * this.windowMs : Infinity;
    if (current === this.windowStart) return [];
    const due = [...this.open.values()]
      .filter((window) => window.record.count > window.written)
      .map((window) => ({ ...window.record, count: window.record.count - window.written }));
    this.open.clear();
    this.prefixesPerSource.clear();
    this.windowStart = current;
    return due;
  }
}

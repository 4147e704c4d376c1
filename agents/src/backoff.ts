import { setTimeout as sleep } from 'node:timers/promises';

/** The longest an agent waits between two tries at reaching the server. */
export const MAX_BACKOFF_MS = 60_000;
const BASE_BACKOFF_MS = 1_000;

/**
 * How long to wait after `failures` failures in a row (1, 2, ...): "full jitter", a random time up
 * to an exponentially growing bound capped at MAX_BACKOFF_MS, so a fleet that lost its server does
 * not come back at it all at the same moment.
 */
export function backoffMs(failures: number, random: () => number = Math.random): number {
  const bound = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.max(0, failures - 1));
  return Math.floor(random() * bound);
}

/** Waits `ms`, or less when `signal` aborts first (never rejects). */
export async function pause(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, signal ? { signal } : {});
  } catch {
    // Aborted: the caller looks at its signal.
  }
}

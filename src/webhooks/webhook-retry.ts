/** What happens to a delivery after an attempt: pure, so the retry schedule is unit-tested. */
export type AttemptOutcome = { status: 'delivered' } | { status: 'pending'; retryInMs: number } | { status: 'failed' };

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed: exponential
 * (base, 2 base, 4 base, ...) capped at maxDelayMs, with up to a quarter taken off at random so
 * that many subscriptions failing together do not retry in lockstep.
 */
export function retryDelayMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exponential = policy.baseDelayMs * 2 ** Math.min(Math.max(attempt - 1, 0), 40);
  const capped = Math.min(exponential, policy.maxDelayMs);
  return Math.max(1, Math.round(capped * (1 - 0.25 * random())));
}

/** A 2xx response delivers; anything else (other statuses, timeouts, refused connections) is retried. */
export function attemptOutcome(
  policy: RetryPolicy,
  attempt: number,
  statusCode: number | null,
  random: () => number = Math.random,
): AttemptOutcome {
  if (statusCode !== null && statusCode >= 200 && statusCode < 300) return { status: 'delivered' };
  if (attempt >= policy.maxAttempts) return { status: 'failed' };
  return { status: 'pending', retryInMs: retryDelayMs(policy, attempt, random) };
}

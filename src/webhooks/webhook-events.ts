/**
 * The vocabulary of webhook events: the kinds of things that emit them and the filter syntax
 * subscriptions use. Event types are `<kind>.<name>`; a subscription lists exact types or prefixes
 * ending in `*`. A new source adds its kind here and writes webhook_events rows of type
 * `<kind>.<name>`: existing subscriptions, filters and deliveries need no change.
 */
export const WEBHOOK_EVENT_KINDS = ['rollout', 'operation', 'policy'] as const;
export type WebhookEventKind = (typeof WEBHOOK_EVENT_KINDS)[number];

/** Types written today, for documentation and the CLI (the filter accepts any type of a known kind). */
export const WEBHOOK_EVENT_EXAMPLES: readonly string[] = [
  'rollout.created',
  'rollout.queued',
  'rollout.started',
  'rollout.batch.started',
  'rollout.task.finished',
  'rollout.host.gating',
  'rollout.gate.check',
  'rollout.host.succeeded',
  'rollout.host.failed',
  'rollout.batch.finished',
  'rollout.awaiting_approval',
  'rollout.finished',
  'operation.succeeded',
  'operation.failed',
  'operation.cancelled',
  'policy.host.out_of_line',
  'policy.host.in_line',
];

export const WEBHOOK_EVENT_PATTERN_MAX_LENGTH = 96;

const PATTERN = /^(\*|[a-z]+(\.[a-z_]+)+|[a-z]+(\.[a-z_]+)*\.\*)$/;

/** Why a filter pattern is not acceptable, or null when it is. */
export function eventPatternProblem(pattern: string): string | null {
  if (pattern.length > WEBHOOK_EVENT_PATTERN_MAX_LENGTH || !PATTERN.test(pattern)) {
    return "must be '*', an event type such as 'rollout.finished', or a prefix such as 'rollout.*' ([a-z_.], up to 96 characters)";
  }
  const kind = pattern.split('.')[0];
  if (pattern !== '*' && !(WEBHOOK_EVENT_KINDS as readonly string[]).includes(kind ?? '')) {
    return `names no known kind of event: ${WEBHOOK_EVENT_KINDS.map((known) => `'${known}.*'`).join(', ')}`;
  }
  return null;
}

export function eventMatches(patterns: readonly string[], type: string): boolean {
  return patterns.some((pattern) => (pattern.endsWith('*') ? type.startsWith(pattern.slice(0, -1)) : type === pattern));
}

/** A pattern as an SQL LIKE pattern (backslash escapes): the same match as eventMatches. */
export function eventPatternToLike(pattern: string): string {
  const exact = pattern.endsWith('*') ? pattern.slice(0, -1) : pattern;
  const escaped = exact.replace(/[\\%_]/g, (character) => `\\${character}`);
  return pattern.endsWith('*') ? `${escaped}%` : escaped;
}

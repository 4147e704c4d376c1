import { type RolloutStatus, UNFINISHED_ROLLOUT_STATUSES } from '@drover/protocol';
import type { OnOverlap } from './dto/rollout.dto';

/** An unfinished rollout (or one with hosts still in flight) acting on some of the same hosts and units. */
export interface Overlap {
  rolloutId: string;
  status: RolloutStatus;
  /** Its place in the order of admission. */
  admissionSeq: bigint;
  hosts: string[];
  units: string[];
  /** Some of the shared hosts are acting or in their health gate right now. */
  inFlight: boolean;
}

/** What admitting a rollout does, given the overlapping rollouts admitted before it. */
export type Admission =
  | { kind: 'start' }
  | { kind: 'queue'; blockers: Overlap[] }
  | { kind: 'reject'; blockers: Overlap[] }
  /** Cancel `cancel` first; start at once unless some of them still have hosts in flight. */
  | { kind: 'supersede'; cancel: Overlap[] };

const NAMED = 3;

export function admit(onOverlap: OnOverlap, overlaps: readonly Overlap[]): Admission {
  if (overlaps.length === 0) return { kind: 'start' };
  if (onOverlap === 'reject') return { kind: 'reject', blockers: [...overlaps] };
  if (onOverlap === 'queue') return { kind: 'queue', blockers: [...overlaps] };
  return {
    kind: 'supersede',
    cancel: overlaps.filter((overlap) => UNFINISHED_ROLLOUT_STATUSES.includes(overlap.status)),
  };
}

/**
 * Whom a queued rollout still waits for: overlapping rollouts admitted before it that have not
 * finished, and any overlapping rollout with hosts in flight (a superseded one finishing its action).
 */
export function blockersOf(admissionSeq: bigint, overlaps: readonly Overlap[]): Overlap[] {
  return overlaps.filter(
    (overlap) =>
      overlap.inFlight || (overlap.admissionSeq < admissionSeq && UNFINISHED_ROLLOUT_STATUSES.includes(overlap.status)),
  );
}

function some(names: readonly string[]): string {
  return names.length > NAMED
    ? `${names.slice(0, NAMED).join(', ')} and ${names.length - NAMED} more`
    : names.join(', ');
}

/** "rollout 1f… (running; nginx.service on web-1, web-2)" */
export function describeOverlap(overlap: Overlap): string {
  const state =
    overlap.inFlight && !UNFINISHED_ROLLOUT_STATUSES.includes(overlap.status)
      ? `${overlap.status}, hosts in flight`
      : overlap.status;
  return `rollout ${overlap.rolloutId} (${state}; ${some(overlap.units)} on ${some(overlap.hosts)})`;
}

export function describeOverlaps(overlaps: readonly Overlap[]): string {
  return overlaps.map(describeOverlap).join('; ');
}

/** What a queued rollout's reason says. */
export function queuedReason(blockers: readonly Overlap[]): string {
  return `queued behind ${describeOverlaps(blockers)}: it starts when ${blockers.length === 1 ? 'that one has' : 'those have'} finished`;
}

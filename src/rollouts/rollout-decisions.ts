/**
 * What a rollout does next, as pure functions. Each takes a plain snapshot of the rollout (read
 * holding its row lock), with what was read on the hosts, and returns a decision: the changes to
 * write, the events to append, and when to look again. The runner and the control service read the
 * snapshot, call these, apply the result under the same lock, and do the I/O (SSH, probes, starting
 * a batch's operation); the unit tests call them with no database and no fleet.
 */
import {
  AUDIT_ACTION,
  type CheckedUnit,
  isActingRollout,
  isUnfinishedRollout,
  type RolloutControl,
  type RolloutEventInput,
  type RolloutHostState,
  type RolloutStatus,
  type UnitBaseline,
  type UnitSnapshot,
} from '@drover/protocol';
import type { RolloutStrategy } from './dto/rollout.dto';
import type { Amount } from './planner';
import { blockersOf, type Overlap, queuedReason } from './rollout-admission';
import {
  baselineOf,
  downFirst,
  failureBudgetExceeded,
  judgeGate,
  nextBatchSize,
  wantedBatchSize,
} from './rollout-rules';

/** How often hosts in their health gate are checked. */
export const GATE_CHECK_INTERVAL_MS = 1_000;
/** How often a step looks at a batch whose tasks run (a task ending wakes it sooner). */
export const ACTING_POLL_MS = 1_000;
/** How often a batch waiting for the availability limit re-checks the fleet. */
export const AVAILABILITY_POLL_MS = 2_000;
/** The soonest a host is checked again (checks take a round trip anyway). */
export const MIN_RECHECK_MS = 20;
/** How often a queued rollout looks at its blockers (the end of one wakes it sooner). */
export const QUEUED_POLL_MS = 5_000;

/** The last health check of a host, as shown to clients (a type, not an interface: it is stored as JSON). */
export type LastCheck = {
  at: string;
  healthy: boolean;
  problems: string[];
  units: Record<string, CheckedUnit>;
};

export interface RolloutView {
  id: string;
  status: RolloutStatus;
  reason: string | null;
  strategy: RolloutStrategy;
  total: number;
  maxFailures: number;
  maxUnavailable: number | null;
  runs: number;
  approvedAt: Date | null;
  approvedBy: string | null;
  nextBatchAt: Date | null;
  deadlineAt: Date | null;
  finishedAt: Date | null;
  admissionSeq: bigint;
  blockedBy: string[];
}

export interface HostView {
  /** The rollout host's id (not the inventory host's). */
  id: string;
  hostId: string | null;
  hostName: string;
  units: string[];
  state: RolloutHostState;
  batch: number | null;
  reason: string | null;
  operationId: string | null;
  gateStartedAt: Date | null;
  healthySince: Date | null;
  baseline: UnitBaseline[] | null;
  lastCheck: LastCheck | null;
  finishedAt: Date | null;
}

export interface BatchView {
  id: string;
  index: number;
  run: number;
  hosts: string[];
  finishedAt: Date | null;
}

/** A rollout as one step sees it: the rollout, its hosts in order, its batches in order, the time. */
export interface RolloutState {
  now: number;
  rollout: RolloutView;
  hosts: HostView[];
  batches: BatchView[];
}

export type RolloutPatch = Partial<
  Pick<
    RolloutView,
    | 'status'
    | 'reason'
    | 'runs'
    | 'approvedAt'
    | 'approvedBy'
    | 'nextBatchAt'
    | 'deadlineAt'
    | 'finishedAt'
    | 'blockedBy'
  >
>;
export type HostPatch = Partial<
  Pick<HostView, 'state' | 'reason' | 'gateStartedAt' | 'healthySince' | 'baseline' | 'lastCheck' | 'finishedAt'>
>;

/** One write of a decision, applied in order under the rollout's lock. */
export type RolloutChange =
  | { kind: 'rollout'; set: RolloutPatch }
  | { kind: 'host'; id: string; set: HostPatch }
  /** Every host of the rollout in one of these states. */
  | { kind: 'hosts'; in: RolloutHostState[]; set: HostPatch }
  | { kind: 'finishBatch'; batchId: string }
  /** Tasks of these operations that no worker took yet end as cancelled. */
  | { kind: 'cancelQueuedTasks'; operationIds: string[]; reason: string }
  /** An audit event in the name of whoever started the rollout. */
  | {
      kind: 'audit';
      action: typeof AUDIT_ACTION.rolloutFinish;
      result: RolloutStatus;
      parameters: { runs: number };
      reason: string | null;
    };

/** The hosts of the next batch, to start if the rollout's token still may act on them. */
export interface BatchProposal {
  hostIds: string[];
  index: number;
  run: number;
  unavailableAtStart: number;
}

export interface Decision {
  /** The snapshot with the changes made: what the next decision of the same locked section sees. */
  state: RolloutState;
  changes: RolloutChange[];
  events: RolloutEventInput[];
  /** When the rollout should take its next step; null when nothing will happen without a wake-up. */
  nextStepInMs: number | null;
  /** The rollout's last host came to rest after it ended: nothing will act again. */
  quiesced: boolean;
  /** Set when this decision ended the rollout. */
  ended?: { status: RolloutStatus; reason: string | null };
  /** A batch may start once the units down right now are counted on the hosts (maxUnavailable). */
  wantsCensus?: boolean;
  /** A batch to start now. */
  proposal?: BatchProposal;
}

/** What one health check of a host found (see the runner's gate reads). */
export interface GateReading {
  /** Problems that fail the gate at once. */
  fatal: string[];
  /** Problems the host may still recover from within the gate's timeout. */
  failing: string[];
  units: Record<string, CheckedUnit>;
  /** Read when this check fails the gate: the unit's status and journal since the gate began. */
  diagnostics?: string | null;
}

/** A task of a batch that ended, as its host's settling needs it. */
export interface EndedTask {
  id: string;
  unit: string | null;
  state: string;
  reason: string | null;
  before: Pick<UnitSnapshot, 'mainPid'> | null;
  after: UnitSnapshot | null;
  diagnostics?: string | null;
}

/** What a step read outside the lock: hosts whose batch tasks all ended, and gate checks by host id. */
export interface StepInput {
  ended: readonly { id: string; tasks: readonly EndedTask[] }[];
  checks: ReadonlyMap<string, GateReading>;
}

/** The gate's baseline of a host: each unit as its task read it right after acting. */
export function baselinesOf(tasks: readonly EndedTask[]): UnitBaseline[] {
  return tasks.flatMap((task) => (task.after && task.unit ? [baselineOf(task.unit, task.after)] : []));
}

function describeTask(task: EndedTask): string {
  return `${task.unit ?? '(host)'}: ${task.state}${task.reason ? ` (${task.reason})` : ''}`;
}

/** A copy of a snapshot that records every change made to it. */
class Draft {
  readonly state: RolloutState;
  readonly changes: RolloutChange[] = [];
  readonly events: RolloutEventInput[] = [];
  ended: Decision['ended'];

  constructor(state: RolloutState) {
    this.state = {
      now: state.now,
      rollout: { ...state.rollout },
      hosts: state.hosts.map((host) => ({ ...host })),
      batches: state.batches.map((batch) => ({ ...batch })),
    };
  }

  get rollout(): RolloutView {
    return this.state.rollout;
  }

  get now(): Date {
    return new Date(this.state.now);
  }

  hosts(states?: readonly RolloutHostState[]): HostView[] {
    return states ? this.state.hosts.filter((host) => states.includes(host.state)) : this.state.hosts;
  }

  host(id: string): HostView | undefined {
    return this.state.hosts.find((host) => host.id === id);
  }

  lastBatch(): BatchView | undefined {
    return this.state.batches[this.state.batches.length - 1];
  }

  batchesOfRun(run: number): BatchView[] {
    return this.state.batches.filter((batch) => batch.run === run);
  }

  setRollout(set: RolloutPatch): void {
    Object.assign(this.state.rollout, set);
    this.changes.push({ kind: 'rollout', set });
  }

  setHost(host: HostView, set: HostPatch): void {
    Object.assign(host, set);
    this.changes.push({ kind: 'host', id: host.id, set });
  }

  setHostsIn(states: RolloutHostState[], set: HostPatch): void {
    for (const host of this.hosts(states)) Object.assign(host, set);
    this.changes.push({ kind: 'hosts', in: states, set });
  }

  finishBatch(batch: BatchView): void {
    batch.finishedAt = this.now;
    this.changes.push({ kind: 'finishBatch', batchId: batch.id });
  }

  event(event: RolloutEventInput): void {
    this.events.push(event);
  }

  decide(next: Omit<Decision, 'state' | 'changes' | 'events' | 'quiesced'> & { quiesced?: boolean }): Decision {
    return {
      state: this.state,
      changes: this.changes,
      events: this.events,
      quiesced: false,
      ...(this.ended ? { ended: this.ended } : {}),
      ...next,
    };
  }
}

/** Ends the rollout: nothing new starts, queued tasks are cancelled, in-flight ones finish. */
function endIn(draft: Draft, status: RolloutStatus, reason: string | null): void {
  draft.setRollout({ status, reason, finishedAt: draft.now, nextBatchAt: null, blockedBy: [] });
  if (status !== 'succeeded') {
    draft.setHostsIn(['pending'], { state: 'cancelled', reason: `not started: the rollout was ${status}` });
    const operationIds = [...new Set(draft.hosts(['acting']).flatMap((host) => host.operationId ?? []))];
    if (operationIds.length > 0) {
      draft.changes.push({ kind: 'cancelQueuedTasks', operationIds, reason: `the rollout was ${status}` });
    }
  }
  draft.event({ type: 'rollout.finished', data: { status, reason } });
  draft.changes.push({
    kind: 'audit',
    action: AUDIT_ACTION.rolloutFinish,
    result: status,
    parameters: { runs: draft.rollout.runs },
    reason,
  });
  draft.ended = { status, reason };
}

/** Ends the rollout with nothing in flight (before a batch it may no longer start). */
export function end(state: RolloutState, status: RolloutStatus, reason: string | null): Decision {
  const draft = new Draft(state);
  endIn(draft, status, reason);
  return draft.decide({ nextStepInMs: null, quiesced: draft.hosts(['acting', 'gating']).length === 0 });
}

/** Hosts acted on but not proven healthy go back to their health gate, without acting again. */
function regateInterrupted(draft: Draft): void {
  const now = draft.now;
  draft.setHostsIn(['interrupted'], {
    state: 'gating',
    reason: null,
    gateStartedAt: now,
    healthySince: null,
    // A lastCheck set means the next check reads the units again: the baseline is as old as the action.
    lastCheck: { at: now.toISOString(), healthy: false, problems: ['not checked since the retry'], units: {} },
    finishedAt: null,
  });
}

export type QueueOutcome = 'started' | 'queued' | 'quiesced' | 'gone';

/**
 * A queued rollout starts once no overlapping rollout admitted before it is unfinished and none
 * has hosts in flight on the shared hosts (first come, first served). Its deadline runs meanwhile.
 */
export function leaveQueue(state: RolloutState, overlaps: readonly Overlap[]): Decision & { outcome: QueueOutcome } {
  const draft = new Draft(state);
  const { rollout } = draft;
  if (rollout.status !== 'queued') return { ...draft.decide({ nextStepInMs: null }), outcome: 'gone' };
  if (rollout.deadlineAt && rollout.deadlineAt.getTime() <= state.now) {
    const reason = `the deadline (${rollout.deadlineAt.toISOString()}) passed while it was ${rollout.reason ?? 'queued'}`;
    endIn(draft, 'aborted', reason);
    return { ...draft.decide({ nextStepInMs: null, quiesced: true }), outcome: 'quiesced' };
  }
  const blockers = blockersOf(rollout.admissionSeq, overlaps);
  if (blockers.length > 0) {
    const blockedBy = blockers.map((blocker) => blocker.rolloutId);
    if (blockedBy.join() !== rollout.blockedBy.join()) {
      const reason = queuedReason(blockers);
      draft.setRollout({ blockedBy, reason });
      draft.event({ type: 'rollout.queued', data: { blockedBy, reason } });
    }
    return { ...draft.decide({ nextStepInMs: QUEUED_POLL_MS }), outcome: 'queued' };
  }
  const waitedFor = rollout.blockedBy;
  draft.setRollout({ status: 'running', reason: null, blockedBy: [] });
  // A retried rollout's hosts that were acted on but not proven healthy are judged again now.
  regateInterrupted(draft);
  draft.event({ type: 'rollout.started', data: { waitedFor } });
  return { ...draft.decide({ nextStepInMs: 0 }), outcome: 'started' };
}

/** A host whose batch tasks all ended moves on: to its health gate, or failed, cancelled, interrupted. */
function hostActed(draft: Draft, host: HostView, tasks: readonly EndedTask[]): void {
  for (const task of tasks) {
    draft.event({
      type: 'task.finished',
      data: {
        host: host.hostName,
        unit: task.unit,
        taskId: task.id,
        state: task.state,
        reason: task.reason,
        mainPidBefore: task.before?.mainPid ?? null,
        mainPidAfter: task.after?.mainPid ?? null,
        ...(task.diagnostics ? { diagnostics: task.diagnostics } : {}),
      },
    });
  }
  const unsuccessful = tasks.filter((task) => task.state !== 'succeeded');
  if (tasks.every((task) => task.state === 'cancelled')) {
    // Its tasks never started (the rollout ended first): nothing was done to this host.
    const reason = tasks.map(describeTask).join('; ');
    draft.setHost(host, { state: 'cancelled', reason, finishedAt: draft.now });
    draft.event({ type: 'host.cancelled', data: { host: host.hostName, batch: host.batch, reason } });
    return;
  }
  if (unsuccessful.length > 0) {
    const reason = unsuccessful.map(describeTask).join('; ');
    draft.setHost(host, { state: 'failed', reason, finishedAt: draft.now });
    draft.event({ type: 'host.failed', data: { host: host.hostName, batch: host.batch, reason } });
    return;
  }
  if (!isActingRollout(draft.rollout.status)) {
    const reason = `acted on, but the rollout was ${draft.rollout.status} before its health gate`;
    draft.setHost(host, { state: 'interrupted', reason, finishedAt: draft.now });
    draft.event({ type: 'host.interrupted', data: { host: host.hostName, reason } });
    return;
  }
  const baseline = baselinesOf(tasks);
  draft.setHost(host, { state: 'gating', gateStartedAt: draft.now, healthySince: null, lastCheck: null, baseline });
  draft.event({ type: 'host.gating', data: { host: host.hostName, batch: host.batch, baseline } });
}

/** Judges one check of a host in its gate. Returns when to check it again, or null when it is done. */
function judge(draft: Draft, host: HostView, check: GateReading): number | null {
  const { now } = draft.state;
  const { healthGate } = draft.rollout.strategy;
  const verdict = judgeGate({
    now,
    gateStartedAt: host.gateStartedAt?.getTime() ?? now,
    healthySince: host.healthySince?.getTime() ?? null,
    minHealthyTimeMs: healthGate.minHealthyTimeMs,
    timeoutMs: healthGate.timeoutMs,
    fatal: check.fatal,
    failing: check.failing,
  });
  const lastCheck: LastCheck = {
    at: new Date(now).toISOString(),
    healthy: verdict.outcome !== 'failed' && check.failing.length === 0,
    problems: [...check.fatal, ...check.failing],
    units: check.units,
  };
  if (verdict.outcome === 'failed') {
    draft.setHost(host, { state: 'failed', reason: verdict.reason, lastCheck, finishedAt: draft.now });
    draft.event({
      type: 'host.failed',
      data: {
        host: host.hostName,
        batch: host.batch,
        reason: verdict.reason,
        ...(check.diagnostics ? { diagnostics: check.diagnostics } : {}),
      },
    });
    return null;
  }
  if (verdict.outcome === 'passed') {
    draft.setHost(host, {
      state: 'succeeded',
      reason: `healthy for ${now - verdict.healthySince} ms`,
      healthySince: new Date(verdict.healthySince),
      lastCheck,
      finishedAt: draft.now,
    });
    draft.event({ type: 'host.succeeded', data: { host: host.hostName, batch: host.batch, units: check.units } });
    return null;
  }
  const previous = host.lastCheck;
  draft.setHost(host, {
    healthySince: verdict.healthySince === null ? null : new Date(verdict.healthySince),
    lastCheck,
  });
  // Every change of the verdict is an event; the same verdict polled again is not.
  if (previous?.healthy !== lastCheck.healthy || previous.problems.join('\n') !== lastCheck.problems.join('\n')) {
    draft.event({
      type: 'gate.check',
      data: { host: host.hostName, healthy: lastCheck.healthy, problems: lastCheck.problems },
    });
  }
  if (verdict.healthySince === null) return GATE_CHECK_INTERVAL_MS;
  const healthyAt = verdict.healthySince + healthGate.minHealthyTimeMs;
  return Math.max(MIN_RECHECK_MS, Math.min(GATE_CHECK_INTERVAL_MS, healthyAt - now));
}

/** A batch whose hosts all ended: record it, and wait for the pause or an approval. */
function closeBatch(draft: Draft, pending: number): void {
  const batch = draft.lastBatch();
  if (!batch || batch.finishedAt !== null) return;
  draft.finishBatch(batch);
  const hosts = draft.hosts().filter((host) => batch.hosts.includes(host.hostName) && host.batch === batch.index);
  draft.event({
    type: 'batch.finished',
    data: {
      index: batch.index,
      run: batch.run,
      succeeded: hosts.filter((host) => host.state === 'succeeded').map((host) => host.hostName),
      failed: hosts.filter((host) => host.state === 'failed').map((host) => host.hostName),
    },
  });
  const { rollout } = draft;
  if (pending === 0 || rollout.status !== 'running') return;
  const canaryDone = batch.index === draft.batchesOfRun(batch.run)[0]?.index;
  if (rollout.strategy.approveAfterCanary && canaryDone && rollout.approvedAt === null) {
    const reason = `the canary batch (${batch.hosts.join(', ')}) is done: approve to continue`;
    draft.setRollout({ status: 'awaiting_approval', reason });
    draft.event({ type: 'rollout.awaiting_approval', data: { reason } });
    return;
  }
  if (rollout.strategy.pauseBetweenBatchesMs > 0) {
    const nextBatchAt = new Date(draft.state.now + rollout.strategy.pauseBetweenBatchesMs);
    draft.setRollout({ nextBatchAt });
    draft.event({ type: 'rollout.pausing_between_batches', data: { until: nextBatchAt.toISOString() } });
  }
}

/**
 * One step of a started rollout: hosts whose tasks ended move on, hosts in their gate are judged,
 * then the failure budget, the deadline, the end of a batch, approval, completion. Returns whether
 * a batch may start (at once, or after counting the units down) and when to look again.
 */
export function advance(state: RolloutState, input: StepInput): Decision {
  const draft = new Draft(state);
  let settled = 0;
  for (const { id, tasks } of input.ended) {
    const host = draft.host(id);
    if (host?.state !== 'acting') continue;
    hostActed(draft, host, tasks);
    settled += 1;
  }
  const gating = draft.hosts(['gating']);
  const wasActing = isActingRollout(draft.rollout.status);
  // A host that just entered its gate is checked at once; one that passes its checks, when its
  // minHealthyTime is up (or sooner, to catch a crash).
  let nextCheckInMs = GATE_CHECK_INTERVAL_MS;
  for (const host of gating) {
    if (!isActingRollout(draft.rollout.status)) {
      const reason = `acted on, but the rollout was ${draft.rollout.status} before its health gate passed`;
      draft.setHost(host, { state: 'interrupted', reason, finishedAt: draft.now });
      draft.event({ type: 'host.interrupted', data: { host: host.hostName, reason } });
      continue;
    }
    const check = input.checks.get(host.id);
    const recheckInMs = check ? judge(draft, host, check) : 0;
    if (recheckInMs !== null) nextCheckInMs = Math.min(nextCheckInMs, recheckInMs);
  }

  const { rollout } = draft;
  if (isActingRollout(rollout.status)) {
    const failed = draft.hosts(['failed']);
    if (failureBudgetExceeded(failed.length, rollout.maxFailures)) {
      const names = failed.map((host) => `${host.hostName} (${host.reason ?? 'failed'})`);
      endIn(
        draft,
        'aborted',
        `${failed.length} host(s) failed, more than maxFailures (${rollout.maxFailures}): ${names.join('; ')}`,
      );
    } else if (rollout.deadlineAt && rollout.deadlineAt.getTime() <= state.now) {
      endIn(draft, 'aborted', `the deadline (${rollout.deadlineAt.toISOString()}) passed`);
    }
  }

  const inFlight = draft.hosts(['acting', 'gating']);
  if (inFlight.length > 0) {
    const gatingNow = inFlight.some((host) => host.state === 'gating');
    return draft.decide({ nextStepInMs: gatingNow ? nextCheckInMs : ACTING_POLL_MS });
  }

  const pending = draft.hosts(['pending']).length;
  closeBatch(draft, pending);
  const status = rollout.status;
  if (status !== 'running') {
    const cameToRest = wasActing || settled > 0 || gating.length > 0;
    return draft.decide({ nextStepInMs: null, quiesced: !isActingRollout(status) && cameToRest });
  }
  if (pending === 0) {
    const failed = draft.hosts(['failed']).length;
    endIn(
      draft,
      'succeeded',
      failed > 0 ? `${failed} host(s) failed, within maxFailures (${rollout.maxFailures})` : null,
    );
    return draft.decide({ nextStepInMs: null, quiesced: true });
  }
  const waitMs = (rollout.nextBatchAt?.getTime() ?? 0) - state.now;
  if (waitMs > 0) return draft.decide({ nextStepInMs: waitMs });
  // Without an availability limit there is nothing to count on the hosts first: plan it now.
  if (rollout.maxUnavailable === null) return planIn(draft, new Set());
  return draft.decide({ nextStepInMs: null, wantsCensus: true });
}

/** The strategy's batch sizes in one form: `sizes`, or the single `size` repeated. */
function batchSizesOf(rollout: RolloutView): Amount[] {
  return rollout.strategy.batches.sizes ?? [rollout.strategy.batches.size ?? 1];
}

function planIn(draft: Draft, down: ReadonlySet<string>): Decision {
  const { rollout } = draft;
  if (rollout.status !== 'running' || (rollout.nextBatchAt?.getTime() ?? 0) > draft.state.now) {
    return draft.decide({ nextStepInMs: ACTING_POLL_MS });
  }
  if (draft.hosts(['acting', 'gating']).length > 0) return draft.decide({ nextStepInMs: ACTING_POLL_MS });
  // Hosts whose unit is down already go first: acting on them cannot take anything more down.
  const pending = downFirst(draft.hosts(['pending']), (host) => down.has(host.id));
  const downNow = draft.hosts().filter((host) => down.has(host.id)).length;
  const size = nextBatchSize({
    sizes: batchSizesOf(rollout),
    batchOfRun: draft.batchesOfRun(rollout.runs).length,
    total: rollout.total,
    remaining: pending.length,
    maxUnavailable: rollout.maxUnavailable,
    downNow,
    downPending: pending.filter((host) => down.has(host.id)).length,
  });
  if (size === 0) {
    const reason =
      `waiting: maxUnavailable allows ${rollout.maxUnavailable} host(s) down at once and ${downNow} ` +
      `already are; the next batch starts when units come back`;
    if (rollout.reason !== reason) {
      draft.setRollout({ reason });
      draft.event({ type: 'rollout.waiting', data: { reason, downNow } });
    }
    return draft.decide({ nextStepInMs: AVAILABILITY_POLL_MS });
  }
  return draft.decide({
    nextStepInMs: ACTING_POLL_MS,
    proposal: {
      hostIds: pending.slice(0, size).map((host) => host.id),
      index: (draft.lastBatch()?.index ?? -1) + 1,
      run: rollout.runs,
      unavailableAtStart: downNow,
    },
  });
}

/**
 * The next batch, given which of the rollout's hosts have a unit down right now (by rollout host
 * id): its hosts, or why it waits.
 */
export function planBatch(state: RolloutState, down: ReadonlySet<string>): Decision {
  return planIn(new Draft(state), down);
}

/** The proposed batch started as operation `operationId`. */
export function batchStarted(state: RolloutState, proposal: BatchProposal, operationId: string): Decision {
  const draft = new Draft(state);
  if (draft.rollout.reason?.startsWith('waiting:')) draft.setRollout({ reason: null });
  const names = new Map(draft.hosts().map((host) => [host.id, host.hostName]));
  draft.event({
    type: 'batch.started',
    data: {
      index: proposal.index,
      run: proposal.run,
      hosts: proposal.hostIds.map((id) => names.get(id) ?? id),
      unavailableAtStart: proposal.unavailableAtStart,
      operationId,
    },
  });
  return draft.decide({ nextStepInMs: ACTING_POLL_MS });
}

/**
 * The hosts (rollout host ids) the batch after `started` will most likely take: the next pending
 * ones in order, as many as the strategy's next size. A guess, for connecting ahead only: a unit
 * down or an availability limit may pick others when that batch is planned.
 */
export function likelyNextBatch(state: RolloutState, started: BatchProposal): string[] {
  const { rollout } = state;
  const earlier = state.batches.filter((batch) => batch.run === started.run && batch.index !== started.index);
  const size = wantedBatchSize(batchSizesOf(rollout), earlier.length + 1, rollout.total);
  return state.hosts
    .filter((host) => host.state === 'pending' && !started.hostIds.includes(host.id))
    .slice(0, size)
    .map((host) => host.id);
}

/** The proposed batch may not start: the rollout's token may no longer act on its hosts. */
export function batchRefused(state: RolloutState, proposal: BatchProposal, problem: string): Decision {
  return end(state, 'aborted', `stopped before batch ${proposal.index}: ${problem}`);
}

export interface ControlInput {
  /** The name of the token asking. */
  by: string;
  reason?: string | undefined;
  /** Retry only: the overlapping rollouts admitted since, which it queues behind. */
  blockers?: readonly Overlap[];
}

/**
 * Pause, resume, approve, cancel and retry, as the rollout's state allows: the decision, or why the
 * action is refused. (Who may ask, and whether the rollout may still act, is the caller's to check.)
 */
export function control(
  state: RolloutState,
  action: RolloutControl,
  input: ControlInput,
): Decision | { refused: string } {
  const draft = new Draft(state);
  const decided = changeBy(draft, action, input);
  if ('refused' in decided) return decided;
  const { status, blockedBy } = draft.rollout;
  draft.event({
    type: CONTROL_EVENTS[action],
    data: { by: input.by, reason: input.reason ?? null, status, ...(status === 'queued' ? { blockedBy } : {}) },
  });
  return { ...decided, events: draft.events };
}

const CONTROL_EVENTS = {
  pause: 'rollout.paused',
  resume: 'rollout.resumed',
  approve: 'rollout.approved',
  cancel: 'rollout.finished',
  retry: 'rollout.retried',
} as const satisfies Record<RolloutControl, RolloutEventInput['type']>;

function changeBy(draft: Draft, action: RolloutControl, input: ControlInput): Decision | { refused: string } {
  const state = draft.state;
  const { rollout } = draft;
  const by = `by ${input.by}${input.reason ? `: ${input.reason}` : ''}`;
  switch (action) {
    case 'pause':
      if (rollout.status !== 'running') return { refused: `it is ${rollout.status}` };
      draft.setRollout({ status: 'paused', reason: `paused ${by}` });
      return draft.decide({ nextStepInMs: 0 });
    case 'resume':
      if (rollout.status !== 'paused') {
        return {
          refused:
            rollout.status === 'awaiting_approval' ? 'it awaits approval (approve it)' : `it is ${rollout.status}`,
        };
      }
      draft.setRollout({ status: 'running', reason: null });
      return draft.decide({ nextStepInMs: 0 });
    case 'approve': {
      const early = rollout.status === 'running' && rollout.strategy.approveAfterCanary && rollout.approvedAt === null;
      if (rollout.status !== 'awaiting_approval' && !early) {
        return { refused: `it is ${rollout.status} and awaits no approval` };
      }
      draft.setRollout({ status: 'running', reason: null, approvedAt: draft.now, approvedBy: input.by });
      return draft.decide({ nextStepInMs: 0 });
    }
    case 'cancel': {
      if (!isUnfinishedRollout(rollout.status)) {
        return { refused: `it already ended ${rollout.status}` };
      }
      cancelIn(draft, `cancelled ${by}`);
      // With hosts in flight, the step that sees the last of them end reports it came to rest.
      return draft.decide({ nextStepInMs: 0, quiesced: draft.hosts(['acting', 'gating']).length === 0 });
    }
    case 'retry': {
      if (isUnfinishedRollout(rollout.status)) return { refused: `it is ${rollout.status}` };
      if (draft.hosts(['failed', 'cancelled', 'interrupted']).length === 0) {
        return { refused: 'every host already succeeded' };
      }
      if (draft.hosts(['acting']).length > 0)
        return { refused: 'tasks of its last batch still run; retry once they end' };
      const blockers = input.blockers ?? [];
      // Done hosts stay done; hosts acted on but not yet proven healthy are checked, not acted on
      // again (once it runs: a queued rollout's gate would hold units its blockers act on).
      if (blockers.length === 0) regateInterrupted(draft);
      draft.setHostsIn(['failed', 'cancelled'], { state: 'pending', reason: null, finishedAt: null });
      const { deadlineMs } = rollout.strategy;
      draft.setRollout({
        status: blockers.length > 0 ? 'queued' : 'running',
        reason: blockers.length > 0 ? queuedReason(blockers) : null,
        blockedBy: blockers.map((blocker) => blocker.rolloutId),
        runs: rollout.runs + 1,
        finishedAt: null,
        nextBatchAt: null,
        approvedAt: null,
        approvedBy: null,
        deadlineAt: deadlineMs === undefined ? null : new Date(state.now + deadlineMs),
      });
      return draft.decide({ nextStepInMs: 0 });
    }
  }
}

/**
 * Ends the rollout as cancelled: hosts not started are cancelled, tasks no worker took yet too;
 * tasks running finish (their hosts are then interrupted, not gated).
 */
function cancelIn(draft: Draft, reason: string): void {
  draft.setRollout({ status: 'cancelled', reason, finishedAt: draft.now, nextBatchAt: null, blockedBy: [] });
  draft.setHostsIn(['pending'], { state: 'cancelled', reason: 'not started: the rollout was cancelled' });
  const operationIds = [...new Set(draft.hosts(['acting']).flatMap((host) => host.operationId ?? []))];
  if (operationIds.length > 0) {
    draft.changes.push({ kind: 'cancelQueuedTasks', operationIds, reason: `the rollout was ${reason}` });
  }
}

/** A rollout cancelled because a new one supersedes it. */
export function supersede(state: RolloutState, reason: string, supersededBy: string): Decision {
  const draft = new Draft(state);
  cancelIn(draft, reason);
  draft.event({ type: 'rollout.finished', data: { status: 'cancelled', reason, supersededBy } });
  return draft.decide({ nextStepInMs: 0, quiesced: draft.hosts(['acting', 'gating']).length === 0 });
}

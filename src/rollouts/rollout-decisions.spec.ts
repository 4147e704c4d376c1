import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RolloutHostState, UnitSnapshot } from '@drover/protocol';
import { unitSnapshot } from '../../test/factories/unit-snapshot.factory';
import { rolloutStrategySchema } from './dto/rollout.dto';
import type { Overlap } from './rollout-admission';
import {
  advance,
  AVAILABILITY_POLL_MS,
  batchRefused,
  batchStarted,
  control,
  type Decision,
  type GateReading,
  type HostView,
  leaveQueue,
  likelyNextBatch,
  planBatch,
  QUEUED_POLL_MS,
  type RolloutState,
  type StepInput,
} from './rollout-decisions';

const T0 = Date.parse('2026-12-01T12:00:00.000Z');
const NOTHING: StepInput = { ended: [], checks: new Map() };
const HEALTHY: GateReading = { fatal: [], failing: [], units: {} };

function strategy(overrides: Record<string, unknown> = {}) {
  return rolloutStrategySchema.parse({
    unit: 'nginx.service',
    selector: '',
    healthGate: { minHealthyTimeMs: 0, timeoutMs: 5_000 },
    ...overrides,
  });
}

function host(name: string, state: RolloutHostState = 'pending', batch: number | null = null): HostView {
  const acted = state !== 'pending';
  return {
    id: `id-${name}`,
    hostId: `inventory-${name}`,
    hostName: name,
    units: ['nginx.service'],
    state,
    batch,
    reason: null,
    operationId: acted ? `op-${batch ?? 0}` : null,
    gateStartedAt: state === 'gating' ? new Date(T0 - 100) : null,
    healthySince: null,
    baseline:
      state === 'gating'
        ? [{ unit: 'nginx.service', activeState: 'active', subState: 'running', mainPid: 10, nRestarts: 0 }]
        : null,
    lastCheck: null,
    finishedAt: null,
  };
}

/** A running rollout of web-1..web-N, in order; `hosts` overrides them by name. */
function rolloutState(
  options: {
    count?: number;
    hosts?: HostView[];
    batches?: RolloutState['batches'];
    strategy?: Record<string, unknown>;
    rollout?: Partial<RolloutState['rollout']>;
    now?: number;
  } = {},
): RolloutState {
  const count = options.count ?? 4;
  const given = new Map((options.hosts ?? []).map((entry) => [entry.hostName, entry]));
  const hosts = Array.from({ length: count }, (_, index) => {
    const name = `web-${index + 1}`;
    return given.get(name) ?? host(name);
  });
  return {
    now: options.now ?? T0,
    rollout: {
      id: 'r1',
      status: 'running',
      reason: null,
      strategy: strategy(options.strategy),
      total: count,
      maxFailures: 0,
      maxUnavailable: null,
      runs: 1,
      approvedAt: null,
      approvedBy: null,
      nextBatchAt: null,
      deadlineAt: null,
      finishedAt: null,
      admissionSeq: 5n,
      blockedBy: [],
      ...options.rollout,
    },
    hosts,
    batches: options.batches ?? [],
  };
}

function batch(index: number, hosts: string[], run = 1, finished = false) {
  return { id: `b${index}`, index, run, hosts, finishedAt: finished ? new Date(T0 - 1_000) : null };
}

/** A running rollout acting on nginx.service on web-1 too. */
function overlap(rolloutId: string, admissionSeq: bigint, inFlight: boolean): Overlap {
  return { rolloutId, status: 'running', admissionSeq, hosts: ['web-1'], units: ['nginx.service'], inFlight };
}

function eventTypes(decision: Decision): string[] {
  return decision.events.map((event) => event.type);
}

function stateOf(state: RolloutState, name: string): RolloutHostState | undefined {
  return state.hosts.find((entry) => entry.hostName === name)?.state;
}

function decided(result: Decision | { refused: string }): Decision {
  if ('refused' in result) assert.fail(`refused: ${result.refused}`);
  return result;
}

/** The canary (web-1) in its gate, checked healthy now. */
function canaryHealthy(options: Parameters<typeof rolloutState>[0] = {}) {
  const state = rolloutState({ hosts: [host('web-1', 'gating', 0)], batches: [batch(0, ['web-1'])], ...options });
  return advance(state, { ended: [], checks: new Map([['id-web-1', HEALTHY]]) });
}

function snapshot(mainPid: number): UnitSnapshot {
  return unitSnapshot({ mainPid });
}

describe('advance: batches, gates and completion', () => {
  it('plans the first batch of a fresh rollout without a census when nothing limits availability', () => {
    const decision = advance(rolloutState({ strategy: { batches: { sizes: [1, 2] } } }), NOTHING);
    assert.deepEqual(decision.proposal, { hostIds: ['id-web-1'], index: 0, run: 1, unavailableAtStart: 0 });
    assert.equal(decision.wantsCensus, undefined);
    assert.deepEqual(decision.changes, []);
  });

  it('takes a host whose tasks succeeded into its gate and judges it in the same step', () => {
    const state = rolloutState({ hosts: [host('web-1', 'acting', 0)], batches: [batch(0, ['web-1'])] });
    const decision = advance(state, {
      ended: [
        {
          id: 'id-web-1',
          tasks: [
            {
              id: 't1',
              unit: 'nginx.service',
              state: 'succeeded',
              reason: null,
              before: { mainPid: 10 },
              after: snapshot(11),
            },
          ],
        },
      ],
      checks: new Map([['id-web-1', HEALTHY]]),
    });
    assert.deepEqual(eventTypes(decision).slice(0, 4), [
      'task.finished',
      'host.gating',
      'host.succeeded',
      'batch.finished',
    ]);
    assert.equal(stateOf(decision.state, 'web-1'), 'succeeded');
    assert.deepEqual(decision.state.hosts[0]!.baseline, [
      { unit: 'nginx.service', activeState: 'active', subState: 'running', mainPid: 11, nRestarts: 0 },
    ]);
    // The next host's batch follows at once.
    assert.deepEqual(decision.proposal?.hostIds, ['id-web-2']);
    // The input snapshot is left as it was.
    assert.equal(state.hosts[0]!.state, 'acting');
    assert.equal(state.batches[0]!.finishedAt, null);
  });

  it('fails a host whose task failed, and cancels one whose tasks never started', () => {
    const state = rolloutState({
      hosts: [host('web-1', 'acting', 0), host('web-2', 'acting', 0)],
      batches: [batch(0, ['web-1', 'web-2'])],
      rollout: { maxFailures: 5 },
    });
    const task = { unit: 'nginx.service', before: null, after: null };
    const decision = advance(state, {
      ended: [
        { id: 'id-web-1', tasks: [{ ...task, id: 't1', state: 'failed', reason: 'exit 1' }] },
        { id: 'id-web-2', tasks: [{ ...task, id: 't2', state: 'cancelled', reason: null }] },
      ],
      checks: new Map(),
    });
    assert.equal(stateOf(decision.state, 'web-1'), 'failed');
    assert.equal(decision.state.hosts[0]!.reason, 'nginx.service: failed (exit 1)');
    assert.equal(stateOf(decision.state, 'web-2'), 'cancelled');
  });

  it('waits for a host in its gate until it has been healthy for minHealthyTime', () => {
    const state = rolloutState({
      hosts: [host('web-1', 'gating', 0)],
      batches: [batch(0, ['web-1'])],
      strategy: { healthGate: { minHealthyTimeMs: 500, timeoutMs: 5_000 } },
    });
    const first = advance(state, { ended: [], checks: new Map([['id-web-1', HEALTHY]]) });
    assert.equal(stateOf(first.state, 'web-1'), 'gating');
    assert.equal(first.nextStepInMs, 500);
    assert.deepEqual(eventTypes(first), ['gate.check']);
    const later = advance({ ...first.state, now: T0 + 200 }, { ended: [], checks: new Map([['id-web-1', HEALTHY]]) });
    assert.deepEqual(eventTypes(later), [], 'the same verdict polled again is no event');
    assert.equal(later.nextStepInMs, 300);
    const done = advance({ ...later.state, now: T0 + 500 }, { ended: [], checks: new Map([['id-web-1', HEALTHY]]) });
    assert.equal(stateOf(done.state, 'web-1'), 'succeeded');
  });

  it('succeeds once every host is done, naming failures within the budget', () => {
    const hosts = [host('web-1', 'succeeded', 0), host('web-2', 'failed', 1), host('web-3', 'gating', 2)];
    const state = rolloutState({
      count: 3,
      hosts,
      batches: [batch(0, ['web-1'], 1, true), batch(1, ['web-2'], 1, true), batch(2, ['web-3'])],
      rollout: { maxFailures: 1 },
    });
    const decision = advance(state, { ended: [], checks: new Map([['id-web-3', HEALTHY]]) });
    assert.equal(decision.state.rollout.status, 'succeeded');
    assert.equal(decision.state.rollout.reason, '1 host(s) failed, within maxFailures (1)');
    assert.equal(decision.quiesced, true);
    assert.deepEqual(decision.ended, { status: 'succeeded', reason: '1 host(s) failed, within maxFailures (1)' });
    assert.ok(decision.changes.some((change) => change.kind === 'audit' && change.result === 'succeeded'));
  });

  it('pauses between batches, then plans the next one when the pause is over', () => {
    const decision = canaryHealthy({ strategy: { pauseBetweenBatchesMs: 30_000 } });
    assert.equal(decision.nextStepInMs, 30_000);
    assert.equal(decision.proposal, undefined);
    assert.equal(decision.events.at(-1)?.type, 'rollout.pausing_between_batches');
    assert.equal(advance({ ...decision.state, now: T0 + 29_999 }, NOTHING).nextStepInMs, 1);
    assert.deepEqual(advance({ ...decision.state, now: T0 + 30_000 }, NOTHING).proposal?.hostIds, ['id-web-2']);
  });
});

describe('likelyNextBatch: whom to connect to ahead', () => {
  it('guesses the pending hosts the batch after the one just started takes, by the next size', () => {
    const state = rolloutState({ count: 10, strategy: { batches: { sizes: [1, '30%'] } } });
    const canary = advance(state, NOTHING).proposal;
    assert.ok(canary);
    assert.deepEqual(likelyNextBatch(state, canary), ['id-web-2', 'id-web-3', 'id-web-4']);
  });

  it('counts the batches of the run started before, whether or not the started one is among them', () => {
    const sizes = { batches: { sizes: [1, 2, 4] } };
    const hosts = [host('web-1', 'succeeded', 0), host('web-2', 'acting', 1), host('web-3', 'acting', 1)];
    const second = { hostIds: ['id-web-2', 'id-web-3'], index: 1, run: 1, unavailableAtStart: 0 };
    const without = rolloutState({ count: 10, hosts, strategy: sizes, batches: [batch(0, ['web-1'], 1, true)] });
    const withIt = { ...without, batches: [...without.batches, batch(1, ['web-2', 'web-3'])] };
    const expected = ['id-web-4', 'id-web-5', 'id-web-6', 'id-web-7'];
    assert.deepEqual(likelyNextBatch(without, second), expected);
    assert.deepEqual(likelyNextBatch(withIt, second), expected);
  });

  it('is empty when the started batch takes the last pending hosts', () => {
    const last = { hostIds: ['id-web-2', 'id-web-3'], index: 1, run: 1, unavailableAtStart: 0 };
    const after = rolloutState({
      count: 3,
      hosts: [host('web-1', 'succeeded', 0)],
      strategy: { batches: { sizes: [1, 2] } },
      batches: [batch(0, ['web-1'], 1, true)],
    });
    assert.deepEqual(likelyNextBatch(after, last), []);
  });
});

describe('approval after the canary', () => {
  it('waits for approval after the first batch only, then goes on with the next sizes', () => {
    const canary = canaryHealthy({ strategy: { approveAfterCanary: true, batches: { sizes: [1, 2] } } });
    assert.equal(canary.state.rollout.status, 'awaiting_approval');
    assert.equal(canary.state.rollout.reason, 'the canary batch (web-1) is done: approve to continue');
    assert.deepEqual(eventTypes(canary).slice(-1), ['rollout.awaiting_approval']);
    assert.equal(canary.nextStepInMs, null);
    assert.equal(canary.quiesced, false);
    assert.equal(advance(canary.state, NOTHING).proposal, undefined, 'nothing starts while it awaits approval');

    assert.deepEqual(control(canary.state, 'resume', { by: 'ops' }), { refused: 'it awaits approval (approve it)' });
    const approved = decided(control(canary.state, 'approve', { by: 'ops' }));
    assert.equal(approved.state.rollout.status, 'running');
    assert.equal(approved.state.rollout.approvedBy, 'ops');
    assert.equal(approved.events[0]?.type, 'rollout.approved');

    const next = advance(approved.state, NOTHING);
    assert.deepEqual(next.proposal, { hostIds: ['id-web-2', 'id-web-3'], index: 1, run: 1, unavailableAtStart: 0 });
  });

  it('does not ask again after a later batch of the same run', () => {
    const state = rolloutState({
      hosts: [host('web-1', 'succeeded', 0), host('web-2', 'gating', 1)],
      batches: [batch(0, ['web-1'], 1, true), batch(1, ['web-2'])],
      strategy: { approveAfterCanary: true },
      rollout: { approvedAt: new Date(T0 - 5_000), approvedBy: 'ops' },
    });
    const decision = advance(state, { ended: [], checks: new Map([['id-web-2', HEALTHY]]) });
    assert.equal(decision.state.rollout.status, 'running');
    assert.deepEqual(decision.proposal?.hostIds, ['id-web-3']);
  });

  it('may be approved early, while the canary runs; nothing else can be approved', () => {
    const state = rolloutState({ strategy: { approveAfterCanary: true } });
    assert.equal(decided(control(state, 'approve', { by: 'ops' })).state.rollout.status, 'running');
    assert.deepEqual(control(rolloutState(), 'approve', { by: 'ops' }), {
      refused: 'it is running and awaits no approval',
    });
  });
});

describe('pause and resume', () => {
  it('judges hosts in flight while paused but starts nothing new, then goes on when resumed', () => {
    const running = rolloutState({ hosts: [host('web-1', 'gating', 0)], batches: [batch(0, ['web-1'])] });
    const paused = decided(control(running, 'pause', { by: 'ops', reason: 'lunch' }));
    assert.equal(paused.state.rollout.status, 'paused');
    assert.equal(paused.state.rollout.reason, 'paused by ops: lunch');
    assert.deepEqual(paused.events, [
      { type: 'rollout.paused', data: { by: 'ops', reason: 'lunch', status: 'paused' } },
    ]);

    const step = advance(paused.state, { ended: [], checks: new Map([['id-web-1', HEALTHY]]) });
    assert.equal(stateOf(step.state, 'web-1'), 'succeeded');
    assert.equal(step.proposal, undefined);
    assert.equal(step.nextStepInMs, null);
    assert.equal(step.quiesced, false, 'a paused rollout has not ended');

    assert.deepEqual(control(running, 'resume', { by: 'ops' }), { refused: 'it is running' });
    assert.deepEqual(control(step.state, 'pause', { by: 'ops' }), { refused: 'it is paused' });
    const resumed = decided(control(step.state, 'resume', { by: 'ops' }));
    assert.equal(resumed.state.rollout.status, 'running');
    assert.deepEqual(advance(resumed.state, NOTHING).proposal?.hostIds, ['id-web-2']);
  });
});

describe('the failure budget (maxFailures)', () => {
  const crashed: GateReading = {
    fatal: ['nginx.service main process changed (MainPID 10 → 12)'],
    failing: [],
    units: {},
  };

  it('aborts when failures exceed it: pending hosts are cancelled, queued tasks too, and it is audited', () => {
    const state = rolloutState({
      hosts: [host('web-1', 'gating', 0), host('web-2', 'acting', 0)],
      batches: [batch(0, ['web-1', 'web-2'])],
    });
    const decision = advance(state, { ended: [], checks: new Map([['id-web-1', crashed]]) });
    assert.equal(decision.state.rollout.status, 'aborted');
    assert.equal(
      decision.state.rollout.reason,
      '1 host(s) failed, more than maxFailures (0): web-1 (health gate: nginx.service main process changed (MainPID 10 → 12))',
    );
    assert.deepEqual(
      decision.state.hosts.map((entry) => entry.state),
      ['failed', 'acting', 'cancelled', 'cancelled'],
    );
    assert.deepEqual(
      decision.changes.filter((change) => change.kind === 'cancelQueuedTasks'),
      [{ kind: 'cancelQueuedTasks', operationIds: ['op-0'], reason: 'the rollout was aborted' }],
    );
    assert.deepEqual(eventTypes(decision), ['host.failed', 'rollout.finished']);
    // web-2 still acts: the rollout comes to rest only when it ends.
    assert.equal(decision.quiesced, false);
    assert.equal(decision.nextStepInMs, 1_000);

    const rest = advance(decision.state, {
      ended: [
        {
          id: 'id-web-2',
          tasks: [
            { id: 't2', unit: 'nginx.service', state: 'succeeded', reason: null, before: null, after: snapshot(20) },
          ],
        },
      ],
      checks: new Map(),
    });
    assert.equal(stateOf(rest.state, 'web-2'), 'interrupted', 'acted on after the end: not gated');
    assert.equal(rest.quiesced, true);
    assert.equal(rest.proposal, undefined);
  });

  it('tolerates maxFailures failures and goes on', () => {
    const state = rolloutState({
      hosts: [host('web-1', 'gating', 0)],
      batches: [batch(0, ['web-1'])],
      rollout: { maxFailures: 1 },
    });
    const decision = advance(state, { ended: [], checks: new Map([['id-web-1', crashed]]) });
    assert.equal(decision.state.rollout.status, 'running');
    assert.deepEqual(decision.proposal?.hostIds, ['id-web-2']);
  });

  it('fails a host that is not healthy within its gate timeout', () => {
    const state = rolloutState({
      hosts: [host('web-1', 'gating', 0)],
      batches: [batch(0, ['web-1'])],
      rollout: { maxFailures: 3 },
      now: T0 + 5_000,
    });
    const failing: GateReading = { fatal: [], failing: ['http :80/ answered 502, expected 200'], units: {} };
    const decision = advance(state, { ended: [], checks: new Map([['id-web-1', failing]]) });
    assert.equal(stateOf(decision.state, 'web-1'), 'failed');
    assert.match(decision.state.hosts[0]!.reason!, /not healthy within 5000 ms: http :80\/ answered 502/);
  });
});

describe('the availability budget (maxUnavailable)', () => {
  const limited = { rollout: { maxUnavailable: 2 }, strategy: { batches: { size: 2 } } };

  /** web-3 and web-4 done in batch 0 (their units may have gone down since). */
  const halfDone = () =>
    rolloutState({
      ...limited,
      hosts: [host('web-3', 'succeeded', 0), host('web-4', 'succeeded', 0)],
      batches: [batch(0, ['web-3', 'web-4'], 1, true)],
    });

  it('asks for a census before a batch, then cuts the batch to what the budget leaves', () => {
    const first = advance(halfDone(), NOTHING);
    assert.equal(first.wantsCensus, true);
    assert.equal(first.proposal, undefined);
    const decision = planBatch(first.state, new Set(['id-web-4']));
    assert.deepEqual(decision.proposal, { hostIds: ['id-web-1'], index: 1, run: 1, unavailableAtStart: 1 });
  });

  it('waits while the budget is spent, says so once, and clears the reason when a batch starts', () => {
    const state = halfDone();
    const waiting = planBatch(state, new Set(['id-web-3', 'id-web-4']));
    assert.equal(waiting.proposal, undefined);
    assert.equal(waiting.nextStepInMs, AVAILABILITY_POLL_MS);
    const reason =
      'waiting: maxUnavailable allows 2 host(s) down at once and 2 already are; the next batch starts when units come back';
    assert.equal(waiting.state.rollout.reason, reason);
    assert.deepEqual(waiting.events, [{ type: 'rollout.waiting', data: { reason, downNow: 2 } }]);
    assert.deepEqual(planBatch(waiting.state, new Set(['id-web-3', 'id-web-4'])).events, [], 'said once');

    const room = planBatch(waiting.state, new Set());
    assert.deepEqual(room.proposal?.hostIds, ['id-web-1', 'id-web-2']);
    const started = batchStarted(room.state, room.proposal, 'op-9');
    assert.equal(started.state.rollout.reason, null);
    assert.deepEqual(started.events, [
      {
        type: 'batch.started',
        data: { index: 1, run: 1, hosts: ['web-1', 'web-2'], unavailableAtStart: 0, operationId: 'op-9' },
      },
    ]);
  });

  it('acts first on hosts whose unit is already down, without counting them twice', () => {
    // maxUnavailable 1 and web-3 down: waiting for it to come back would wait forever.
    const one = rolloutState({ rollout: { maxUnavailable: 1 }, strategy: { batches: { size: 2 } } });
    const first = planBatch(one, new Set(['id-web-3']));
    assert.deepEqual(first.proposal, { hostIds: ['id-web-3'], index: 0, run: 1, unavailableAtStart: 1 });
    assert.deepEqual(first.events, []);
    // With room for one more, the down host and the first up host.
    const two = planBatch(rolloutState(limited), new Set(['id-web-3']));
    assert.deepEqual(two.proposal?.hostIds, ['id-web-3', 'id-web-1']);
    // A host down that this rollout is done with (failed) still takes room: only down hosts left may go.
    const failed = rolloutState({
      hosts: [host('web-1', 'failed', 0)],
      batches: [batch(0, ['web-1'], 1, true)],
      rollout: { maxUnavailable: 1, maxFailures: 1 },
    });
    assert.equal(planBatch(failed, new Set(['id-web-1'])).proposal, undefined);
    assert.deepEqual(planBatch(failed, new Set(['id-web-1', 'id-web-4'])).proposal?.hostIds, ['id-web-4']);
  });

  it('plans nothing while a batch is in flight or the rollout is not running', () => {
    const inFlight = rolloutState({ ...limited, hosts: [host('web-1', 'acting', 0)], batches: [batch(0, ['web-1'])] });
    assert.equal(planBatch(inFlight, new Set()).proposal, undefined);
    const paused = rolloutState({ ...limited, rollout: { maxUnavailable: 2, status: 'paused' } });
    assert.equal(planBatch(paused, new Set()).proposal, undefined);
  });

  it('aborts before a batch its token may no longer start', () => {
    const decision = planBatch(rolloutState(limited), new Set());
    const refused = batchRefused(decision.state, decision.proposal!, "its token 'ci' was revoked");
    assert.equal(refused.state.rollout.status, 'aborted');
    assert.equal(refused.state.rollout.reason, "stopped before batch 0: its token 'ci' was revoked");
    assert.equal(refused.quiesced, true);
    assert.ok(refused.state.hosts.every((entry) => entry.state === 'cancelled'));
  });
});

describe('the deadline', () => {
  it('aborts a running rollout once its deadline passed', () => {
    const deadlineAt = new Date(T0);
    const state = rolloutState({
      hosts: [host('web-1', 'succeeded', 0)],
      batches: [batch(0, ['web-1'], 1, true)],
      rollout: { deadlineAt },
    });
    const decision = advance(state, NOTHING);
    assert.equal(decision.state.rollout.status, 'aborted');
    assert.equal(decision.state.rollout.reason, 'the deadline (2026-12-01T12:00:00.000Z) passed');
    assert.equal(decision.quiesced, true);
    assert.equal(decision.proposal, undefined);
    assert.equal(advance({ ...state, now: T0 - 1 }, NOTHING).state.rollout.status, 'running');
  });

  it('aborts a queued rollout whose deadline passed while it waited', () => {
    const state = rolloutState({
      rollout: {
        status: 'queued',
        reason: 'queued behind rollout r0',
        blockedBy: ['r0'],
        deadlineAt: new Date(T0 - 1),
      },
    });
    const decision = leaveQueue(state, []);
    assert.equal(decision.outcome, 'quiesced');
    assert.equal(
      decision.state.rollout.reason,
      'the deadline (2026-12-01T11:59:59.999Z) passed while it was queued behind rollout r0',
    );
  });
});

describe('the queue', () => {
  const blocker = overlap('r0', 4n, true);

  it('stays queued behind a rollout admitted before it, and starts once there is none', () => {
    const state = rolloutState({ rollout: { status: 'queued', blockedBy: ['r0'], reason: 'queued' } });
    const queued = leaveQueue(state, [blocker]);
    assert.equal(queued.outcome, 'queued');
    assert.equal(queued.nextStepInMs, QUEUED_POLL_MS);
    assert.deepEqual(queued.events, [], 'the same blockers are no event');
    const started = leaveQueue(state, []);
    assert.equal(started.outcome, 'started');
    assert.deepEqual(started.events, [{ type: 'rollout.started', data: { waitedFor: ['r0'] } }]);
    assert.equal(started.state.rollout.status, 'running');
  });
});

describe('retry', () => {
  const aborted = () =>
    rolloutState({
      hosts: [
        host('web-1', 'succeeded', 0),
        host('web-2', 'failed', 1),
        host('web-3', 'interrupted', 1),
        host('web-4', 'cancelled'),
      ],
      batches: [batch(0, ['web-1'], 1, true), batch(1, ['web-2', 'web-3'], 1, true)],
      strategy: { approveAfterCanary: true, batches: { sizes: [1, 2] }, deadlineMs: 60_000 },
      rollout: {
        status: 'aborted',
        reason: 'x',
        approvedAt: new Date(T0 - 9_000),
        approvedBy: 'ops',
        finishedAt: new Date(T0),
      },
    });

  it('acts again on failed and cancelled hosts, re-checks interrupted ones, and starts a new run', () => {
    const retried = decided(control(aborted(), 'retry', { by: 'ops' }));
    const { rollout } = retried.state;
    assert.deepEqual(
      [rollout.status, rollout.runs, rollout.approvedAt, rollout.finishedAt, rollout.deadlineAt?.getTime()],
      ['running', 2, null, null, T0 + 60_000],
    );
    assert.deepEqual(
      retried.state.hosts.map((entry) => entry.state),
      ['succeeded', 'pending', 'gating', 'pending'],
    );
    assert.equal(retried.state.hosts[2]!.lastCheck?.problems[0], 'not checked since the retry');
    assert.equal(retried.events[0]?.type, 'rollout.retried');

    // web-3 is judged first; then the new run's canary (its first size), which needs approval again.
    const judged = advance(retried.state, { ended: [], checks: new Map([['id-web-3', HEALTHY]]) });
    assert.equal(stateOf(judged.state, 'web-3'), 'succeeded');
    assert.deepEqual(judged.proposal, { hostIds: ['id-web-2'], index: 2, run: 2, unavailableAtStart: 0 });
    const canaryOfRun2 = advance(
      {
        ...judged.state,
        hosts: judged.state.hosts.map((entry) => (entry.hostName === 'web-2' ? host('web-2', 'gating', 2) : entry)),
        batches: [...judged.state.batches, batch(2, ['web-2'], 2)],
      },
      { ended: [], checks: new Map([['id-web-2', HEALTHY]]) },
    );
    assert.equal(canaryOfRun2.state.rollout.status, 'awaiting_approval');
  });

  it('queues behind rollouts admitted since, leaving interrupted hosts for when it starts', () => {
    const blocker = overlap('r9', 9n, false);
    const retried = decided(control(aborted(), 'retry', { by: 'ops', blockers: [blocker] }));
    assert.equal(retried.state.rollout.status, 'queued');
    assert.deepEqual(retried.state.rollout.blockedBy, ['r9']);
    assert.equal(stateOf(retried.state, 'web-3'), 'interrupted');
    assert.deepEqual(retried.events[0]?.data, {
      by: 'ops',
      reason: null,
      status: 'queued',
      blockedBy: ['r9'],
    });
    const started = leaveQueue({ ...retried.state, rollout: { ...retried.state.rollout, admissionSeq: 10n } }, []);
    assert.equal(stateOf(started.state, 'web-3'), 'gating');
  });

  it('is refused while unfinished, when every host succeeded, or while tasks still run', () => {
    assert.deepEqual(control(rolloutState(), 'retry', { by: 'ops' }), { refused: 'it is running' });
    const done = rolloutState({ count: 1, hosts: [host('web-1', 'succeeded', 0)], rollout: { status: 'succeeded' } });
    assert.deepEqual(control(done, 'retry', { by: 'ops' }), { refused: 'every host already succeeded' });
    const acting = rolloutState({
      count: 2,
      hosts: [host('web-1', 'acting', 0), host('web-2', 'failed', 0)],
      rollout: { status: 'aborted' },
    });
    assert.deepEqual(control(acting, 'retry', { by: 'ops' }), {
      refused: 'tasks of its last batch still run; retry once they end',
    });
  });
});

describe('cancel', () => {
  it('cancels pending hosts and queued tasks; it comes to rest once nothing is in flight', () => {
    const state = rolloutState({ hosts: [host('web-1', 'acting', 0)], batches: [batch(0, ['web-1'])] });
    const cancelled = decided(control(state, 'cancel', { by: 'ops' }));
    assert.equal(cancelled.state.rollout.status, 'cancelled');
    assert.equal(cancelled.quiesced, false);
    assert.deepEqual(cancelled.events[0], {
      type: 'rollout.finished',
      data: { by: 'ops', reason: null, status: 'cancelled' },
    });
    assert.equal(decided(control(rolloutState(), 'cancel', { by: 'ops' })).quiesced, true);
    assert.deepEqual(control(cancelled.state, 'cancel', { by: 'ops' }), { refused: 'it already ended cancelled' });
  });
});

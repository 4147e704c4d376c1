import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { unitSnapshot } from '../../test/factories/unit-snapshot.factory';
import { failureBudgetExceeded, judgeGate, nextBatchSize, unitGateProblem } from './rollout-rules';

const baseline = { unit: 'nginx.service', activeState: 'active', subState: 'running', mainPid: 100, nRestarts: 0 };

const snapshot = unitSnapshot;

describe('unitGateProblem', () => {
  it('passes a unit that kept its process and restart count', () => {
    assert.equal(unitGateProblem('restart', baseline, snapshot({})), null);
  });
  it('fails a unit systemd restarted (a crash loop), a changed MainPID, and a unit not active', () => {
    assert.match(unitGateProblem('restart', baseline, snapshot({ nRestarts: 2, mainPid: 130 }))!, /crash loop/);
    assert.match(unitGateProblem('restart', baseline, snapshot({ mainPid: 101 }))!, /MainPID 100 → 101/);
    assert.match(
      unitGateProblem('restart', baseline, snapshot({ activeState: 'failed', subState: 'failed' }))!,
      /not active/,
    );
  });
  it('holds other verbs to the state they left, not to running', () => {
    const stopped = { unit: 'nginx.service', activeState: 'inactive', subState: 'dead', mainPid: null, nRestarts: 0 };
    const now = snapshot({ activeState: 'inactive', subState: 'dead', mainPid: null });
    assert.equal(unitGateProblem('stop', stopped, now), null);
    assert.match(unitGateProblem('stop', stopped, snapshot({}))!, /inactive to active/);
  });
});

describe('judgeGate', () => {
  const gate = { gateStartedAt: 0, minHealthyTimeMs: 1_000, timeoutMs: 5_000, fatal: [], failing: [] };
  it('passes once healthy for minHealthyTime, not before', () => {
    assert.deepEqual(judgeGate({ ...gate, now: 100, healthySince: null }), {
      outcome: 'waiting',
      healthySince: 100,
      problems: [],
    });
    assert.equal(judgeGate({ ...gate, now: 1_099, healthySince: 100 }).outcome, 'waiting');
    assert.deepEqual(judgeGate({ ...gate, now: 1_100, healthySince: 100 }), { outcome: 'passed', healthySince: 100 });
  });
  it('passes at the first healthy check when minHealthyTime is 0', () => {
    assert.equal(judgeGate({ ...gate, minHealthyTimeMs: 0, now: 5, healthySince: null }).outcome, 'passed');
  });
  it('restarts the clock on a failing probe and fails at the deadline', () => {
    const failing = ['http :80/ answered 502'];
    assert.deepEqual(judgeGate({ ...gate, failing, now: 900, healthySince: 100 }), {
      outcome: 'waiting',
      healthySince: null,
      problems: failing,
    });
    const late = judgeGate({ ...gate, failing, now: 6_000, healthySince: null });
    assert.equal(late.outcome, 'failed');
  });
  it('fails at once on a fatal problem', () => {
    assert.equal(judgeGate({ ...gate, fatal: ['crash loop'], now: 1, healthySince: null }).outcome, 'failed');
  });
});

describe('failure budget and batch size', () => {
  it('aborts when failures EXCEED maxFailures', () => {
    assert.equal(failureBudgetExceeded(0, 0), false);
    assert.equal(failureBudgetExceeded(1, 0), true);
    assert.equal(failureBudgetExceeded(1, 1), false);
    assert.equal(failureBudgetExceeded(2, 1), true);
  });
  it('takes the size of this batch of the run, the last repeating, within what is left', () => {
    const input = { sizes: [1, '25%'], total: 10, remaining: 10, maxUnavailable: null, downNow: 0 };
    assert.equal(nextBatchSize({ ...input, batchOfRun: 0 }), 1);
    assert.equal(nextBatchSize({ ...input, batchOfRun: 1 }), 3);
    assert.equal(nextBatchSize({ ...input, batchOfRun: 7 }), 3);
    assert.equal(nextBatchSize({ ...input, batchOfRun: 7, remaining: 2 }), 2);
  });
  it('never lets acting plus already-down units exceed maxUnavailable', () => {
    const input = { sizes: [5], batchOfRun: 0, total: 10, remaining: 10, maxUnavailable: 3 };
    assert.equal(nextBatchSize({ ...input, downNow: 0 }), 3);
    assert.equal(nextBatchSize({ ...input, downNow: 2 }), 1);
    assert.equal(nextBatchSize({ ...input, downNow: 3 }), 0);
    assert.equal(nextBatchSize({ ...input, downNow: 5 }), 0);
  });
  it('lets hosts left whose unit is already down in without counting them twice', () => {
    const input = { sizes: [5], batchOfRun: 0, total: 10, remaining: 10, maxUnavailable: 1 };
    assert.equal(nextBatchSize({ ...input, downNow: 1, downPending: 1 }), 1, 'the down host, no other');
    assert.equal(nextBatchSize({ ...input, maxUnavailable: 3, downNow: 1, downPending: 1 }), 3, 'it and 2 more');
    assert.equal(nextBatchSize({ ...input, downNow: 3, downPending: 2 }), 2, 'only the down ones while 3 are down');
    assert.equal(nextBatchSize({ ...input, sizes: [1], downNow: 3, downPending: 3 }), 1, 'within the batch size');
  });
});

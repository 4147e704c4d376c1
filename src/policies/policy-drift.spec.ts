import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  DesiredState,
  driftReasons,
  nextReconcileStep,
  POLICY_ACTIVITIES,
  POLICY_ENABLEMENTS,
  reconcileSteps,
  StoredUnit,
} from './policy-drift';

const unit = (unitFileState: string | null, activeState: string, loadState = 'loaded'): StoredUnit => ({
  loadState,
  activeState,
  unitFileState,
});

const ENABLED_ACTIVE: DesiredState = { enablement: 'enabled', activity: 'active' };

describe('driftReasons', () => {
  it('says nothing of a unit in line', () => {
    assert.deepEqual(driftReasons(ENABLED_ACTIVE, unit('enabled', 'active')), []);
    assert.deepEqual(driftReasons({ enablement: null, activity: 'inactive' }, unit('enabled', 'failed')), []);
  });

  it('names each aspect out of line with what it is and what the policy wants', () => {
    assert.deepEqual(driftReasons(ENABLED_ACTIVE, unit('disabled', 'inactive')), [
      'unit-file state is disabled, policy wants enabled',
      'active state is inactive, policy wants active',
    ]);
    assert.deepEqual(driftReasons({ enablement: 'masked', activity: null }, unit(null, 'active')), [
      'unit-file state is unknown (no unit file), policy wants masked',
    ]);
  });

  it('reports a unit the host lacks, whether never stored or stored as not-found', () => {
    assert.deepEqual(driftReasons(ENABLED_ACTIVE, null), ['unit not found on host']);
    assert.deepEqual(driftReasons(ENABLED_ACTIVE, unit(null, 'inactive', 'not-found')), ['unit not found on host']);
  });

  it('does not count transitions or runtime-only enablement as in line', () => {
    assert.equal(driftReasons(ENABLED_ACTIVE, unit('enabled-runtime', 'activating')).length, 2);
  });
});

describe('reconcileSteps', () => {
  it('maps each aspect to its verb', () => {
    assert.deepEqual(reconcileSteps(ENABLED_ACTIVE, unit('disabled', 'inactive')), ['enable', 'start']);
    assert.deepEqual(reconcileSteps({ enablement: 'disabled', activity: 'inactive' }, unit('enabled', 'active')), [
      'disable',
      'stop',
    ]);
    assert.deepEqual(reconcileSteps({ enablement: 'masked', activity: null }, unit('enabled', 'active')), ['mask']);
  });

  it('unmasks first when a masked unit must be enabled or disabled', () => {
    assert.deepEqual(reconcileSteps(ENABLED_ACTIVE, unit('masked', 'inactive')), ['unmask', 'enable', 'start']);
    assert.deepEqual(reconcileSteps({ enablement: 'disabled', activity: null }, unit('masked', 'inactive')), [
      'unmask',
      'disable',
    ]);
  });

  it('needs a step exactly when there is a reason (property)', () => {
    const desired = fc
      .record({
        enablement: fc.constantFrom(...POLICY_ENABLEMENTS, null),
        activity: fc.constantFrom(...POLICY_ACTIVITIES, null),
      })
      .filter((state) => state.enablement !== null || state.activity !== null);
    const stored = fc.record({
      loadState: fc.constant('loaded'),
      activeState: fc.constantFrom('active', 'inactive', 'failed', 'activating', 'deactivating', 'reloading'),
      unitFileState: fc.constantFrom('enabled', 'disabled', 'masked', 'static', 'enabled-runtime', null),
    });
    fc.assert(
      fc.property(desired, stored, (state, stateOfUnit) => {
        const reasons = driftReasons(state, stateOfUnit);
        const steps = reconcileSteps(state, stateOfUnit);
        assert.equal(reasons.length > 0, steps.length > 0);
        assert.ok(steps.length >= reasons.length);
      }),
    );
  });
});

describe('nextReconcileStep', () => {
  it('takes the earliest step some host needs next, on every host that needs it next', () => {
    const step = nextReconcileStep([
      { name: 'web-1', steps: ['start'] },
      { name: 'web-2', steps: ['enable', 'start'] },
      { name: 'web-3', steps: ['enable'] },
      { name: 'web-4', steps: [] },
    ]);
    assert.deepEqual(step, {
      verb: 'enable',
      hosts: ['web-2', 'web-3'],
      later: [
        { name: 'web-1', steps: ['start'] },
        { name: 'web-2', steps: ['start'] },
      ],
    });
  });

  it('unmasks before anything else', () => {
    const step = nextReconcileStep([
      { name: 'a', steps: ['enable'] },
      { name: 'b', steps: ['unmask', 'enable'] },
    ]);
    assert.equal(step?.verb, 'unmask');
    assert.deepEqual(step?.hosts, ['b']);
  });

  it('is null when every host is in line', () => {
    assert.equal(nextReconcileStep([{ name: 'a', steps: [] }]), null);
    assert.equal(nextReconcileStep([]), null);
  });
});

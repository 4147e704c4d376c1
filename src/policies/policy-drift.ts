export const POLICY_ENABLEMENTS = ['enabled', 'disabled', 'masked'] as const;
export const POLICY_ACTIVITIES = ['active', 'inactive'] as const;

export type PolicyEnablement = (typeof POLICY_ENABLEMENTS)[number];
export type PolicyActivity = (typeof POLICY_ACTIVITIES)[number];

/** The verbs a reconcile uses, in the order a host needs them (unmask before enabling or disabling, enablement before activity). */
export const RECONCILE_VERBS = ['unmask', 'enable', 'disable', 'mask', 'start', 'stop'] as const;

export type ReconcileVerb = (typeof RECONCILE_VERBS)[number];

/** What a policy wants of its unit; null leaves that aspect alone. */
export interface DesiredState {
  enablement: PolicyEnablement | null;
  activity: PolicyActivity | null;
}

/** A unit as drover last stored it for a host (discovery, agent report or task), or null when it has none. */
export interface StoredUnit {
  loadState: string;
  activeState: string;
  unitFileState: string | null;
}

/** A host's unit as a LEFT JOIN reads it: every column null when the host has no such unit. */
export interface JoinedUnit {
  loadState: string | null;
  activeState: string | null;
  subState: string | null;
  unitFileState: string | null;
  refreshedAt: Date | null;
}

/** The unit as stored for the host, or null when the host has none (the LEFT JOIN found no row). */
export function unitOf(row: JoinedUnit): (StoredUnit & { subState: string; refreshedAt: Date }) | null {
  const { loadState, activeState, subState, unitFileState, refreshedAt } = row;
  if (loadState === null || activeState === null || subState === null || refreshedAt === null) return null;
  return { loadState, activeState, subState, unitFileState, refreshedAt };
}

/**
 * The ActiveStates that satisfy each desired activity. `active` is strict (activating, reloading
 * and deactivating are transitions, not the state asked for); `inactive` means not running, so a
 * failed unit is in line: stopping it would change nothing. The drift SQL takes these same lists.
 */
export const IN_LINE_ACTIVE_STATES: Record<PolicyActivity, readonly string[]> = {
  active: ['active'],
  inactive: ['inactive', 'failed'],
};

/** Whether a stored unit counts as present: systemd answers for names it has no file of with load state not-found. */
export function unitPresent(unit: StoredUnit | null): unit is StoredUnit {
  return unit !== null && unit.loadState !== 'not-found';
}

/**
 * Why a host's unit is out of line with the policy, one reason per aspect; empty when in line.
 * Enablement is compared with the unit-file state exactly (enabled-runtime, static, indirect and
 * the like are not `enabled`: they do not survive a reboot as asked, or cannot be enabled at all).
 */
export function driftReasons(desired: DesiredState, unit: StoredUnit | null): string[] {
  if (!unitPresent(unit)) return ['unit not found on host'];
  const reasons: string[] = [];
  if (desired.enablement !== null && unit.unitFileState !== desired.enablement) {
    const state = unit.unitFileState === null ? 'unknown (no unit file)' : unit.unitFileState;
    reasons.push(`unit-file state is ${state}, policy wants ${desired.enablement}`);
  }
  if (desired.activity !== null && !IN_LINE_ACTIVE_STATES[desired.activity].includes(unit.activeState)) {
    reasons.push(`active state is ${unit.activeState}, policy wants ${desired.activity}`);
  }
  return reasons;
}

/**
 * The verbs that bring a present unit in line, in the order they must run: unmask before anything
 * else (a masked unit can be neither enabled nor started), enablement before activity. Empty when
 * in line.
 */
export function reconcileSteps(desired: DesiredState, unit: StoredUnit): ReconcileVerb[] {
  const steps: ReconcileVerb[] = [];
  const fileState = unit.unitFileState;
  if (desired.enablement !== null && fileState !== desired.enablement) {
    if (desired.enablement === 'masked') steps.push('mask');
    else {
      if (fileState === 'masked') steps.push('unmask');
      steps.push(desired.enablement === 'enabled' ? 'enable' : 'disable');
    }
  }
  if (desired.activity !== null && !IN_LINE_ACTIVE_STATES[desired.activity].includes(unit.activeState)) {
    steps.push(desired.activity === 'active' ? 'start' : 'stop');
  }
  return steps;
}

export interface HostSteps {
  name: string;
  steps: ReconcileVerb[];
}

export interface ReconcileStep {
  /** The one verb a rollout applies now. */
  verb: ReconcileVerb;
  /** The hosts whose next step it is, by name. */
  hosts: string[];
  /** Hosts out of line that this rollout leaves for a later reconcile, with every step they still need. */
  later: HostSteps[];
}

/**
 * A rollout applies one verb, so a reconcile takes one step: the earliest in RECONCILE_VERBS that some
 * host needs next, on every host that needs it next. Hosts needing other steps (or more steps
 * after this one) are left for the next reconcile, which sees them as the units table then does.
 * Null when no host needs anything.
 */
export function nextReconcileStep(hosts: readonly HostSteps[]): ReconcileStep | null {
  const needing = hosts.filter((host) => host.steps.length > 0);
  const verb = RECONCILE_VERBS.find((candidate) => needing.some((host) => host.steps[0] === candidate));
  if (verb === undefined) return null;
  const now = needing.filter((host) => host.steps[0] === verb);
  const later = needing.flatMap((host) => {
    if (host.steps[0] !== verb) return [host];
    return host.steps.length > 1 ? [{ name: host.name, steps: host.steps.slice(1) }] : [];
  });
  return { verb, hosts: now.map((host) => host.name), later };
}

import {
  compileUnitGlob,
  formatSelector,
  HOST_LEVEL_VERBS,
  matchesSelector,
  matchesUnitGlob,
  parseSelector,
  Selector,
  SelectorSyntaxError,
  UnitGlob,
  Verb,
} from '@drover/protocol';
import { ForbiddenError } from '../common/errors/domain-errors';
import type { Principal } from '../common/auth/principal';

/** How many of the hosts outside a token's bounds a 403 names before it just counts the rest. */
const HOSTS_NAMED = 5;

export interface BoundsTarget {
  name: string;
  labels: Record<string, string>;
}

/**
 * Bounds were validated when the token was created, so a stored one that no longer parses means
 * the rules changed under it. Refuse rather than let the token act unbounded, and do not blame
 * the caller's request (a SelectorSyntaxError would be a 400 naming a field they never sent).
 */
function storedSelector(text: string): Selector {
  try {
    return parseSelector(text, 'hostSelector');
  } catch (error) {
    if (error instanceof SelectorSyntaxError) {
      throw new ForbiddenError(`this token's hostSelector '${text}' is no longer valid (${error.message})`);
    }
    throw error;
  }
}

function storedGlob(text: string): UnitGlob {
  try {
    return compileUnitGlob(text);
  } catch (error) {
    throw new ForbiddenError(
      `this token's unitGlob '${text}' is no longer valid (${error instanceof Error ? error.message : String(error)})`,
    );
  }
}

function hostProblem(hostSelector: string, targets: readonly BoundsTarget[]): string | null {
  const selector = storedSelector(hostSelector);
  const outside = targets.filter((target) => !matchesSelector(selector, target.labels)).map((target) => target.name);
  if (outside.length === 0) return null;
  const named = outside.slice(0, HOSTS_NAMED).join(', ');
  const more = outside.length > HOSTS_NAMED ? ` and ${outside.length - HOSTS_NAMED} more` : '';
  const noun = outside.length === 1 ? 'host' : 'hosts';
  return `this token may act only on hosts matching '${hostSelector}'; ${outside.length} ${noun} outside it: ${named}${more}`;
}

function unitProblem(unitGlob: string, unit: string | null): string | null {
  if (unit === null) {
    // A host-level verb (daemon-reload) acts on the whole systemd instance, i.e. on every unit.
    return `this token may act only on units matching '${unitGlob}', so not on the whole host (such as daemon-reload)`;
  }
  if (matchesUnitGlob(storedGlob(unitGlob), unit)) return null;
  return `this token may act only on units matching '${unitGlob}', not on '${unit}'`;
}

/**
 * What a request would make drover do on its target hosts: a verb on some units, or only read the
 * hosts (discovery reads every unit, so only the host bound applies to it).
 */
export type BoundedAction = { verb: Verb; units: readonly string[] } | { verb: 'discover' };

/**
 * The units an action reaches, as the bounds see them: a host-level verb reaches every unit of the
 * host, whatever unit the request names (a daemon-reload "of fleet-demo.service" still reloads the
 * whole service manager), so it counts as acting on the host itself (null). The verb decides this,
 * never the body's unit field.
 */
function unitsReached(action: BoundedAction): readonly (string | null)[] {
  if (action.verb === 'discover') return [];
  if (HOST_LEVEL_VERBS.includes(action.verb)) return [null];
  return [...new Set(action.units)];
}

/**
 * Why the action is outside the token's bounds, or null when it is inside: any target host its
 * hostSelector does not match, or a unit its unitGlob does not match. Null bounds are unbounded.
 */
export function boundsProblem(
  principal: Pick<Principal, 'hostSelector' | 'unitGlob'>,
  targets: readonly BoundsTarget[],
  action: BoundedAction,
): string | null {
  const { hostSelector, unitGlob } = principal;
  const problems = [
    hostSelector === null ? null : hostProblem(hostSelector, targets),
    ...(unitGlob === null ? [] : unitsReached(action).map((unit) => unitProblem(unitGlob, unit))),
  ].filter((problem): problem is string => problem !== null);
  return problems.length > 0 ? [...new Set(problems)].join('; ') : null;
}

/**
 * Refuses (403) an action outside the token's bounds (see boundsProblem). The one place operations,
 * host actions, discovery and rollouts check bounds: call it after resolving the targets and before
 * anything is written, so a refused request leaves no trace but its 403.
 */
/**
 * A request that may run daemon-reload before its verb (daemonReload 'auto') performs that
 * host-level action too: its token must be allowed it on every target.
 */
export function reloadFirstAction(daemonReload: 'refuse' | 'auto' | 'ignore'): BoundedAction | null {
  return daemonReload === 'auto' ? { verb: 'daemon-reload', units: [] } : null;
}

export function assertMayActOn(
  principal: Pick<Principal, 'hostSelector' | 'unitGlob'>,
  targets: readonly BoundsTarget[],
  action: BoundedAction,
): void {
  const problem = boundsProblem(principal, targets, action);
  if (problem !== null) throw new ForbiddenError(problem);
}

/**
 * Why a token may not declare something that acts later on whatever hosts `selectorText` matches
 * then (a desired-state policy), or null: the unit must match its unitGlob, and the selector must
 * carry every requirement of its hostSelector, so that no host outside its bounds can ever match,
 * however hosts are labelled later. Containment is by requirement as written (the canonical text
 * of each), a sufficient test: `role=web,env=staging` stays within `env=staging`.
 */
export function declarationProblem(
  principal: Pick<Principal, 'hostSelector' | 'unitGlob'>,
  selectorText: string,
  unit: string,
): string | null {
  const problems: string[] = [];
  if (principal.hostSelector !== null) {
    const declared = new Set(parseSelector(selectorText).map((requirement) => formatSelector([requirement])));
    const missing = storedSelector(principal.hostSelector)
      .map((requirement) => formatSelector([requirement]))
      .filter((requirement) => !declared.has(requirement));
    if (missing.length > 0) {
      problems.push(
        `this token may act only on hosts matching '${principal.hostSelector}', so the selector must include ` +
          `${missing.map((requirement) => `'${requirement}'`).join(', ')}`,
      );
    }
  }
  if (principal.unitGlob !== null) {
    const problem = unitProblem(principal.unitGlob, unit);
    if (problem !== null) problems.push(problem);
  }
  return problems.length > 0 ? problems.join('; ') : null;
}

/** Refuses (403) a declaration outside the token's bounds (see declarationProblem). */
export function assertMayDeclare(
  principal: Pick<Principal, 'hostSelector' | 'unitGlob'>,
  selectorText: string,
  unit: string,
): void {
  const problem = declarationProblem(principal, selectorText, unit);
  if (problem !== null) throw new ForbiddenError(problem);
}

import { ForbiddenError, SelectorSyntaxError } from '../common/errors/domain-errors';
import { matchesSelector, parseSelector, Selector } from '../common/selector/selector';
import { compileUnitGlob, matchesUnitGlob, UnitGlob } from './unit-glob';
import type { Principal } from './tokens.service';

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
    // A unit-less verb (daemon-reload) acts on the whole systemd instance, i.e. on every unit.
    return `this token may act only on units matching '${unitGlob}', so not without a unit (such as daemon-reload)`;
  }
  if (matchesUnitGlob(storedGlob(unitGlob), unit)) return null;
  return `this token may act only on units matching '${unitGlob}', not on '${unit}'`;
}

/**
 * Refuses (403) an action outside the token's bounds: any target host its hostSelector does not
 * match, or a unit its unitGlob does not match. Null bounds are unbounded. Call it after resolving
 * the targets and before anything is written, so a refused request leaves no trace but its 403.
 */
export function assertMayActOn(
  principal: Pick<Principal, 'hostSelector' | 'unitGlob'>,
  targets: readonly BoundsTarget[],
  unit: string | null,
): void {
  const problems = [
    principal.hostSelector === null ? null : hostProblem(principal.hostSelector, targets),
    principal.unitGlob === null ? null : unitProblem(principal.unitGlob, unit),
  ].filter((problem): problem is string => problem !== null);
  if (problems.length > 0) throw new ForbiddenError(problems.join('; '));
}

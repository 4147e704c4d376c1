import { unitNameProblem } from './unit-name';

/**
 * A template (foo@.service) is a recipe for instances, not a unit: systemd keeps no state for it
 * and `systemctl show` refuses it.
 */
export function isTemplate(unit: string): boolean {
  return /@\.[a-z]+$/.test(unit);
}

/**
 * Names reach argv only through here. The API validates them already; checking again means a bug
 * elsewhere can never turn a name into an option or a second command on a host.
 */
export function assertUnitName(unit: string): void {
  const problem = unitNameProblem(unit);
  if (problem !== null) throw new Error(`refusing unit name ${JSON.stringify(unit)}: ${problem}`);
}

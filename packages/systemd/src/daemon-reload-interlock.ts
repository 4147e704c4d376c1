import type { DaemonReloadPolicy, UnitSnapshot } from '@drover/protocol';
import type { Verb } from '@drover/protocol';

/** Verbs that run the unit's definition (its Exec lines, environment, limits...). */
const RUNS_DEFINITION: readonly Verb[] = ['start', 'restart', 'try-restart', 'reload', 'reload-or-restart'];

export type Interlock = { kind: 'act' } | { kind: 'refuse'; reason: string } | { kind: 'reload-first' };

function describeFiles(unit: UnitSnapshot): string {
  const dropIns = unit.dropInPaths ?? [];
  const parts = [
    ...(unit.fragmentPath ? [`unit file ${unit.fragmentPath}`] : []),
    ...(dropIns.length > 0 ? [`drop-ins ${dropIns.join(', ')}`] : []),
  ];
  return parts.length > 0 ? `; its definition: ${parts.join('; ')}` : '';
}

/** Whether to act, refuse, or daemon-reload first, given the unit as read before acting. */
export function interlock(
  policy: DaemonReloadPolicy,
  verb: Verb,
  unit: string,
  before: UnitSnapshot | null,
): Interlock {
  if (before === null || !before.needDaemonReload || !RUNS_DEFINITION.includes(verb) || policy === 'ignore') {
    return { kind: 'act' };
  }
  if (policy === 'auto') return { kind: 'reload-first' };
  return {
    kind: 'refuse',
    reason:
      `not acted on: ${unit} changed on disk since systemd loaded it (NeedDaemonReload=yes${describeFiles(before)}), ` +
      `so ${verb} would run its old definition. Run daemon-reload first, or ask for daemonReload 'auto' ` +
      `(daemon-reload, then ${verb}) or 'ignore'`,
  };
}

/**
 * What the outcome of a task that acted on a changed definition says about it: that daemon-reload
 * ran first, or (daemonReload 'ignore') that the verb ran the old definition. Null when neither.
 */
export function interlockNote(
  policy: DaemonReloadPolicy,
  verb: Verb,
  before: UnitSnapshot | null,
  reloaded: boolean,
): string | null {
  if (reloaded) return 'daemon-reload run first: the unit had changed on disk (NeedDaemonReload=yes)';
  if (policy !== 'ignore' || before === null || !before.needDaemonReload || !RUNS_DEFINITION.includes(verb)) {
    return null;
  }
  return `warning: the unit had changed on disk (NeedDaemonReload=yes) and daemonReload is 'ignore': ${verb} ran its old definition`;
}

/** What the interlock will do on the hosts a plan found needing daemon-reload, in words. */
export function daemonReloadEffect(policy: DaemonReloadPolicy, verb: Verb, hosts: number): string {
  if (hosts === 0) return 'no host needs daemon-reload (as last discovered)';
  const where = `${hosts} host(s) where the unit changed on disk`;
  if (!RUNS_DEFINITION.includes(verb))
    return `${verb} does not run the unit's definition: it acts on ${where} as on the others`;
  if (policy === 'refuse')
    return `the tasks on ${where} will fail before acting (daemonReload 'refuse'), counted against maxFailures`;
  if (policy === 'auto') return `daemon-reload runs first on ${where}, then ${verb}`;
  return `${verb} runs the old definition on ${where} (daemonReload 'ignore'), with a warning in each task`;
}

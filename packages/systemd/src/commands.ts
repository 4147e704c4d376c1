import { assertUnitName } from './unit-names';
import { Verb, VERBS } from '@drover/protocol';

/**
 * The argv of one systemctl verb. `--no-ask-password` because nobody is there to answer a polkit
 * prompt over SSH; `--` so that nothing after it can be read as an option. systemctl waits for
 * the job to finish, so the state read right after it is the result.
 *
 * `status` exits 3 for a unit that is not running (inactive or failed) and 4 for one systemd does
 * not know: for status those are answers, not failures of the command.
 */
export function verbArgv(verb: Verb, unit: string | null): string[] {
  // The verb becomes an argv element too; a value that only claims to be a Verb must not get there.
  if (!(VERBS as readonly string[]).includes(verb)) throw new Error(`unknown verb ${JSON.stringify(verb)}`);
  if (unit !== null) assertUnitName(unit);
  if (verb === 'daemon-reload') return ['systemctl', '--no-ask-password', 'daemon-reload'];
  if (unit === null) throw new Error(`${verb} needs a unit`);
  if (verb === 'status') return ['systemctl', '--no-pager', '--lines=20', 'status', '--', unit];
  return ['systemctl', '--no-ask-password', '--no-pager', verb, '--', unit];
}

/**
 * The verb and unit of `argv` when it is exactly what verbArgv gives for a verb on a unit, else
 * null: a host that can run a unit's job without systemctl (an agent, over D-Bus) recognises the
 * command it stands for this way and leaves every other argv to run as it is.
 */
export function verbArgvParts(argv: readonly string[]): { verb: Verb; unit: string } | null {
  // Every verb on a unit is spelled `... <verb> -- <unit>`.
  const [verb, , unit] = argv.slice(-3);
  if (unit === undefined || !(VERBS as readonly (string | undefined)[]).includes(verb)) return null;
  try {
    return sameArgv(verbArgv(verb as Verb, unit), argv) ? { verb: verb as Verb, unit } : null;
  } catch {
    return null;
  }
}

/** Whether two argvs are the same words in the same order (how a host recognises a read it can answer itself). */
export function sameArgv(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((part, index) => part === b[index]);
}

/** Exits 0 when systemd is the host's service manager: the check sd_booted(3) makes. */
export const SYSTEMD_PROBE_ARGV: string[] = ['test', '-d', '/run/systemd/system'];

export type LegacyPlan = { supported: true; argv: string[] } | { supported: false; reason: string };

/** The actions every init script has (LSB) and `service NAME ACTION` passes on. */
const LEGACY_ACTIONS: readonly Verb[] = ['start', 'stop', 'restart', 'reload', 'status'];

/** On a host without systemd, the init script of a .service unit is the unit name without '.service'. */
export function legacyVerbArgv(verb: Verb, unit: string): LegacyPlan {
  assertUnitName(unit);
  if (!LEGACY_ACTIONS.includes(verb)) {
    return {
      supported: false,
      reason: `${verb} needs systemd, and this host has no systemd (no /run/systemd/system); without it only start, stop, restart, reload and status work, through the init script`,
    };
  }
  if (!unit.endsWith('.service')) {
    return {
      supported: false,
      reason: `${unit} is not a service, and this host has no systemd: only .service units map to init scripts there`,
    };
  }
  const name = unit.slice(0, -'.service'.length);
  if (name.includes('@')) {
    return {
      supported: false,
      reason: `${unit} is a template instance, and this host has no systemd: init scripts have no instances`,
    };
  }
  return { supported: true, argv: ['service', name, verb] };
}

/** LSB init script exit codes for actions other than status. */
const LSB_ACTION_EXITS: Readonly<Record<number, string>> = {
  1: 'generic or unspecified error (also what `service` exits with when there is no such init script)',
  2: 'invalid or excess arguments',
  3: 'unimplemented feature (the init script does not offer this action)',
  4: 'user had insufficient privilege',
  5: 'program is not installed',
  6: 'program is not configured',
  7: 'program is not running',
};

/** LSB exit codes of `status` other than 0 (running) and 3 (not running). */
const LSB_STATUS_EXITS: Readonly<Record<number, string>> = {
  1: 'program is dead and its pid file remains (or there is no such init script)',
  2: 'program is dead and its lock file remains',
  4: 'program or service status is unknown',
};

/** Judges `service NAME ACTION` by its exit code: without systemd there is no state to read back. */
export function legacySucceeded(verb: Verb, exitCode: number | null): { ok: true } | { ok: false; reason: string } {
  if (exitCode === null) return { ok: false, reason: `service ${verb} was killed by a signal before it finished` };
  // For status, "not running" is an answer, as exit 3 of systemctl status is.
  if (exitCode === 0 || (verb === 'status' && exitCode === 3)) return { ok: true };
  const meaning = (verb === 'status' ? LSB_STATUS_EXITS : LSB_ACTION_EXITS)[exitCode] ?? 'not an LSB exit code';
  return { ok: false, reason: `service ${verb} exited ${exitCode}: ${meaning}` };
}

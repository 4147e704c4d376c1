import { DomainError, FieldError } from '../common/errors/domain-errors';
import { grantProblems, wrapCommentList } from './grant-input';
import { Verb, VERBS } from '@drover/protocol';

/**
 * A polkit rules file that lets the drover agent, running as an unprivileged system user, carry out
 * exactly some verbs on some units through systemd's D-Bus API, and nothing else: the agent's
 * analogue of the sudoers drop-ins for SSH users.
 *
 * What systemd asks polkit (systemd 252, src/core/dbus-unit.c and dbus-manager.c):
 * - start, stop, reload, restart, try-restart, reload-or-restart of a unit: the action
 *   `org.freedesktop.systemd1.manage-units` with the details `unit` (the unit's id, its primary
 *   name, never an alias) and `verb` (the job type as systemd spells it: "start", "stop", "reload",
 *   "restart", "try-restart", and "reload-or-restart" for ReloadOrRestartUnit).
 * - enable, disable, mask, unmask: `org.freedesktop.systemd1.manage-unit-files`, with no details at
 *   all, so polkit cannot tell one unit from another; systemctl then reloads the manager, which is
 *   `org.freedesktop.systemd1.reload-daemon` (no details either). daemon-reload is that action alone.
 *
 * systemd's policy declares that manage-unit-files implies manage-units and reload-daemon, and
 * polkit checks an implying action with the details of the original request: a rule that allowed
 * manage-unit-files outright would allow every verb on every unit. The rule below therefore allows
 * manage-unit-files and reload-daemon only for requests that carry no unit and no verb (which is
 * how systemd asks for them), so the implication never widens the unit list.
 *
 * The file is JavaScript that polkitd runs (duktape in polkit ≥ 121, mozjs before): ES5 only, and
 * every value in it comes from JSON.stringify of a checked name.
 */

export const MAX_POLKIT_UNITS = 500;

export const POLKIT_RULES_PATH = '/etc/polkit-1/rules.d/40-drover-agent.rules';

/** POSIX portable user names, as for the sudoers generator and useradd. */
const POSIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

const MANAGE_UNITS = 'org.freedesktop.systemd1.manage-units';
const MANAGE_UNIT_FILES = 'org.freedesktop.systemd1.manage-unit-files';
const RELOAD_DAEMON = 'org.freedesktop.systemd1.reload-daemon';

/** drover verbs that systemd checks as manage-units, with the `verb` detail it passes for each. */
const UNIT_JOB_VERBS: Readonly<Partial<Record<Verb, string>>> = {
  start: 'start',
  stop: 'stop',
  restart: 'restart',
  'try-restart': 'try-restart',
  reload: 'reload',
  'reload-or-restart': 'reload-or-restart',
};

/** Verbs that change unit files: manage-unit-files, then systemctl's own daemon reload. */
const UNIT_FILE_VERBS: readonly Verb[] = ['enable', 'disable', 'mask', 'unmask'];

export interface PolkitInput {
  /** The system user the agent runs as (install.sh --user NAME); never root. */
  user: string;
  verbs: readonly Verb[];
  units: readonly string[];
}

/** Bad input to the polkit renderer, named by field: a 400 when it reaches the API. */
export class PolkitInputError extends DomainError {
  readonly status = 400;
  readonly code = 'polkit_input_invalid';
  readonly title = 'Cannot generate this polkit rule';

  constructor(errors: FieldError[]) {
    super(errors.map((error) => `${error.field}: ${error.message}`).join('; '), errors);
  }
}

/** Everything wrong with an input, by field (`units[2]`), or [] when it can be rendered. */
export function polkitInputProblems(input: {
  user: string;
  verbs: readonly string[];
  units: readonly string[];
}): FieldError[] {
  const problems: FieldError[] = [];
  if (!POSIX_USER.test(input.user)) {
    problems.push({ field: 'user', message: 'must be a POSIX user name ([a-z_][a-z0-9_-]{0,31})' });
  } else if (input.user === 'root') {
    problems.push({ field: 'user', message: 'root needs no polkit rule: systemd allows root everything' });
  }

  problems.push(
    ...grantProblems(input, {
      enforcer: 'polkit',
      noGlobs: 'polkit compares unit names exactly',
      maxUnits: MAX_POLKIT_UNITS,
      unitsPer: 'units per rule',
    }),
  );
  return problems;
}

/**
 * A JavaScript string literal of `value`. JSON is JavaScript but for U+2028 and U+2029, which end
 * a line in ES5 source; checked names never hold them, and they are escaped anyway.
 */
export function jsString(value: string): string {
  return JSON.stringify(value).replace(/[\u2028\u2029]/g, (char) => `\\u${char.charCodeAt(0).toString(16)}`);
}

function jsArray(values: readonly string[], indent: string): string {
  return `[\n${values.map((value) => `${indent}  ${jsString(value)}`).join(',\n')}\n${indent}]`;
}

/**
 * The complete rules file for POLKIT_RULES_PATH. Reproducible: verbs in drover's order, units
 * sorted and without duplicates, no date. Throws PolkitInputError for bad input.
 */
export function renderPolkitRules(input: PolkitInput): string {
  const problems = polkitInputProblems(input);
  if (problems.length > 0) throw new PolkitInputError(problems);
  const verbs = VERBS.filter((verb) => input.verbs.includes(verb));
  const units = [...new Set(input.units)].sort();
  const jobVerbs = verbs.flatMap((verb) => UNIT_JOB_VERBS[verb] ?? []);
  const unitFileVerbs = verbs.filter((verb) => UNIT_FILE_VERBS.includes(verb));
  const reloadsDaemon = unitFileVerbs.length > 0 || verbs.includes('daemon-reload');

  const header = [
    `// ${POLKIT_RULES_PATH}: generated by drover. Do not edit: generate it again.`,
    '//',
    `// Lets the drover agent's user ${input.user} do exactly this through systemd, without authentication:`,
    ...wrapCommentList('//', '//   verbs:', verbs),
    ...wrapCommentList('//', '//   units:', units),
    '// Anything else it asks for is not handled here, so polkit refuses it (a system service has no',
    '// session in which anyone could authenticate). Reading units (status, show, the journal) needs no',
    '// rule. Units are matched by their primary name: systemd names no alias to polkit.',
  ];
  if (unitFileVerbs.length > 0) {
    header.push(
      '//',
      `// ${unitFileVerbs.join(', ')}: systemd asks polkit for unit file changes without naming the unit,`,
      '// so this rule cannot limit them to the units above: the user may enable, disable, mask and',
      '// unmask ANY unit, and reload the service manager (systemctl does after changing unit files).',
      '// Starting, stopping and reloading stay limited to the units above. A unit with a SysV init',
      '// script also runs update-rc.d as the user, which fails: enable and disable such units as root.',
    );
  } else if (reloadsDaemon) {
    header.push('//', '// daemon-reload: systemd names no unit for it; the user may reload the service manager.');
  }
  header.push(
    '//',
    `// Install as root: install -m 0644 -o root -g root FILE ${POLKIT_RULES_PATH}`,
    '// (polkitd reads rules files again as soon as they change).',
  );

  const body = [
    'polkit.addRule(function (action, subject) {',
    `  if (subject.user !== ${jsString(input.user)}) return;`,
  ];
  if (jobVerbs.length > 0) {
    body.push(
      `  if (action.id === ${jsString(MANAGE_UNITS)}) {`,
      `    var units = ${jsArray(units, '    ')};`,
      `    var verbs = ${jsArray(jobVerbs, '    ')};`,
      '    if (units.indexOf(action.lookup("unit")) >= 0 && verbs.indexOf(action.lookup("verb")) >= 0) {',
      '      return polkit.Result.YES;',
      '    }',
      '    return;',
      '  }',
    );
  }
  if (reloadsDaemon) {
    const actions = unitFileVerbs.length > 0 ? [MANAGE_UNIT_FILES, RELOAD_DAEMON] : [RELOAD_DAEMON];
    body.push(
      '  // Only as systemd asks for these, without details: polkit also checks manage-unit-files, which',
      "  // implies manage-units, with a manage-units request's unit and verb, and that must not pass here.",
      `  if (${actions.map((action) => `action.id === ${jsString(action)}`).join(' ||\n      ')}) {`,
      '    if (action.lookup("unit") === undefined && action.lookup("verb") === undefined) {',
      '      return polkit.Result.YES;',
      '    }',
      '  }',
    );
  }
  body.push('});');
  return `${[...header, '', ...body].join('\n')}\n`;
}

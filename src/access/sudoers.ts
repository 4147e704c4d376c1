import { DomainError, FieldError } from '../common/errors/domain-errors';
import { grantProblems, wrapCommentList, wrapWords } from './grant-input';
import { Verb, VERBS } from '@drover/protocol';
import {
  HOST_CLOCK_ARGV,
  LIST_UNIT_FILES_ARGV,
  LIST_UNITS_ARGV,
  snapshotArgv,
  START_LIKE_VERBS,
  startJournalArgv,
  SYSTEMD_PROBE_ARGV,
  verbArgv,
} from '@drover/systemd';
import { PROBE_PROGRAM } from '../probes/dto/probe.dto';

/**
 * sudoers drop-ins that let a non-root SSH user run exactly the command lines drover runs for some
 * verbs on some units, and nothing else.
 *
 * How sudo matches them (sudoers(5), and sudo 1.9's match_command.c): a command with arguments is
 * allowed when its path is the same file and fnmatch(3) of the sudoers arguments against the
 * user's arguments joined by single spaces succeeds. Every argument here is therefore literal in
 * two layers: escaped for fnmatch (a backslash in a unit name such as `x\x2dy.device` must be `\\`
 * to fnmatch, or it would match `xx2dy.device`), then for the sudoers lexer (`\` `,` `:` `=` `#`
 * and blanks are special in command arguments). No wildcard is ever emitted: `*` also matches
 * spaces, so it would match further arguments too.
 */

export const MAX_SUDOERS_UNITS = 500;

/** POSIX portable user names, as the host inventory accepts them for sshUser. */
const POSIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * Group names become the file name (sudo skips files in /etc/sudoers.d whose name contains '.' or
 * ends in '~') and the alias prefix. No '_' and no '--' so that the alias prefix, with '-' as '_',
 * never contains '__', the separator before the alias's own part: two groups never share an alias
 * name, which would break sudo for every user on a host that has both files.
 */
const GROUP = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const MAX_GROUP_LENGTH = 48;

/**
 * Where sudo finds each program drover runs (secure_path: /usr/sbin:/usr/bin:/sbin:/bin...).
 * systemctl is in /bin on hosts without a merged /usr (Debian ≤ 11 upgraded in place) and in
 * /usr/bin elsewhere; where /bin is a link to /usr/bin both lines name the same file, so listing
 * both costs nothing there.
 */
const PROGRAM_PATHS: Readonly<Record<string, readonly string[]>> = {
  systemctl: ['/usr/bin/systemctl', '/bin/systemctl'],
  journalctl: ['/usr/bin/journalctl', '/bin/journalctl'],
  date: ['/usr/bin/date', '/bin/date'],
  test: ['/usr/bin/test'],
};

export interface SudoersInput {
  /** The SSH user drover logs in as on the hosts (never root: root needs no sudo). */
  user: string;
  verbs: readonly Verb[];
  units: readonly string[];
  /** Also allow the unit listings of discovery (drover lists a host's units after every action). */
  includeDiscovery: boolean;
  /** Names the file and its aliases; defaults to the user name (see defaultSudoersGroup). */
  group?: string | undefined;
  /** Commands of the probe catalogue that rollouts on these hosts run as health probes. */
  probeCommands?: readonly SudoersProbe[] | undefined;
}

export interface SudoersProbe {
  name: string;
  /** An absolute program path without sudoers or glob specials, then arguments (see probeArgvSchema). */
  argv: readonly string[];
}

/** Bad input to the sudoers renderer, named by field: a 400 when it reaches the API. */
export class SudoersInputError extends DomainError {
  readonly status = 400;
  readonly code = 'sudoers_input_invalid';
  readonly title = 'Cannot generate these sudoers rules';

  constructor(errors: FieldError[]) {
    super(errors.map((error) => `${error.field}: ${error.message}`).join('; '), errors);
  }
}

/** The user name as a group name (`deploy_bot` → `deploy-bot`); null when nothing usable is left. */
export function defaultSudoersGroup(user: string): string | null {
  const group = user
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_GROUP_LENGTH)
    .replace(/-+$/, '');
  return GROUP.test(group) ? group : null;
}

export function sudoersPath(group: string): string {
  return `/etc/sudoers.d/drover-${group}`;
}

function groupProblem(group: string): string | null {
  if (group.length > MAX_GROUP_LENGTH || !GROUP.test(group)) {
    return `must be 1-${MAX_GROUP_LENGTH} characters a-z0-9 in words joined by single '-' (it names the file /etc/sudoers.d/drover-<group>, and sudo ignores files whose name contains '.')`;
  }
  return null;
}

/**
 * Everything wrong with an input, by field (`units[2]`), or [] when it can be rendered. The API's
 * DTO and the renderer use this one list of rules.
 */
export function sudoersInputProblems(input: {
  user: string;
  verbs: readonly string[];
  units: readonly string[];
  group?: string | undefined;
}): FieldError[] {
  const problems: FieldError[] = [];
  if (!POSIX_USER.test(input.user)) {
    problems.push({ field: 'user', message: 'must be a POSIX user name ([a-z_][a-z0-9_-]{0,31})' });
  } else if (input.user === 'root') {
    problems.push({
      field: 'user',
      message: 'root needs no sudoers rules: drover runs commands directly when it logs in as root',
    });
  }
  if (input.group !== undefined) {
    const problem = groupProblem(input.group);
    if (problem !== null) problems.push({ field: 'group', message: problem });
  } else if (POSIX_USER.test(input.user) && defaultSudoersGroup(input.user) === null) {
    problems.push({ field: 'group', message: `required: user ${input.user} does not make a group name by itself` });
  }

  problems.push(
    ...grantProblems(input, {
      enforcer: 'sudo',
      noGlobs: 'sudo would match them with wildcards, which also match spaces and so further arguments',
      maxUnits: MAX_SUDOERS_UNITS,
      unitsPer: 'units per file',
    }),
  );
  return problems;
}

/**
 * One argv element as a sudoers command argument that matches exactly this string. Refuses
 * elements sudo cannot tell apart from others: empty ones (sudo joins arguments with spaces) and
 * ones with blanks or control characters.
 */
export function sudoersArg(arg: string): string {
  if (!/^[\x21-\x7e]+$/.test(arg)) {
    throw new Error(`cannot express argument ${JSON.stringify(arg)} in sudoers: only printable ASCII without blanks`);
  }
  // First for fnmatch (every character it could read as a pattern becomes literal), then for the
  // sudoers lexer; the lexer keeps `\*` `\?` `\[` `\]` `\!` `\^` as they are and turns `\\` into
  // `\`, so escaping every backslash of the pattern again yields exactly the pattern.
  // '"' too: arguments that are exactly "" mean "no arguments at all" to sudo.
  const pattern = arg.replace(/[\\*?[\]!^"]/g, (char) => `\\${char}`);
  return pattern.replace(/[\\,:=#]/g, (char) => `\\${char}`);
}

/** The sudoers command lines (one per program path) that allow exactly this argv. */
export function sudoersCommands(argv: readonly string[]): string[] {
  const [program, ...args] = argv;
  const paths = program === undefined ? undefined : PROGRAM_PATHS[program];
  if (paths === undefined) {
    // A new program in drover's argv builders must be placed here on purpose, not guessed.
    throw new Error(`no known path for ${JSON.stringify(program)}: add it to PROGRAM_PATHS`);
  }
  if (args.length === 0) throw new Error(`${program} without arguments would allow it with any arguments`);
  const escaped = args.map(sudoersArg).join(' ');
  return paths.map((path) => `${path} ${escaped}`);
}

/**
 * The one sudoers command line that allows exactly this probe argv. Its program is already an
 * absolute path (the catalogue takes no other); with no arguments the line ends in "", which sudo
 * reads as "without arguments" (a bare path would allow any arguments).
 */
export function probeSudoersCommand(argv: readonly string[]): string {
  const [program, ...args] = argv;
  if (program === undefined || !PROBE_PROGRAM.test(program)) {
    throw new Error(`cannot express program ${JSON.stringify(program)} in sudoers: it must be a plain absolute path`);
  }
  return `${program} ${args.length === 0 ? '""' : args.map(sudoersArg).join(' ')}`;
}

function aliasName(group: string, part: string): string {
  return `DROVER_${group.toUpperCase().replace(/-/g, '_')}__${part.toUpperCase().replace(/-/g, '_')}`;
}

function aliasLine(name: string, commands: readonly string[]): string {
  return `Cmnd_Alias ${name} = \\\n${commands.map((command) => `    ${command}`).join(', \\\n')}`;
}

/** "a, b and c" */
function sentence(items: readonly string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)!}`;
}

/**
 * A complete drop-in for /etc/sudoers.d/drover-<group>. Reproducible: no date, verbs in drover's
 * order and units sorted, duplicates dropped, so equal input gives byte-equal files and a diff of
 * two versions shows only what changed. Throws SudoersInputError for bad input.
 */
export function renderSudoers(input: SudoersInput): string {
  const problems = sudoersInputProblems(input);
  if (problems.length > 0) throw new SudoersInputError(problems);
  const group = input.group ?? defaultSudoersGroup(input.user)!;
  const verbs = VERBS.filter((verb) => input.verbs.includes(verb));
  const units = [...new Set(input.units)].sort();

  const read: (readonly string[])[] = [SYSTEMD_PROBE_ARGV, ...units.map(snapshotArgv)];
  // Before a verb that may start a unit, drover counts its recent starts (systemd's start limit).
  const startsUnits = verbs.some((verb) => START_LIKE_VERBS.includes(verb));
  if (startsUnits) read.push(HOST_CLOCK_ARGV, ...units.map(startJournalArgv));
  if (input.includeDiscovery) read.push(LIST_UNITS_ARGV, LIST_UNIT_FILES_ARGV);
  const aliases: { name: string; commands: string[] }[] = [
    { name: aliasName(group, 'read'), commands: read.flatMap(sudoersCommands) },
  ];
  for (const verb of verbs) {
    // daemon-reload acts on the service manager: one command line, whatever the units.
    const argvs = verb === 'daemon-reload' ? [verbArgv(verb, null)] : units.map((unit) => verbArgv(verb, unit));
    aliases.push({ name: aliasName(group, verb), commands: argvs.flatMap(sudoersCommands) });
  }
  const probes = [...new Map((input.probeCommands ?? []).map((probe) => [probe.name, probe])).values()].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  if (probes.length > 0) {
    const commands = [...new Set(probes.map((probe) => probeSudoersCommand(probe.argv)))];
    aliases.push({ name: aliasName(group, 'probes'), commands });
  }

  const checks = [
    'the systemd probe',
    'systemctl show of each unit',
    ...(startsUnits ? ["each unit's starts in the journal and the host's clock (for systemd's start limit)"] : []),
    ...(input.includeDiscovery ? ['the unit listings of discovery'] : []),
  ];
  const lines = [
    `# ${sudoersPath(group)}: generated by drover. Do not edit: generate it again.`,
    '#',
    `# Lets ${input.user} run as root, without a password, exactly these command lines and no others:`,
    ...wrapCommentList('#', '#   verbs:', verbs),
    ...wrapCommentList('#', '#   units:', units),
    ...(probes.length > 0
      ? wrapCommentList(
          '#',
          '#   probes:',
          probes.map((probe) => probe.name),
        )
      : []),
    ...wrapWords('#  ', '#  ', `and what drover reads to check them: ${sentence(checks)}.`.split(' ')),
    '# Every line names all of its arguments, and sudo allows a command only with exactly those.',
    '#',
    `# Install as root: visudo -cf FILE && install -m 0440 -o root -g root FILE ${sudoersPath(group)}`,
    '',
    // drover's commands run without a terminal; hosts that require one for sudo would refuse them.
    `Defaults:${input.user} !requiretty`,
    '',
    ...aliases.map(({ name, commands }) => aliasLine(name, commands)),
    '',
    `${input.user} ALL = (root) NOPASSWD: ${aliases.map(({ name }) => name).join(', ')}`,
  ];
  return `${lines.join('\n')}\n`;
}

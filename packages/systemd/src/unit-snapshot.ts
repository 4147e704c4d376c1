import type { UnitSnapshot } from '@drover/protocol';
import { sameArgv } from './commands';
import { assertUnitName, isTemplate } from './unit-names';

/** What drover reads of a unit before and after acting on it (`systemctl show` property names). */
export const SNAPSHOT_PROPERTIES = [
  'Id',
  'LoadState',
  'ActiveState',
  'SubState',
  'MainPID',
  'NRestarts',
  'UnitFileState',
  'NeedDaemonReload',
  'ActiveEnterTimestamp',
  'ActiveEnterTimestampMonotonic',
  'InvocationID',
  'CanReload',
  'CanStart',
  'CanStop',
  'Result',
  'Description',
  'FragmentPath',
  'DropInPaths',
  // Read when present, never required: systemd before 230 called the interval StartLimitInterval.
  'StartLimitBurst',
  'StartLimitIntervalUSec',
] as const;

type SnapshotProperty = (typeof SNAPSHOT_PROPERTIES)[number];

/** Microseconds per unit of the time spans `systemctl show` prints (systemd's format_timespan). */
const TIMESPAN_UNITS: Readonly<Record<string, bigint>> = {
  y: 31_557_600_000_000n,
  month: 2_629_800_000_000n,
  w: 604_800_000_000n,
  d: 86_400_000_000n,
  h: 3_600_000_000n,
  min: 60_000_000n,
  s: 1_000_000n,
  ms: 1_000n,
  us: 1n,
};

/**
 * A time span as `systemctl show` prints it ("20s", "1min 30.250000s", "infinity", "0") in
 * microseconds as a decimal string, or "infinity"; null when it is not one.
 */
export function parseTimespan(text: string): string | null {
  if (text === 'infinity' || text === '0') return text;
  let total = 0n;
  for (const part of text.split(' ')) {
    const match = /^(\d+)(?:\.(\d{1,6}))?(y|month|w|d|h|min|s|ms|us)$/.exec(part);
    if (!match) return null;
    const unit = TIMESPAN_UNITS[match[3]!]!;
    const fraction = match[2] ?? '';
    total += BigInt(match[1]!) * unit + (BigInt(fraction || '0') * unit) / 10n ** BigInt(fraction.length);
  }
  return String(total);
}

/** Unit types whose `systemctl show` has a Result= line (targets, devices and slices have none). */
const TYPES_WITH_RESULT = ['service', 'socket', 'mount', 'swap', 'timer', 'path', 'automount', 'scope'];

export function snapshotArgv(unit: string): string[] {
  assertUnitName(unit);
  if (isTemplate(unit)) {
    throw new Error(
      `${unit} is a template, which has no state of its own: name an instance such as ${unit.replace('@.', '@NAME.')}`,
    );
  }
  return ['systemctl', 'show', '--no-pager', `--property=${SNAPSHOT_PROPERTIES.join(',')}`, '--', unit];
}

/**
 * The unit whose state `argv` reads when it is exactly what snapshotArgv gives for it, else null: a
 * host that can read a unit's properties without running systemctl (an agent, over D-Bus) answers
 * such a read itself and leaves every other argv to run as a command.
 */
export function snapshotArgvUnit(argv: readonly string[]): string | null {
  const unit = argv.at(-1);
  if (unit === undefined) return null;
  let expected: string[];
  try {
    expected = snapshotArgv(unit);
  } catch {
    return null;
  }
  return sameArgv(expected, argv) ? unit : null;
}

/**
 * Reads the output of `snapshotArgv`. systemd prints the properties in its own order, one
 * Name=value per line, and leaves out those the unit's type lacks (MainPID, NRestarts and Result
 * exist only for some types): those are null, and missing is an error only where the type has them.
 */
export function parseSnapshot(output: string): UnitSnapshot {
  const known: ReadonlySet<string> = new Set(SNAPSHOT_PROPERTIES);
  const values = new Map<SnapshotProperty, string>();
  for (const line of output.split(/\r?\n/)) {
    const equals = line.indexOf('=');
    const name = line.slice(0, equals);
    if (equals === -1 || !known.has(name)) continue;
    if (values.has(name as SnapshotProperty)) {
      throw new Error(`systemctl show output has ${name}= twice: it describes more than one unit`);
    }
    // Split at the first '=' only: values such as Description may contain '='.
    values.set(name as SnapshotProperty, line.slice(equals + 1));
  }

  const id = values.get('Id') ?? '';
  const unitLabel = id === '' ? 'the unit' : id;
  const required = (name: SnapshotProperty): string => {
    const value = values.get(name);
    if (value === undefined) throw new Error(`systemctl show output for ${unitLabel} has no ${name}= line`);
    return value;
  };
  const nonEmpty = (name: SnapshotProperty): string => {
    const value = required(name);
    if (value === '') throw new Error(`systemctl show output for ${unitLabel} has an empty ${name}=`);
    return value;
  };
  const flag = (name: SnapshotProperty): boolean => {
    const value = required(name);
    if (value === 'yes') return true;
    if (value === 'no') return false;
    throw new Error(`systemctl show output for ${unitLabel} has ${name}=${value}; expected yes or no`);
  };
  const digits = (name: SnapshotProperty, value: string): string => {
    if (!/^\d+$/.test(value)) {
      throw new Error(`systemctl show output for ${unitLabel} has ${name}=${value}; expected a non-negative integer`);
    }
    return value;
  };
  const count = (name: SnapshotProperty, present: boolean): number | null => {
    const value = present ? required(name) : values.get(name);
    return value === undefined ? null : Number(digits(name, value));
  };
  const timespan = (name: SnapshotProperty): string | null => {
    const value = values.get(name);
    if (value === undefined) return null;
    const microseconds = parseTimespan(value);
    if (microseconds === null) {
      throw new Error(`systemctl show output for ${unitLabel} has ${name}=${value}; expected a time span`);
    }
    return microseconds;
  };
  const optionalText = (value: string | undefined): string | null =>
    value === undefined || value === '' ? null : value;

  nonEmpty('Id');
  const type = id.slice(id.lastIndexOf('.') + 1);
  const isService = type === 'service';
  const mainPid = count('MainPID', isService);
  const description = required('Description');
  return {
    id,
    loadState: nonEmpty('LoadState'),
    activeState: nonEmpty('ActiveState'),
    subState: nonEmpty('SubState'),
    mainPid: mainPid === 0 ? null : mainPid,
    nRestarts: count('NRestarts', isService),
    unitFileState: optionalText(required('UnitFileState')),
    needDaemonReload: flag('NeedDaemonReload'),
    activeEnterTimestamp: optionalText(required('ActiveEnterTimestamp')),
    activeEnterTimestampMonotonic: digits('ActiveEnterTimestampMonotonic', required('ActiveEnterTimestampMonotonic')),
    invocationId: optionalText(required('InvocationID')),
    canReload: flag('CanReload'),
    canStart: flag('CanStart'),
    canStop: flag('CanStop'),
    result: optionalText(TYPES_WITH_RESULT.includes(type) ? required('Result') : values.get('Result')),
    description: description === '' || description === id ? null : description,
    fragmentPath: optionalText(required('FragmentPath')),
    dropInPaths: required('DropInPaths')
      .split(' ')
      .filter((path) => path !== ''),
    startLimitBurst: count('StartLimitBurst', false),
    startLimitIntervalUSec: timespan('StartLimitIntervalUSec'),
  };
}

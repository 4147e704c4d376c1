import { z } from 'zod';
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

/**
 * A unit as drover records it before and after acting (tasks, audit events): the one definition of
 * the type, its validation and its OpenAPI schema. Field names are camelCase, as the API returns
 * them; `systemctl show` calls them Id, LoadState, MainPID, ...
 */
export const unitSnapshotSchema = z
  .strictObject({
    id: z.string().describe('Id: the unit name systemd resolved, e.g. nginx.service'),
    loadState: z.string().describe('LoadState, e.g. loaded, not-found, masked'),
    activeState: z.string().describe('ActiveState, e.g. active, inactive, failed, activating'),
    subState: z.string().describe('SubState, e.g. running, dead, exited'),
    mainPid: z
      .number()
      .int()
      .min(1)
      .nullable()
      .describe('MainPID; null when no process runs (systemd reports 0) and for unit types without processes'),
    nRestarts: z
      .number()
      .int()
      .min(0)
      .nullable()
      .describe('NRestarts; null for unit types other than services, which have no restart counter'),
    unitFileState: z
      .string()
      .nullable()
      .describe('UnitFileState, e.g. enabled, disabled, masked; null when no unit file backs the unit'),
    needDaemonReload: z.boolean().describe('NeedDaemonReload: the unit file changed since systemd loaded it'),
    activeEnterTimestamp: z
      .string()
      .nullable()
      .describe(
        'ActiveEnterTimestamp as systemd prints it, e.g. "Sat 2026-11-21 06:29:25 UTC"; null when never active',
      ),
    activeEnterTimestampMonotonic: z
      .string()
      .regex(/^\d+$/)
      .describe(
        'ActiveEnterTimestampMonotonic: microseconds since boot as a decimal string (it can exceed the largest ' +
          'exact JSON number); "0" when never active',
      ),
    invocationId: z
      .string()
      .nullable()
      .describe('InvocationID: a fresh random id per start of the unit; null when it never started since loaded'),
    canReload: z.boolean().describe('CanReload'),
    canStart: z.boolean().describe('CanStart'),
    canStop: z.boolean().describe('CanStop'),
    result: z
      .string()
      .nullable()
      .describe('Result: how the last run ended (success, exit-code, timeout...); null for types without one'),
    description: z
      .string()
      .nullable()
      .describe('Description; null when the unit sets none (systemd then shows the unit name instead)'),
    fragmentPath: z
      .string()
      .nullable()
      .optional()
      .describe('FragmentPath: the unit file systemd loaded it from; null when none (absent in older records)'),
    dropInPaths: z
      .array(z.string())
      .optional()
      .describe('DropInPaths: its drop-in files, in the order systemd applies them (absent in older records)'),
    startLimitBurst: z
      .number()
      .int()
      .min(0)
      .nullable()
      .optional()
      .describe(
        'StartLimitBurst: how many starts systemd allows within startLimitIntervalUSec before it refuses the next ' +
          '(0: no limit); null when systemctl does not report it, absent from states recorded before drover read it',
      ),
    startLimitIntervalUSec: z
      .string()
      .regex(/^(\d+|infinity)$/)
      .nullable()
      .optional()
      .describe(
        'StartLimitIntervalSec in microseconds as a decimal string ("infinity": the count never resets, "0": no ' +
          'limit); null when systemctl does not report it, absent from states recorded before drover read it',
      ),
  })
  .describe('A unit as `systemctl show` reported it');

export type UnitSnapshot = z.output<typeof unitSnapshotSchema>;

/** ActiveState values of a unit on its way somewhere else: read it again to see where it ends up. */
export const TRANSITIONAL_STATES: readonly string[] = ['activating', 'deactivating', 'reloading', 'refreshing'];

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

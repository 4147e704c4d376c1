import { z } from 'zod';

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

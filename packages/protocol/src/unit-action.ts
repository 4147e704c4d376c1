import { z } from 'zod';
import { unitSnapshotSchema } from './unit-snapshot';
import { VERBS, type Verb } from './verbs';

/**
 * What a task does when its unit's definition changed on disk since systemd loaded it
 * (NeedDaemonReload=yes): systemctl would then act on the OLD definition and only warn.
 */
export const DAEMON_RELOAD_POLICIES = ['refuse', 'auto', 'ignore'] as const;
export type DaemonReloadPolicy = (typeof DAEMON_RELOAD_POLICIES)[number];

/** What each verb promises about the unit once it is done: what its outcome is checked against. */
export const VERB_PROMISES: Readonly<Record<Verb, string>> = {
  status: 'nothing changes: the unit is read',
  start: 'ActiveState=active (a service that exits by design: a new run that ended in success)',
  stop: 'ActiveState=inactive (or failed, when it had already failed before the stop)',
  restart: 'ActiveState=active in a new run',
  'try-restart': 'a running unit is active in a new run; a unit that was not running is left alone',
  reload: 'ActiveState=active, the same run and main process',
  'reload-or-restart': 'ActiveState=active: reloaded in place when it can reload, else a new run',
  enable: 'UnitFileState=enabled',
  disable: 'UnitFileState=disabled',
  mask: 'UnitFileState=masked and LoadState=masked, and a start is refused',
  unmask: 'the unit is no longer masked, on disk or as loaded',
  'daemon-reload': 'NeedDaemonReload=no: systemd loaded the unit files as they are on disk',
};

/** The most a failure's diagnostics (the unit's status and journal) carry: their tail. */
export const MAX_DIAGNOSTICS_CHARS = 16 * 1024;

/** The longest output an outcome carries: its tail, after a leading "…" when it was cut. */
export const MAX_OUTCOME_OUTPUT_CHARS = 64 * 1024;

/**
 * One task as a host carries it out, whatever carries the commands (SSH, an agent on the host):
 * the verb on one unit (none for host-level verbs), with its bounds and its daemon-reload policy.
 */
export const unitTaskSpecSchema = z
  .strictObject({
    verb: z.enum(VERBS).describe('The systemctl verb'),
    unit: z.string().nullable().describe('The unit to act on; null only for host-level verbs (daemon-reload)'),
    timeoutMs: z
      .number()
      .int()
      .min(1)
      .describe('Upper bound for each command on the host; also the most the task may wait for systemd’s start limit'),
    settleTimeoutMs: z
      .number()
      .int()
      .min(0)
      .describe('How long the unit is read again after acting while it is still in transition (activating...)'),
    daemonReload: z.enum(DAEMON_RELOAD_POLICIES).describe('What to do when the unit changed on disk'),
  })
  .describe(
    'What a host must do: run the verb and read the unit until it reaches what the verb promises (VERB_PROMISES)',
  );

export type UnitTaskSpec = z.output<typeof unitTaskSpecSchema>;

/** Whether a unit reached what the verb promises, read after acting; 'settling': still in transition. */
export const verdictSchema = z.discriminatedUnion('outcome', [
  z.strictObject({ outcome: z.literal('ok'), detail: z.string() }),
  z.strictObject({ outcome: z.literal('failed'), reason: z.string() }),
  z.strictObject({ outcome: z.literal('settling'), reason: z.string() }),
]);

export type Verdict = z.output<typeof verdictSchema>;

/** How a task spec ended on its host (the task's state, for the ends a host itself reaches). */
export const UNIT_ACTION_RESULTS = ['succeeded', 'failed', 'cancelled'] as const;
export type UnitActionResult = (typeof UNIT_ACTION_RESULTS)[number];

/** What a host reports once it carried out a task spec (or found it must not act). */
export const unitActionOutcomeSchema = z
  .strictObject({
    result: z.enum(UNIT_ACTION_RESULTS),
    reason: z.string().describe('Why it ended as it did, in words'),
    exitCode: z.number().int().nullable().describe('The exit status of the verb’s command; null when none ran'),
    before: unitSnapshotSchema.nullable().describe('The unit before the verb; null when it was never read'),
    after: unitSnapshotSchema.nullable().describe('The unit after the verb settled; null when it was never read'),
    output: z
      .string()
      .max(MAX_OUTCOME_OUTPUT_CHARS + 1)
      .nullable()
      .describe('What the command printed (stdout then stderr), its tail when longer than the bound'),
    verdict: verdictSchema
      .nullable()
      .describe('The check of the unit after acting against what the verb promises; null when not reached'),
    daemonReloaded: z.boolean().describe('daemon-reload ran before the verb (daemonReload auto)'),
    diagnostics: z
      .string()
      .max(MAX_DIAGNOSTICS_CHARS)
      .nullable()
      .optional()
      .describe(
        'When the verb ran and the task failed: the unit’s `systemctl status` and its journal since the action began (the last 50 lines), their tail when longer',
      ),
  })
  .describe('What a host reports about one task spec');

export type UnitActionOutcome = z.output<typeof unitActionOutcomeSchema>;

import { z } from 'zod';
import { pageQueryShape, pageSchema } from '../../common/pagination/cursor';
import { createZodDto } from '../../common/validation/zod-dto';
import { hostNameSchema, unitNameSchema } from '../../common/validation/names';
import {
  DAEMON_RELOAD_POLICIES,
  HOST_LEVEL_VERBS,
  OPERATION_STATUSES,
  TASK_STATES,
  unitSnapshotSchema,
  VERBS,
} from '@drover/protocol';

const verbSchema = z.enum(VERBS).describe('The systemctl verb');

export const daemonReloadSchema = z
  .enum(DAEMON_RELOAD_POLICIES)
  .default('refuse')
  .describe(
    "When a unit's file or drop-ins changed on disk since systemd loaded them (NeedDaemonReload=yes), a start, " +
      'restart or reload would run the OLD definition: `refuse` (the default) fails the task before acting, its ' +
      'reason naming the unit and its files; `auto` runs daemon-reload first (recorded in the task and its audit ' +
      'event; needs a token allowed to run daemon-reload on the hosts); `ignore` acts anyway, with a warning in ' +
      'the reason',
  );

const actionFields = {
  verb: verbSchema,
  unit: unitNameSchema.optional().describe('The unit to act on; optional only for daemon-reload'),
  onConflict: z
    .enum(['wait', 'reject'])
    .default('wait')
    .describe('When another task is acting on the same unit of a host: wait for it, or fail this task'),
  timeoutMs: z
    .number()
    .int()
    .min(1_000)
    .max(3_600_000)
    .optional()
    .describe('Upper bound for each command on a host (default: the server setting)'),
  trustOnFirstUse: z
    .boolean()
    .default(false)
    .describe('Accept and pin the host key of hosts that have none pinned yet (recorded in the audit trail)'),
  daemonReload: daemonReloadSchema,
};

function unitRequiredUnlessHostLevel(
  value: { verb: (typeof VERBS)[number]; unit?: string | undefined },
  context: z.RefinementCtx,
) {
  if (value.unit === undefined && !HOST_LEVEL_VERBS.includes(value.verb)) {
    context.addIssue({ code: 'custom', path: ['unit'], message: `'${value.verb}' needs a unit` });
  }
}

export class CreateOperationDto extends createZodDto(
  z
    .strictObject({
      ...actionFields,
      selector: z
        .string()
        .max(4096)
        .describe('Label selector choosing the hosts (must match at least one); "" selects every host'),
      concurrency: z
        .number()
        .int()
        .min(1)
        .max(10_000)
        .optional()
        .describe('How many hosts are acted on at once (default: all)'),
    })
    .superRefine(unitRequiredUnlessHostLevel)
    .describe('Apply a verb to a unit on every host a selector matches'),
) {}

export class HostActionDto extends createZodDto(
  z.strictObject(actionFields).superRefine(unitRequiredUnlessHostLevel).describe('Apply a verb to a unit of this host'),
) {}

export const taskStateSchema = z.enum(TASK_STATES);

const snapshotSchema = unitSnapshotSchema.nullable();

export const taskResponseSchema = z.object({
  id: z.uuid(),
  hostName: z.string(),
  verb: verbSchema,
  unit: z.string().nullable(),
  state: taskStateSchema,
  attempts: z.number().int(),
  startedAt: z.iso.datetime().nullable(),
  finishedAt: z.iso.datetime().nullable(),
  exitCode: z.number().int().nullable(),
  reason: z.string().nullable().describe('Why the task ended as it did, in words'),
  before: snapshotSchema.describe('The unit before the verb; null when the task never read it'),
  after: snapshotSchema.describe('The unit after the verb settled; null when the task never read it'),
  output: z.string().nullable().describe('What the command printed (stdout then stderr), bounded'),
  diagnostics: z
    .string()
    .nullable()
    .describe(
      'After a failure in which the verb ran: the unit’s `systemctl status` and its journal since the action began (the last 50 lines, 16 KB); its first telling line is in the reason',
    ),
  waitingFor: z
    .object({
      reason: z
        .string()
        .describe("What it waits for, e.g. another rollout's health gate on its unit, or systemd's start limit"),
      rolloutId: z.uuid().nullable().describe('The rollout holding the unit, when that is what it waits for'),
      since: z.iso.datetime(),
    })
    .nullable()
    .describe('Set while the task may not act yet; null once it acted (or never had to wait)'),
});

const operationStatusSchema = z.enum(OPERATION_STATUSES);

export const operationSummarySchema = z.object({
  id: z.uuid(),
  verb: verbSchema,
  unit: z.string().nullable(),
  selector: z.string().nullable(),
  concurrency: z.number().int(),
  onConflict: z.enum(['wait', 'reject']),
  daemonReload: z.enum(DAEMON_RELOAD_POLICIES),
  status: operationStatusSchema,
  requestedBy: z.string(),
  createdAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().nullable(),
  counts: z
    .object({
      queued: z.number().int(),
      running: z.number().int(),
      succeeded: z.number().int(),
      failed: z.number().int(),
      timed_out: z.number().int(),
      unreachable: z.number().int(),
      cancelled: z.number().int(),
      skipped: z.number().int(),
    } satisfies Record<z.output<typeof taskStateSchema>, z.ZodType>)
    .describe('Tasks per state'),
});

export class OperationDto extends createZodDto(operationSummarySchema.extend({ tasks: z.array(taskResponseSchema) })) {}

export class OperationPageDto extends createZodDto(pageSchema(operationSummarySchema)) {}

export class OperationParamsDto extends createZodDto(z.object({ id: z.uuid() })) {}

export class ListOperationsQueryDto extends createZodDto(
  z.object({
    status: operationStatusSchema.optional(),
    verb: verbSchema.optional(),
    unit: unitNameSchema.optional(),
    host: hostNameSchema.optional().describe('Only operations with a task on this host'),
    ...pageQueryShape,
  }),
) {}

export type CreateOperationInput = z.output<typeof CreateOperationDto.schema>;
export type HostActionInput = z.output<typeof HostActionDto.schema>;
export type TaskResponse = z.output<typeof taskResponseSchema>;
export type OperationSummary = z.output<typeof operationSummarySchema>;
export type OperationResponse = z.output<typeof OperationDto.schema>;
export type ListOperationsQuery = z.output<typeof ListOperationsQueryDto.schema>;

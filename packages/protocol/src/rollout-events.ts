import { z } from 'zod';
import { ROLLOUT_STATUSES } from './states';

/**
 * Every event a rollout appends to its stream (`GET /v1/rollouts/{id}/events`), with its data: the
 * one list of rollout event types, for the runner that writes them, the OpenAPI document, the CLI,
 * the dashboard and webhooks. The stream adds an `at` timestamp to each event's data when it sends it.
 */

const status = z.enum(ROLLOUT_STATUSES);
const host = z.string().describe('The host, by inventory name');
const batch = z.number().int().nullable().describe('Its batch index; null before it was given one');

/** A unit as the health gate recorded it when the host entered its gate. */
export const unitBaselineSchema = z.object({
  unit: z.string(),
  activeState: z.string(),
  subState: z.string(),
  mainPid: z.number().int().nullable(),
  nRestarts: z.number().int().nullable(),
});
export type UnitBaseline = z.output<typeof unitBaselineSchema>;

/** What a health check read of a unit. */
export const checkedUnitSchema = unitBaselineSchema.omit({ unit: true });
export type CheckedUnit = z.output<typeof checkedUnitSchema>;

const steeredData = z.object({
  by: z.string().describe('The token that steered it'),
  reason: z.string().nullable(),
  status,
  blockedBy: z.array(z.uuid()).optional(),
});

const event = <Type extends string, Data extends z.ZodType>(type: Type, data: Data) =>
  z.object({ type: z.literal(type), data });

export const rolloutEventSchema = z
  .discriminatedUnion('type', [
    event(
      'rollout.created',
      z.object({
        status,
        total: z.number().int(),
        hosts: z.array(z.string()),
        superseded: z.array(z.uuid()).optional(),
      }),
    ),
    event('rollout.queued', z.object({ blockedBy: z.array(z.uuid()), reason: z.string().nullable() })),
    event('rollout.started', z.object({ waitedFor: z.array(z.uuid()) })),
    event(
      'batch.started',
      z.object({
        index: z.number().int(),
        run: z.number().int(),
        hosts: z.array(z.string()),
        unavailableAtStart: z.number().int(),
        operationId: z.uuid(),
      }),
    ),
    event(
      'task.waiting',
      z.object({
        host,
        unit: z.string().nullable(),
        taskId: z.uuid(),
        waitingFor: z.string(),
        heldByRolloutId: z.uuid().nullable(),
      }),
    ),
    event(
      'task.finished',
      z.object({
        host,
        unit: z.string().nullable(),
        taskId: z.uuid(),
        state: z.string(),
        reason: z.string().nullable(),
        mainPidBefore: z.number().int().nullable(),
        mainPidAfter: z.number().int().nullable(),
        diagnostics: z
          .string()
          .nullable()
          .optional()
          .describe('After a failure: the unit’s status and journal since the task acted'),
      }),
    ),
    event('host.gating', z.object({ host, batch, baseline: z.array(unitBaselineSchema) })),
    event('gate.check', z.object({ host, healthy: z.boolean(), problems: z.array(z.string()) })),
    event('host.succeeded', z.object({ host, batch, units: z.record(z.string(), checkedUnitSchema) })),
    event(
      'host.failed',
      z.object({
        host,
        batch,
        reason: z.string(),
        diagnostics: z
          .string()
          .optional()
          .describe('When its health gate failed it: the unit’s status and journal since the gate began'),
      }),
    ),
    event('host.interrupted', z.object({ host, reason: z.string() })),
    event('host.cancelled', z.object({ host, batch, reason: z.string() })),
    event(
      'batch.finished',
      z.object({
        index: z.number().int(),
        run: z.number().int(),
        succeeded: z.array(z.string()),
        failed: z.array(z.string()),
      }),
    ),
    event('rollout.waiting', z.object({ reason: z.string(), downNow: z.number().int() })),
    event('rollout.pausing_between_batches', z.object({ until: z.iso.datetime() })),
    event('rollout.awaiting_approval', z.object({ reason: z.string() })),
    event('rollout.paused', steeredData),
    event('rollout.resumed', steeredData),
    event('rollout.approved', steeredData),
    event('rollout.retried', steeredData),
    event(
      'rollout.finished',
      z.object({
        status,
        reason: z.string().nullable(),
        supersededBy: z.uuid().optional(),
        by: z.string().optional(),
        blockedBy: z.array(z.uuid()).optional(),
      }),
    ),
  ])
  .describe(
    'One event of a rollout: sent as `event: <type>` and `data: <data as JSON, with an "at" timestamp>`; ' +
      'the `id:` of each grows with every event',
  );

export type RolloutEventInput = z.output<typeof rolloutEventSchema>;
export type RolloutEventType = RolloutEventInput['type'];
export const ROLLOUT_EVENT_TYPES: readonly RolloutEventType[] = rolloutEventSchema.options.map(
  (option) => option.shape.type.value,
);

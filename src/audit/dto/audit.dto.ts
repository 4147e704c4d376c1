import { z } from 'zod';
import { pageSchema } from '../../common/pagination/cursor';
import { selectorQueryField } from '../../common/selector/selector.schema';
import { createZodDto } from '../../common/validation/zod-dto';
import { unitSnapshotSchema } from '@drover/protocol';
import { hostNameSchema, unitNameSchema } from '../../common/validation/names';

export const auditFilterShape = {
  actor: z.string().max(100).optional().describe('Token name that acted'),
  host: hostNameSchema.optional(),
  selector: selectorQueryField.describe('Only events on hosts this label selector matches now'),
  unit: unitNameSchema.optional(),
  action: z
    .string()
    .regex(/^[a-z_]+(\.[a-z_-]+)?$/, { error: 'must be an action such as unit.restart or host.create' })
    .optional(),
  result: z.string().max(32).optional().describe('e.g. succeeded, failed, unreachable, denied'),
  operationId: z.uuid().optional(),
  from: z.iso.datetime().optional().describe('Events at or after this time'),
  to: z.iso.datetime().optional().describe('Events before this time'),
  q: z.string().min(1).max(200).optional().describe('Text the event parameters contain (case-insensitive)'),
};

export class AuditQueryDto extends createZodDto(
  z.object({
    ...auditFilterShape,
    limit: z.coerce.number().int().min(1).max(1000).default(100).describe('Events per page (1-1000)'),
    cursor: z.string().max(2048).optional().describe('The nextCursor of the previous page'),
  }),
) {}

export class AuditExportQueryDto extends createZodDto(
  z.object({ ...auditFilterShape, format: z.enum(['jsonl', 'csv']).default('jsonl') }),
) {}

export class AuditVerifyQueryDto extends createZodDto(
  z.object({
    fromSeq: z.coerce.number().int().min(1).optional().describe('First event (seq) to check; default the first'),
    toSeq: z.coerce
      .number()
      .int()
      .min(1)
      .optional()
      .describe('Last event (seq) to check; default (and at most) the newest'),
  }),
) {}

export class UnitHistoryQueryDto extends createZodDto(
  z.object({
    host: hostNameSchema,
    unit: unitNameSchema,
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z.string().max(2048).optional(),
  }),
) {}

export const auditEventSchema = z.object({
  seq: z.number().int(),
  occurredAt: z.iso.datetime(),
  actorTokenId: z.string().nullable(),
  actorName: z.string(),
  sourceAddress: z.string().nullable(),
  requestId: z.string().nullable(),
  action: z.string(),
  result: z.string(),
  hostName: z.string().nullable(),
  unit: z.string().nullable(),
  operationId: z.string().nullable(),
  taskId: z.string().nullable(),
  parameters: z.record(z.string(), z.unknown()),
  before: unitSnapshotSchema.nullable().describe('The unit before a host action'),
  after: unitSnapshotSchema.nullable().describe('The unit after a host action'),
  reason: z.string().nullable(),
  prevHash: z.string(),
  hash: z.string(),
});

export class AuditEventPageDto extends createZodDto(pageSchema(auditEventSchema)) {}

export class AuditVerificationDto extends createZodDto(
  z.object({
    ok: z.boolean(),
    checked: z.number().int().describe('How many events were checked'),
    fromSeq: z.number().int().nullable(),
    toSeq: z.number().int().nullable(),
    firstBroken: z
      .object({ seq: z.number().int(), reason: z.string() })
      .nullable()
      .describe('The first event whose hash or link does not match'),
    lastHash: z
      .string()
      .nullable()
      .describe(
        'Hash of the last event checked. Keep it outside the database: a later verification that ' +
          'no longer reaches this seq and hash means events were removed or the chain was recomputed',
      ),
  }),
) {}

export type AuditFilter = z.output<z.ZodObject<typeof auditFilterShape>>;
export type AuditEventResponse = z.output<typeof auditEventSchema>;
export type AuditVerification = z.output<typeof AuditVerificationDto.schema>;

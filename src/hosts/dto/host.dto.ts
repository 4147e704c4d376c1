import { isIP } from 'node:net';
import { z } from 'zod';
import { pageQueryShape, pageSchema } from '../../common/pagination/cursor';
import { HOST_STATUSES, HOST_TRANSPORTS, labelKeyProblem, labelValueProblem } from '@drover/protocol';
import { selectorQueryField } from '../../common/selector/selector.schema';
import { hostNameSchema } from '../../common/validation/names';
import { createZodDto } from '../../common/validation/zod-dto';

const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

const addressSchema = z
  .string()
  .refine((value) => isIP(value) !== 0 || DNS_NAME.test(value), { error: 'must be an IPv4/IPv6 address or DNS name' })
  .describe('IP address or DNS name the executor connects to');

export const labelsSchema = z
  .record(z.string(), z.string())
  .superRefine((labels, context) => {
    const entries = Object.entries(labels);
    if (entries.length > 64) context.addIssue({ code: 'custom', message: 'at most 64 labels per host' });
    for (const [key, value] of entries) {
      const problem = labelKeyProblem(key) ?? labelValueProblem(value);
      if (problem) context.addIssue({ code: 'custom', path: [key], message: problem });
    }
  })
  .describe('Label map; keys and values follow Kubernetes label syntax');

const portSchema = z.number().int().min(1).max(65535);
const transportSchema = z.enum(HOST_TRANSPORTS).describe('How drover reaches the host');
const sshUserSchema = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: 'must be a POSIX user name' })
  .describe('User for SSH; non-root users act through sudo -n');
const fingerprintSchema = z
  .string()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, { error: 'must be an OpenSSH SHA256 fingerprint (SHA256:<43 base64 chars>)' })
  .nullable()
  .describe('Pinned host key; the executor refuses any other key');

export const hostInputSchema = z.strictObject({
  name: hostNameSchema,
  address: addressSchema,
  port: portSchema.default(22),
  transport: transportSchema.default('ssh'),
  sshUser: sshUserSchema.default('root'),
  hostKeyFingerprint: fingerprintSchema.default(null),
  labels: labelsSchema.default({}),
});

export class CreateHostDto extends createZodDto(hostInputSchema) {}

export class UpdateHostDto extends createZodDto(
  z
    .strictObject({
      address: addressSchema.optional(),
      port: portSchema.optional(),
      transport: transportSchema.optional(),
      sshUser: sshUserSchema.optional(),
      hostKeyFingerprint: fingerprintSchema.optional(),
      labels: labelsSchema.optional().describe('Replaces all labels of the host'),
    })
    .describe('Fields to change; absent fields keep their value'),
) {}

export const BULK_UPSERT_MAX = 10_000;

export class BulkUpsertHostsDto extends createZodDto(
  z
    .strictObject({ hosts: z.array(hostInputSchema).min(1).max(BULK_UPSERT_MAX) })
    .superRefine(({ hosts }, context) => {
      const seen = new Map<string, number>();
      hosts.forEach((host, index) => {
        const first = seen.get(host.name);
        if (first === undefined) seen.set(host.name, index);
        else
          context.addIssue({
            code: 'custom',
            path: ['hosts', index, 'name'],
            message: `duplicates hosts[${first}].name`,
          });
      });
    })
    .describe('Hosts to create or update by name; each host is set exactly as given (absent fields take defaults)'),
) {}

export class BulkUpsertResultDto extends createZodDto(
  z.object({
    total: z.number().int(),
    created: z.number().int(),
    updated: z.number().int(),
    unchanged: z.number().int().describe('Hosts already exactly as given: untouched, updatedAt kept'),
  }),
) {}

export class HostParamsDto extends createZodDto(z.object({ name: hostNameSchema })) {}

export class ListHostsQueryDto extends createZodDto(z.object({ selector: selectorQueryField, ...pageQueryShape })) {}

export const hostResponseSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  address: z.string(),
  port: z.number().int(),
  transport: z.enum(HOST_TRANSPORTS),
  sshUser: z.string(),
  hostKeyFingerprint: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  status: z.enum(HOST_STATUSES),
  lastSeenAt: z.iso.datetime().nullable(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

export class HostDto extends createZodDto(hostResponseSchema) {}

export class HostPageDto extends createZodDto(pageSchema(hostResponseSchema)) {}

export type HostInput = z.output<typeof hostInputSchema>;
export type HostUpdate = z.output<typeof UpdateHostDto.schema>;
export type HostResponse = z.output<typeof hostResponseSchema>;
export type BulkUpsertResult = z.output<typeof BulkUpsertResultDto.schema>;

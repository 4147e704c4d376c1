import { z } from 'zod';
import { pageQueryShape, pageSchema } from '../../common/pagination/cursor';
import { selectorQueryField } from '../../common/selector/selector.schema';
import { createZodDto } from '../../common/validation/zod-dto';
import { normaliseUnitName, unitNameProblem } from '@drover/systemd';

/**
 * The one way a unit name enters drover: read as systemctl reads it (`nginx` is nginx.service),
 * then checked, so every route, token bound, task and audit event sees the name systemd acts on.
 */
export const unitNameSchema = z
  .string()
  .overwrite(normaliseUnitName)
  .superRefine((name, context) => {
    const problem = unitNameProblem(name);
    if (problem) context.addIssue({ code: 'custom', message: problem });
  })
  .describe(
    'A systemd unit name, e.g. nginx.service; a name without a unit type suffix means NAME.service, as systemctl ' +
      'reads it (nginx, a.b and getty@tty1 are nginx.service, a.b.service and getty@tty1.service), and drover ' +
      'records it so',
  );

export const unitResponseSchema = z.object({
  hostName: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  loadState: z.string().describe('systemd LoadState, e.g. loaded, not-found, masked'),
  activeState: z.string().describe('systemd ActiveState, e.g. active, inactive, failed'),
  subState: z.string().describe('systemd SubState, e.g. running, dead, exited'),
  unitFileState: z.string().nullable().describe('systemd UnitFileState, e.g. enabled, disabled, masked'),
  mainPid: z.number().int().nullable(),
  refreshedAt: z.iso.datetime().describe('When drover last read this state from the host'),
});

export class UnitDto extends createZodDto(unitResponseSchema) {}

export class UnitPageDto extends createZodDto(pageSchema(unitResponseSchema)) {}

export class ListHostUnitsQueryDto extends createZodDto(z.object(pageQueryShape)) {}

export class ListUnitsQueryDto extends createZodDto(
  z.object({
    name: unitNameSchema,
    selector: selectorQueryField,
    ...pageQueryShape,
  }),
) {}

export type UnitResponse = z.output<typeof unitResponseSchema>;

export class DiscoveryRequestedDto extends createZodDto(z.object({ hostName: z.string(), queued: z.literal(true) })) {}

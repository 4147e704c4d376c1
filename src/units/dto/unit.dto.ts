import { z } from 'zod';
import { pageQueryShape, pageSchema } from '../../common/pagination/cursor';
import { selectorQueryField } from '../../common/selector/selector.schema';
import { unitNameSchema } from '../../common/validation/names';
import { createZodDto } from '../../common/validation/zod-dto';

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

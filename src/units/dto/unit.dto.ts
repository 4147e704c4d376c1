import { z } from 'zod';
import { pageQueryShape, pageSchema } from '../../common/pagination/cursor';
import { selectorQueryField } from '../../common/selector/selector.schema';
import { unitNameSchema } from '../../common/validation/names';
import { createZodDto } from '../../common/validation/zod-dto';

/** Host names listed per group (the counts cover every host). */
export const DRIFT_SAMPLE_HOSTS = 20;

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
  fragmentPath: z.string().nullable().describe('systemd FragmentPath: the unit file'),
  dropInPaths: z.array(z.string()).describe('systemd DropInPaths: drop-ins applied over the unit file'),
  serviceType: z.string().nullable().describe('Type= of a service (simple, forking, notify...)'),
  restart: z.string().nullable().describe('Restart= of a service (no, on-failure, always...)'),
  definitionHash: z
    .string()
    .nullable()
    .describe('SHA-256 over the files the unit is built from (paths and contents): equal hashes, equal definitions'),
  needDaemonReload: z
    .boolean()
    .nullable()
    .describe('systemd NeedDaemonReload: its files changed on disk since systemd read them'),
  nRestarts: z.number().int().nullable().describe('systemd NRestarts: automatic restarts since it was started'),
  restartsGrewBy: z
    .number()
    .int()
    .describe('How much NRestarts grew between the last two discoveries: above 0, the unit is flapping'),
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

export class UnitParamsDto extends createZodDto(z.object({ name: unitNameSchema })) {}

/** A definition hash, or a prefix of one long enough to tell groups apart in practice. */
const definitionHashPrefix = z
  .string()
  .regex(/^[0-9a-f]{7,64}$/, 'a definition hash or a prefix of it: 7 to 64 lowercase hex digits')
  .optional();

export class UnitDriftQueryDto extends createZodDto(
  z.object({
    selector: selectorQueryField,
    from: definitionHashPrefix.describe('The group to diff from (default: the largest)'),
    to: definitionHashPrefix.describe('The group to diff to (default: the second largest)'),
  }),
) {}

const hostSampleShape = {
  hosts: z.number().int().describe('How many hosts'),
  hostNames: z.array(z.string()).describe(`The first ${DRIFT_SAMPLE_HOSTS} of them, by name`),
};

const driftGroupSchema = z.object({
  definitionHash: z
    .string()
    .nullable()
    .describe(
      'null: hosts whose definition is not known (the unit has no file there, a file could not be read, or it was not discovered since)',
    ),
  ...hostSampleShape,
  fragmentPath: z.string().nullable(),
  dropInPaths: z.array(z.string()),
  serviceType: z.string().nullable(),
  restart: z.string().nullable(),
});

export const unitDriftSchema = z.object({
  unit: z.string(),
  selector: z.string().describe('The selector the hosts were chosen by ("" for every host)'),
  hosts: z.number().int().describe('Hosts matched that have the unit'),
  groups: z.array(driftGroupSchema).describe('Hosts grouped by definition hash, largest first'),
  absent: z.object(hostSampleShape).describe('Hosts matched that do not have the unit at all'),
  needDaemonReload: z
    .object(hostSampleShape)
    .describe('Hosts where systemd runs an older definition than the files on disk (a restart would not apply them)'),
  flapping: z
    .array(
      z.object({
        hostName: z.string(),
        nRestarts: z.number().int().nullable(),
        restartsGrewBy: z.number().int(),
        refreshedAt: z.iso.datetime(),
      }),
    )
    .describe(
      `Hosts where the unit restarted on its own between the last two discoveries (at most ${DRIFT_SAMPLE_HOSTS * 5}, most restarts first)`,
    ),
  diff: z
    .object({
      from: z.string(),
      to: z.string(),
      text: z.string().describe('Unified diff of the two definitions as `systemctl cat` prints them'),
    })
    .nullable(),
  diffUnavailable: z.string().nullable().describe('Why there is no diff, when there is none'),
});

export class UnitDriftDto extends createZodDto(unitDriftSchema) {}

export type UnitDriftResponse = z.output<typeof unitDriftSchema>;

export class DiscoveryRequestedDto extends createZodDto(z.object({ hostName: z.string(), queued: z.literal(true) })) {}

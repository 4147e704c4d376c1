import { z } from 'zod';
import { pageQueryShape, pageSchema } from '../../common/pagination/cursor';
import { createZodDto } from '../../common/validation/zod-dto';
import { UNIT_GLOB_MAX_LENGTH, unitGlobProblem } from '@drover/protocol';

export const PROBE_NAME = /^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$/;

export const probeNameSchema = z
  .string()
  .regex(PROBE_NAME, { error: 'must be 1-64 characters [a-z0-9-], starting and ending with a letter or digit' })
  .describe('Name of a probe command in the catalogue');

/**
 * Printable ASCII without blanks: sudo matches a sudoers line only against arguments it can tell
 * apart (it joins them with spaces), and an audit event shows such an argv unambiguously.
 */
const ARGUMENT = /^[\x21-\x7e]+$/;

/**
 * An absolute program path with nothing sudo could read as a pattern or as sudoers syntax (no glob
 * characters, blanks or ,:=#\\), so a sudoers line can name it literally; `..` is refused too.
 */
export const PROBE_PROGRAM = /^\/[A-Za-z0-9._+@/-]*$/;

export const probeArgvSchema = z
  .array(
    z
      .string()
      .max(256)
      .regex(ARGUMENT, { error: 'must be printable ASCII without blanks or control characters (1-256 characters)' }),
    {
      error: (issue) =>
        issue.code === 'invalid_type' ? 'must be an array of arguments (commands never go through a shell)' : undefined,
    },
  )
  .min(1)
  .max(64)
  .superRefine((argv, context) => {
    const program = argv[0];
    if (program !== undefined && (!PROBE_PROGRAM.test(program) || program.split('/').includes('..'))) {
      context.addIssue({
        code: 'custom',
        path: [0],
        message: 'must be an absolute path to the program ([A-Za-z0-9._+@/-], without ..)',
      });
    }
  })
  .describe(
    'Program (absolute path) and arguments, run on the host as root (through sudo for a non-root login) as an ' +
      'argument vector, never through a shell; exit status 0 means healthy',
  );

const probeTimeoutSchema = z.number().int().min(100).max(60_000).describe('Milliseconds the command may take');

const probeUnitGlobSchema = z
  .string()
  .max(UNIT_GLOB_MAX_LENGTH)
  .superRefine((glob, context) => {
    const problem = unitGlobProblem(glob);
    if (problem) context.addIssue({ code: 'custom', message: problem });
  })
  .describe('Only rollouts whose units all match this glob may use the probe (null: any unit)');

export class ProbeParamsDto extends createZodDto(z.object({ name: probeNameSchema })) {}

export class PutProbeDto extends createZodDto(
  z
    .strictObject({
      argv: probeArgvSchema,
      description: z.string().max(1000).default('').describe('What the probe checks, for the people who use it'),
      timeoutMs: probeTimeoutSchema.default(2_000),
      unitGlob: probeUnitGlobSchema.nullable().default(null),
    })
    .describe('A probe command: what it runs and where it may be used'),
) {}

export class ListProbesQueryDto extends createZodDto(z.object({ ...pageQueryShape })) {}

export const probeResponseSchema = z
  .object({
    name: z.string(),
    description: z.string(),
    argv: z.array(z.string()),
    timeoutMs: z.number().int(),
    unitGlob: z.string().nullable(),
    createdBy: z.string().describe('Name of the token that created it'),
    updatedBy: z.string().describe('Name of the token that last changed it'),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
  })
  .describe('A probe command of the catalogue');

export class ProbeDto extends createZodDto(probeResponseSchema) {}

export class ProbePageDto extends createZodDto(pageSchema(probeResponseSchema)) {}

export type PutProbeRequest = z.output<typeof PutProbeDto.schema>;
export type ProbeResponse = z.output<typeof probeResponseSchema>;
export type ListProbesQuery = z.output<typeof ListProbesQueryDto.schema>;

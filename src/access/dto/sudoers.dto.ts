import { z } from 'zod';
import { createZodDto } from '../../common/validation/zod-dto';
import { VERBS } from '@drover/protocol';
import { normaliseUnitName } from '@drover/systemd';
import { probeNameSchema } from '../../probes/dto/probe.dto';
import { MAX_SUDOERS_UNITS, sudoersInputProblems } from '../sudoers';

export class SudoersRequestDto extends createZodDto(
  z
    .strictObject({
      user: z.string().describe('The non-root SSH user drover logs in as on these hosts (their sshUser)'),
      verbs: z
        .array(z.enum(VERBS))
        .min(1)
        .max(VERBS.length)
        .describe('The verbs drover may run; mask needs start too (drover checks a mask by trying a start)'),
      units: z
        // Read as operations read them, so the rules allow exactly the argv drover will run.
        .array(z.string().overwrite(normaliseUnitName))
        .min(1)
        .max(MAX_SUDOERS_UNITS)
        .describe(
          'Unit names (no globs, no templates: name instances such as getty@tty1.service); `nginx` means ' +
            'nginx.service, as for operations',
        ),
      includeDiscovery: z
        .boolean()
        .default(true)
        .describe('Also allow the read-only unit listings of discovery, which drover runs after every action'),
      probes: z
        .array(probeNameSchema)
        .max(100)
        .default([])
        .describe(
          'Names of catalogue probe commands (GET /v1/probes) that rollouts on these hosts use: each is allowed ' +
            'with exactly its arguments',
        ),
      group: z
        .string()
        .optional()
        .describe('Names the file /etc/sudoers.d/drover-<group> and its aliases; default: the user name, _ as -'),
      selector: z
        .string()
        .max(4096)
        .optional()
        .describe('Label selector of the hosts the file is for; they are listed in the answer (must match one)'),
    })
    // The renderer's own rules, so the API refuses exactly what it could not render, field by field.
    .superRefine((input, context) => {
      for (const problem of sudoersInputProblems(input)) {
        const path = problem.field.match(/[^[\].]+/g)!.map((part) => (/^\d+$/.test(part) ? Number(part) : part));
        context.addIssue({ code: 'custom', path, message: problem.message });
      }
    })
    .describe('The commands a non-root SSH user may run as root: exactly what drover runs for these verbs and units'),
) {}

export class SudoersFileDto extends createZodDto(
  z.object({
    path: z.string().describe('Where the file goes on each host, e.g. /etc/sudoers.d/drover-web'),
    content: z.string().describe('The complete file; install it with mode 0440 after visudo -cf accepts it'),
    hosts: z
      .array(z.string())
      .optional()
      .describe('Names of the hosts the selector matches (only when a selector was given)'),
  }),
) {}

export type SudoersRequest = z.output<typeof SudoersRequestDto.schema>;
export type SudoersFile = z.output<typeof SudoersFileDto.schema>;

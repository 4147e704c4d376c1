import { z } from 'zod';
import { createZodDto } from '../../common/validation/zod-dto';
import { VERBS } from '@drover/protocol';
import { normaliseUnitName } from '@drover/systemd';
import { MAX_POLKIT_UNITS, polkitInputProblems } from '../polkit';

export class PolkitRequestDto extends createZodDto(
  z
    .strictObject({
      user: z
        .string()
        .describe('The system user the drover agent runs as on these hosts (install.sh --user NAME); never root'),
      verbs: z
        .array(z.enum(VERBS))
        .min(1)
        .max(VERBS.length)
        .describe(
          'The verbs the agent may run; mask needs start too. enable, disable, mask and unmask cannot be limited ' +
            'to the units by polkit (systemd names no unit for them): they allow every unit, and daemon-reload',
        ),
      units: z
        // Read as operations read them, so the rule names the units drover will act on.
        .array(z.string().overwrite(normaliseUnitName))
        .min(1)
        .max(MAX_POLKIT_UNITS)
        .describe(
          'Unit names as systemd knows them (primary names, not aliases; no globs, no templates); `nginx` means ' +
            'nginx.service, as for operations',
        ),
      selector: z
        .string()
        .max(4096)
        .optional()
        .describe('Label selector of the hosts the rule is for; they are listed in the answer (must match one)'),
    })
    // The renderer's own rules, so the API refuses exactly what it could not render, field by field.
    .superRefine((input, context) => {
      for (const problem of polkitInputProblems(input)) {
        const path = problem.field.match(/[^[\].]+/g)!.map((part) => (/^\d+$/.test(part) ? Number(part) : part));
        context.addIssue({ code: 'custom', path, message: problem.message });
      }
    })
    .describe('What the agent user may ask systemd to do: these verbs on these units'),
) {}

export class PolkitFileDto extends createZodDto(
  z.object({
    path: z.string().describe('Where the file goes on each host: /etc/polkit-1/rules.d/40-drover-agent.rules'),
    content: z
      .string()
      .describe('The complete polkit rules file (JavaScript); install it with mode 0644, owned by root'),
    hosts: z
      .array(z.string())
      .optional()
      .describe('Names of the hosts the selector matches (only when a selector was given)'),
  }),
) {}

export type PolkitRequest = z.output<typeof PolkitRequestDto.schema>;
export type PolkitFile = z.output<typeof PolkitFileDto.schema>;

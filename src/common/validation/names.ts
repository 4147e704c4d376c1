import { z } from 'zod';
import { normaliseUnitName, unitNameProblem } from '@drover/systemd';

export const hostNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/, {
    error: 'must be 1-253 characters [A-Za-z0-9._-], starting and ending alphanumeric',
  })
  .describe('Unique inventory name of the host');

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

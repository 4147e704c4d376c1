import { z } from 'zod';
import { createZodDto } from '../validation/zod-dto';

/** RFC 9457 problem details, as every error response of the API carries them. */
export const problemSchema = z.object({
  type: z.string().describe('URI naming the kind of problem: urn:drover:problem:<code>'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  instance: z.string().describe('The request path'),
  code: z.string().describe('Stable machine-readable error code'),
  requestId: z.string(),
  errors: z
    .array(z.object({ field: z.string(), message: z.string() }))
    .describe('The offending inputs, named by their path in the request'),
});

export type Problem = z.output<typeof problemSchema>;

export class ProblemDto extends createZodDto(problemSchema) {}

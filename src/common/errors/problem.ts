import type { Request, Response } from 'express';
import { z } from 'zod';
import type { FieldError } from './domain-errors';
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

/** What names a problem; the rest of its body comes from the request it answers. */
export interface ProblemParts {
  status: number;
  code: string;
  title: string;
  detail: string;
  errors: FieldError[];
}

/** Answers a request with a problem as application/problem+json, naming the request's path and id. */
export function sendProblem(request: Request & { id?: string }, response: Response, parts: ProblemParts): void {
  const problem: Problem = {
    type: `urn:drover:problem:${parts.code}`,
    title: parts.title,
    status: parts.status,
    detail: parts.detail,
    instance: request.originalUrl.split('?')[0] ?? request.originalUrl,
    code: parts.code,
    requestId: String(request.id ?? ''),
    errors: parts.errors,
  };
  response.status(parts.status).type('application/problem+json').send(JSON.stringify(problem));
}

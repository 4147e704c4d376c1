import assert from 'node:assert/strict';
import type { Schemas } from '../../src/client';

export type Problem = Schemas['Problem'];

/**
 * Asserts a problem+json error response: status, stable code and type, the request id echoed in
 * the header, and (when given) an entry naming the offending field.
 */
export function assertProblem(
  result: { error?: unknown; response: Response },
  status: number,
  code: string,
  field?: string,
): Problem {
  assert.equal(result.response.status, status);
  assert.match(result.response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const problem = result.error as Problem;
  assert.equal(problem.status, status);
  assert.equal(problem.code, code);
  assert.equal(problem.type, `urn:drover:problem:${code}`);
  assert.ok(problem.requestId.length > 0, 'problem carries the request id');
  assert.equal(problem.requestId, result.response.headers.get('x-request-id'));
  if (field !== undefined) {
    assert.ok(
      problem.errors.some((error) => error.field === field),
      `expected an error naming ${field}, got ${JSON.stringify(problem.errors)}`,
    );
  }
  return problem;
}

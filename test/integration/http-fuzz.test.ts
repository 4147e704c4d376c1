import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import Redis from 'ioredis';
import { AGENT_PROTOCOL_HEADER, AGENT_PROTOCOL_VERSION } from '@drover/protocol';
import { ProtocolAgent } from '../support/agent-client';
import { startTestApi, TestApi } from '../support/api';
import { countRows } from '../support/database';
import { testEnv } from '../support/env';

/** The requests one run sends, and how many are in flight at once: bounded, so the run is too. */
const REQUESTS = 3_000;
const CONCURRENCY = 8;
const REQUEST_TIMEOUT_MS = 15_000;

/** Tables a request could write to; none may change. */
const TABLES = [
  'hosts',
  'units',
  'api_tokens',
  'operations',
  'tasks',
  'audit_events',
  'rollouts',
  'rollout_events',
  'policies',
];

interface JsonSchema {
  $ref?: string;
  type?: string;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  maxLength?: number;
  nullable?: boolean;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
}
interface Parameter {
  in: 'path' | 'query' | 'header';
  name: string;
  schema: JsonSchema;
}
interface Operation {
  security?: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { content: { 'application/json': { schema: JsonSchema } } };
}
interface OpenApi {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, JsonSchema> };
}

interface FuzzRequest {
  method: string;
  url: string;
  body: string | undefined;
  /** The field the answer must name; null when any named field will do (e.g. a body that is no JSON object). */
  field: string | null;
  /** A route of the agent protocol: sent with an agent's credential and protocol header, as an agent would. */
  agent: boolean;
}

/**
 * Characters no path or query parameter of the API accepts, wherever they appear: none is in a
 * host name, uuid, number, date, enum value, unit name or glob, label key or value, or cursor.
 */
const REFUSED = ['$', '`', ';', '"', "'", '|', '&', '<', '>', 'é', '😀', '\u202e'];
const anyChar = fc.string({ unit: 'binary', minLength: 1, maxLength: 1 });
const hostile = fc
  .tuple(
    fc.string({ unit: fc.oneof(anyChar, fc.constantFrom('-', '.', '*', ' ', '\n', '%', '/')) }),
    fc.constantFrom(...REFUSED),
  )
  .chain(([text, refused]) =>
    fc.integer({ min: 0, max: text.length }).map((at) => text.slice(0, at) + refused + text.slice(at)),
  )
  .filter((text) => !/\p{Cs}/u.test(text));

/** A value for a query or path parameter that its schema cannot accept. */
function invalidParameter(schema: JsonSchema): fc.Arbitrary<string> {
  // Free text has a length limit; beyond it nothing passes, whatever the characters.
  if (schema.maxLength !== undefined && !schema.enum && !schema.format && !schema.pattern) {
    const tooLong = schema.maxLength + 1;
    return fc
      .tuple(hostile, fc.integer({ min: 0, max: 100 }))
      .map(([text, extra]) => `${'x'.repeat(tooLong + extra)}${text}`);
  }
  return hostile;
}

/** JSON types the schema allows (null when it says nothing, e.g. an unrepresentable type). */
function allowedTypes(schema: JsonSchema, components: OpenApi['components']): Set<string> | null {
  const resolved = schema.$ref ? components.schemas[schema.$ref.split('/').pop()!]! : schema;
  const union = resolved.anyOf ?? resolved.oneOf;
  if (union) {
    const parts = union.map((part) => allowedTypes(part, components));
    if (parts.some((part) => part === null)) return null;
    return new Set(parts.flatMap((part) => [...part!]));
  }
  let types: string[];
  if (resolved.type) types = [resolved.type === 'integer' ? 'number' : resolved.type];
  else if (resolved.enum) types = [...new Set(resolved.enum.map((value) => typeof value))];
  else return null;
  if (resolved.nullable) types.push('null');
  return new Set(types);
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}

const WRONG_TYPED: unknown[] = [7, 'x$(id)', true, [], [{ '`id`': 1 }], { '$(id)': 1 }, null];

/** A value no schema of these types accepts: of another JSON type altogether. */
function wrongType(allowed: Set<string>): fc.Arbitrary<unknown> {
  return fc.constantFrom(...WRONG_TYPED.filter((value) => !allowed.has(jsonType(value))));
}

/** Values for the other fields of a body: plausible, hostile or nonsense; they may be valid. */
const anyField: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    'nginx',
    'nginx.service',
    'api-*.service',
    'env=prod',
    'restart',
    'fleet-01',
    '10.0.0.1',
    1,
    0,
    -1,
    true,
  ),
  hostile,
  fc.jsonValue({ maxDepth: 2 }),
);

/**
 * Bodies that are no JSON object: broken, another type, deeply nested. (No empty body: the API
 * reads it as {}, which is valid where every field is optional.)
 */
const RAW_BODIES = [
  '{',
  '{"verb":',
  'nginx',
  '"nginx.service"',
  '[]',
  '[1,2]',
  '123',
  'null',
  'true',
  '{"a":1}}',
  "{'verb':'restart'}",
  '\u0000',
  `${'['.repeat(5_000)}${']'.repeat(5_000)}`,
];

/** A path parameter of a valid form that names nothing that exists (ids are uuids, attempts numbers). */
function validParameter(name: string): string {
  if (name === 'id' || (name.endsWith('Id') && name !== 'requestId')) return randomUUID();
  if (name === 'attempt') return '1';
  return `fuzz-${randomBytes(3).toString('hex')}`;
}

function requestsFor(route: string, method: string, operation: Operation, spec: OpenApi): fc.Arbitrary<FuzzRequest>[] {
  const parameters = operation.parameters ?? [];
  const pathParameters = parameters.filter((parameter) => parameter.in === 'path');
  const queryParameters = parameters.filter((parameter) => parameter.in === 'query');
  const bodySchema = operation.requestBody?.content['application/json'].schema;
  const bodyComponent = bodySchema?.$ref ? spec.components.schemas[bodySchema.$ref.split('/').pop()!] : undefined;
  /** Path parameters of a valid form, naming nothing that exists: only the bad part decides the answer. */
  const validPath = (overrides: Record<string, string> = {}) =>
    route.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(overrides[name] ?? validParameter(name)));
  const agent = (operation.security ?? []).some((requirement) => 'agentCredential' in requirement);
  const request = (url: string, body: unknown, field: string | null): FuzzRequest => ({
    method: method.toUpperCase(),
    url,
    body: body === undefined ? undefined : JSON.stringify(body),
    field,
    agent,
  });
  const arbitraries: fc.Arbitrary<FuzzRequest>[] = [];

  for (const parameter of pathParameters) {
    // With a body, the body may be refused first (pipes run in argument order): any field will do then.
    const field = bodyComponent ? null : parameter.name;
    arbitraries.push(
      invalidParameter(parameter.schema).map((bad) =>
        request(validPath({ [parameter.name]: bad }), bodyComponent ? {} : undefined, field),
      ),
    );
  }
  for (const parameter of queryParameters) {
    const others = fc.dictionary(
      fc.constantFrom(...queryParameters.map((other) => other.name)),
      fc.oneof(hostile, fc.constant('1')),
      { maxKeys: 3 },
    );
    arbitraries.push(
      fc.tuple(invalidParameter(parameter.schema), others).map(([bad, rest]) => {
        const search = new URLSearchParams({ ...rest, [parameter.name]: bad });
        return request(`${validPath()}?${search.toString()}`, undefined, parameter.name);
      }),
    );
  }
  if (bodyComponent?.properties) {
    const properties = Object.entries(bodyComponent.properties)
      .map(([name, schema]) => ({ name, allowed: allowedTypes(schema, spec.components) }))
      .filter((property): property is { name: string; allowed: Set<string> } => property.allowed !== null);
    for (const { name, allowed } of properties) {
      const rest = fc.dictionary(fc.constantFrom(...Object.keys(bodyComponent.properties), 'unknownField'), anyField, {
        maxKeys: 4,
      });
      arbitraries.push(
        fc
          .tuple(wrongType(allowed), rest)
          .map(([bad, others]) => request(validPath(), { ...others, [name]: bad }, name)),
      );
    }
    arbitraries.push(
      fc.constantFrom(...RAW_BODIES).map((raw) => ({ ...request(validPath(), undefined, null), body: raw })),
    );
  }
  return arbitraries;
}

describe('HTTP fuzzing: generated bad input to every route with input (walks openapi.json)', () => {
  let api: TestApi;
  let redis: Redis;
  let token: string;
  let agent: ProtocolAgent;
  const prefix = `drover-fuzz-${randomBytes(4).toString('hex')}`;

  const counts = async () =>
    Object.fromEntries(
      await Promise.all(TABLES.map(async (table) => [table, await countRows(api.database.url, table)])),
    ) as Record<string, number>;
  const queueKeys = async () => (await redis.keys(`${prefix}:*`)).sort();

  before(async () => {
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    redis = new Redis(testEnv.redisUrl);
    token = await api.token();
    // The agent protocol's routes are fuzzed as an enrolled agent calls them.
    const joinToken = await (await api.client()).POST('/v1/agent-join-tokens', { body: {} });
    agent = new ProtocolAgent(api.baseUrl);
    assert.equal((await agent.enrol(joinToken.data!.joinToken, 'fuzz-agent-host')).status, 201);
    assert.equal((await agent.login()).status, 201);
  });
  after(async () => {
    redis.disconnect();
    await api.close();
  });

  it(`answers ${REQUESTS} bad requests with 4xx problem+json naming the field, and writes and queues nothing`, async () => {
    const spec = JSON.parse(await readFile(path.resolve(__dirname, '../../../openapi.json'), 'utf8')) as OpenApi;
    const arbitraries = Object.entries(spec.paths).flatMap(([route, item]) =>
      Object.entries(item).flatMap(([method, operation]) => requestsFor(route, method, operation, spec)),
    );
    assert.ok(arbitraries.length >= 40, `${arbitraries.length} kinds of bad request`);
    const requests = fc.sample(fc.oneof(...arbitraries), { numRuns: REQUESTS, seed: 20261201 });
    const tablesBefore = await counts();
    const keysBefore = await queueKeys();

    const problems: string[] = [];
    const statuses = new Map<number, number>();
    let next = 0;
    const send = async (request: FuzzRequest) => {
      const response = await fetch(`${api.baseUrl}${request.url}`, {
        method: request.method,
        headers: {
          authorization: `Bearer ${request.agent ? agent.credential : token}`,
          'content-type': 'application/json',
          ...(request.agent ? { [AGENT_PROTOCOL_HEADER]: String(AGENT_PROTOCOL_VERSION) } : {}),
        },
        body: request.body,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const text = await response.text();
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      const where = `${request.method} ${request.url.slice(0, 200)} ${(request.body ?? '').slice(0, 200)} -> ${response.status} ${text.slice(0, 300)}`;
      if (response.status < 400 || response.status >= 500) return problems.push(where);
      if (!response.headers.get('content-type')?.startsWith('application/problem+json'))
        return problems.push(`not problem+json: ${where}`);
      const problem = JSON.parse(text) as { status?: number; errors?: { field: string; message: string }[] };
      if (problem.status !== response.status) return problems.push(`status differs: ${where}`);
      const fields = (problem.errors ?? []).map((error) => error.field);
      if (fields.length === 0 || fields.some((field) => typeof field !== 'string' || field === ''))
        return problems.push(`no field: ${where}`);
      if (
        request.field !== null &&
        !fields.some(
          (field) =>
            field === request.field || field.startsWith(`${request.field}.`) || field.startsWith(`${request.field}[`),
        )
      )
        return problems.push(`does not name ${request.field}: ${where}`);
    };
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < requests.length) await send(requests[next++]!);
      }),
    );

    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} of ${REQUESTS} answers were wrong`);
    assert.deepEqual(await counts(), tablesBefore, 'no request wrote anything');
    assert.deepEqual(await queueKeys(), keysBefore, 'no request queued anything');
    assert.ok(statuses.size > 0, JSON.stringify([...statuses]));
  });
});

import { applyDecorators } from '@nestjs/common';
import { ApiBody, ApiParam, ApiQuery, ApiResponse, OpenAPIObject } from '@nestjs/swagger';
import { z } from 'zod';
import { ProblemDto } from '../errors/problem';
import { ZodDtoClass } from '../validation/zod-dto';

type Direction = 'input' | 'output';

/** DTOs referenced by the decorators below, emitted as named components of the document. */
const components = new Map<string, { dto: ZodDtoClass; io: Direction }>();

function componentName(dto: ZodDtoClass): string {
  return dto.name.replace(/Dto$/, '');
}

function register(dto: ZodDtoClass, io: Direction): { $ref: string } {
  const name = componentName(dto);
  const known = components.get(name);
  if (known && known.dto !== dto) throw new Error(`two DTOs are named ${name}`);
  components.set(name, { dto, io });
  return { $ref: `#/components/schemas/${name}` };
}

/**
 * OpenAPI 3.0 allows `nullable` only beside a `type`: a nullable union of objects (zod renders it as
 * anyOf/oneOf plus nullable) gets the type its alternatives share.
 */
function typeNullableUnions(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(typeNullableUnions);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const schema = node as Record<string, unknown>;
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (schema.nullable === true && schema.type === undefined && Array.isArray(alternatives)) {
    const objects = alternatives.every(
      (alternative) =>
        typeof alternative === 'object' &&
        alternative !== null &&
        (alternative as { type?: unknown }).type === 'object',
    );
    if (objects) schema.type = 'object';
  }
  Object.values(schema).forEach(typeNullableUnions);
}

function toOpenApi(schema: z.ZodType, io: Direction): Record<string, unknown> {
  const rendered = z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' });
  typeNullableUnions(rendered);
  return rendered;
}

function objectShape(dto: ZodDtoClass): Record<string, z.ZodType> {
  if (!(dto.schema instanceof z.ZodObject)) throw new Error(`${dto.name} must be a zod object`);
  return dto.schema.shape;
}

export function ApiZodBody(dto: ZodDtoClass): MethodDecorator {
  return ApiBody({ schema: register(dto, 'input') });
}

export function ApiZodQuery(dto: ZodDtoClass): MethodDecorator {
  return applyDecorators(
    ...Object.entries(objectShape(dto)).map(([name, field]) =>
      ApiQuery({
        name,
        required: !field.safeParse(undefined).success,
        schema: toOpenApi(field, 'input'),
        ...(field.description ? { description: field.description } : {}),
      }),
    ),
  );
}

export function ApiZodParams(dto: ZodDtoClass): MethodDecorator {
  return applyDecorators(
    ...Object.entries(objectShape(dto)).map(([name, field]) =>
      ApiParam({
        name,
        schema: toOpenApi(field, 'input'),
        ...(field.description ? { description: field.description } : {}),
      }),
    ),
  );
}

export function ApiZodResponse(status: number, description: string, dto?: ZodDtoClass): MethodDecorator {
  return ApiResponse({ status, description, ...(dto ? { schema: register(dto, 'output') } : {}) });
}

/** A server-sent event stream whose events each have the DTO's shape. */
export function ApiZodEventStream(description: string, dto: ZodDtoClass): MethodDecorator {
  return ApiResponse({
    status: 200,
    description,
    content: { 'text/event-stream': { schema: register(dto, 'output') } },
  });
}

const problemDescriptions: Record<number, string> = {
  400: 'Invalid input; `errors` names each bad field',
  401: 'Missing, unknown, expired or revoked bearer token',
  403: 'The token lacks the scope this operation needs',
  404: 'The named resource does not exist',
  409: 'The resource conflicts with an existing one',
  422: 'Well-formed, but cannot be carried out (e.g. the selector matches no host)',
  429: 'Too many requests from this token; Retry-After says when to retry',
};

/** Documents the problem+json error responses an operation can return. */
export function ApiProblems(...statuses: (keyof typeof problemDescriptions)[]): MethodDecorator {
  const schema = register(ProblemDto, 'output');
  return applyDecorators(
    ...statuses.map((status) =>
      ApiResponse({
        status,
        description: problemDescriptions[status] ?? 'Error',
        content: { 'application/problem+json': { schema } },
      }),
    ),
  );
}

/** Adds the schema of every DTO referenced by a decorator to the generated document. */
export function addZodComponents(document: OpenAPIObject): OpenAPIObject {
  const schemas = { ...document.components?.schemas };
  for (const [name, { dto, io }] of [...components.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    schemas[name] = toOpenApi(dto.schema, io);
  }
  return { ...document, components: { ...document.components, schemas } };
}

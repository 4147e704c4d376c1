import { z } from 'zod';

/**
 * A DTO class backed by one zod schema. The schema is the single source of truth: the global
 * ZodValidationPipe parses requests with it and the OpenAPI document is generated from it.
 */
export interface ZodDtoClass<S extends z.ZodType = z.ZodType> {
  new (): z.output<S>;
  readonly schema: S;
}

export function createZodDto<S extends z.ZodType>(schema: S): ZodDtoClass<S> {
  class ZodDto {
    static readonly schema = schema;
  }
  return ZodDto as unknown as ZodDtoClass<S>;
}

export function isZodDtoClass(value: unknown): value is ZodDtoClass {
  return typeof value === 'function' && 'schema' in value && value.schema instanceof z.ZodType;
}

/** Formats a zod issue path the way a client writes it: `hosts[3].labels.role`. */
export function formatIssuePath(path: readonly PropertyKey[], prefix = ''): string {
  let field = prefix;
  for (const segment of path) {
    if (typeof segment === 'number') field += `[${segment}]`;
    else field += field === '' ? String(segment) : `.${String(segment)}`;
  }
  return field;
}

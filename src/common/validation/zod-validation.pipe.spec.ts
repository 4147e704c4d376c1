import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { RequestValidationError } from '../errors/domain-errors';
import { createZodDto } from './zod-dto';
import { issuesToFieldErrors, ZodValidationPipe } from './zod-validation.pipe';

function issuesOf(schema: z.ZodType, value: unknown): z.core.$ZodIssue[] {
  const result = schema.safeParse(value);
  assert.equal(result.success, false, 'expected the value to be rejected');
  return result.error?.issues ?? [];
}

const itemsSchema = z.strictObject({
  items: z.array(z.strictObject({ name: z.string(), tags: z.record(z.string(), z.string()).optional() })),
});

describe('issuesToFieldErrors', () => {
  it('names each unknown key with its full path', () => {
    const issues = issuesOf(itemsSchema, { items: [{ name: 'a' }, { name: 'b', extra: 1, other: 2 }] });
    assert.deepEqual(issuesToFieldErrors(issues), [
      { field: 'items[1].extra', message: 'is not a known field' },
      { field: 'items[1].other', message: 'is not a known field' },
    ]);
  });

  it('names unknown top-level keys by themselves', () => {
    assert.deepEqual(issuesToFieldErrors(issuesOf(itemsSchema, { items: [], extra: true })), [
      { field: 'extra', message: 'is not a known field' },
    ]);
  });

  it('names a bad value by its path and keeps zod’s message', () => {
    const errors = issuesToFieldErrors(issuesOf(itemsSchema, { items: [{ name: 'a' }, { name: 7 }] }));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.field, 'items[1].name');
    assert.match(errors[0]?.message ?? '', /expected string/);
  });

  it('names record entries by their key', () => {
    const errors = issuesToFieldErrors(issuesOf(itemsSchema, { items: [{ name: 'a', tags: { role: 1 } }] }));
    assert.deepEqual(
      errors.map((e) => e.field),
      ['items[0].tags.role'],
    );
  });

  it('names problems with the whole body (body)', () => {
    const errors = issuesToFieldErrors(issuesOf(itemsSchema, 'not an object'));
    assert.deepEqual(
      errors.map((e) => e.field),
      ['(body)'],
    );
  });

  it('keeps one error per issue, in order, for hand-made issues', () => {
    const issues: z.core.$ZodIssue[] = [
      { code: 'custom', path: ['hosts', 2, 'name'], message: 'duplicates hosts[0].name', input: 'a' },
      { code: 'unrecognized_keys', path: [], keys: ['x'], message: 'Unrecognized key: "x"', input: {} },
    ];
    assert.deepEqual(issuesToFieldErrors(issues), [
      { field: 'hosts[2].name', message: 'duplicates hosts[0].name' },
      { field: 'x', message: 'is not a known field' },
    ]);
  });

  it('returns no errors for no issues', () => {
    assert.deepEqual(issuesToFieldErrors([]), []);
  });
});

describe('ZodValidationPipe', () => {
  class ItemsDto extends createZodDto(itemsSchema) {}
  class QueryDto extends createZodDto(z.object({ limit: z.coerce.number().default(100) })) {}
  const pipe = new ZodValidationPipe();

  it('passes values of non-DTO types through untouched', () => {
    const value = { anything: 1 };
    assert.equal(pipe.transform(value, { type: 'body', metatype: Object }), value);
    assert.equal(pipe.transform('x', { type: 'param', metatype: String, data: 'name' }), 'x');
    assert.equal(pipe.transform(value, { type: 'body' }), value);
  });

  it('returns the parsed value of a DTO, with defaults and coercions applied', () => {
    assert.deepEqual(pipe.transform({ limit: '5' }, { type: 'query', metatype: QueryDto }), { limit: 5 });
    assert.deepEqual(pipe.transform(undefined, { type: 'query', metatype: QueryDto }), { limit: 100 });
  });

  it('throws RequestValidationError listing every bad field', () => {
    assert.throws(
      () => pipe.transform({ items: [{ name: 1 }, { name: 'b', extra: true }] }, { type: 'body', metatype: ItemsDto }),
      (error: unknown) => {
        assert.ok(error instanceof RequestValidationError);
        assert.equal(error.status, 400);
        assert.equal(error.code, 'validation_failed');
        assert.deepEqual(
          error.errors.map((e) => e.field),
          ['items[0].name', 'items[1].extra'],
        );
        assert.match(error.message, /^items\[0\]\.name: .+; items\[1\]\.extra: is not a known field$/);
        return true;
      },
    );
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { z } from 'zod';
import { createZodDto, formatIssuePath, isZodDtoClass } from './zod-dto';

describe('formatIssuePath', () => {
  it('writes object keys with dots and array indexes in brackets', () => {
    assert.equal(formatIssuePath(['hosts', 3, 'labels', 'role']), 'hosts[3].labels.role');
    assert.equal(formatIssuePath(['hosts', 1, 'extra']), 'hosts[1].extra');
    assert.equal(formatIssuePath(['matrix', 0, 2]), 'matrix[0][2]');
  });

  it('writes the empty path as the empty string', () => {
    assert.equal(formatIssuePath([]), '');
  });

  it('starts with an index when the path starts with one', () => {
    assert.equal(formatIssuePath([0, 'name']), '[0].name');
  });

  it('appends the path to a prefix', () => {
    assert.equal(formatIssuePath(['name'], 'query'), 'query.name');
    assert.equal(formatIssuePath([2, 'name'], 'hosts'), 'hosts[2].name');
    assert.equal(formatIssuePath([], 'body'), 'body');
  });

  it('keeps label keys that contain dots and slashes whole', () => {
    assert.equal(formatIssuePath(['hosts', 0, 'labels', 'example.com/role']), 'hosts[0].labels.example.com/role');
  });

  it('writes symbols by their description', () => {
    assert.equal(formatIssuePath(['a', Symbol('s')]), 'a.Symbol(s)');
  });

  it('matches a reference formatter for any path of keys and indexes', () => {
    const segment = fc.oneof(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/), fc.nat({ max: 99 }));
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 6 }), (path) => {
        const expected = path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
        assert.equal(formatIssuePath(path), expected);
      }),
      { numRuns: 300 },
    );
  });
});

describe('createZodDto / isZodDtoClass', () => {
  const schema = z.object({ name: z.string() });

  it('exposes the schema on the DTO class and its subclasses', () => {
    class NameDto extends createZodDto(schema) {}
    assert.equal(NameDto.schema, schema);
    assert.equal(isZodDtoClass(NameDto), true);
  });

  it('does not take plain classes, objects or schemas for DTOs', () => {
    class Plain {}
    assert.equal(isZodDtoClass(Plain), false);
    assert.equal(isZodDtoClass(Object), false);
    assert.equal(isZodDtoClass(String), false);
    assert.equal(isZodDtoClass({ schema }), false);
    assert.equal(isZodDtoClass(undefined), false);
    assert.equal(isZodDtoClass(schema), false);
  });
});

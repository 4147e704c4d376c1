import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { z } from 'zod';
import { InvalidCursorError } from '../errors/domain-errors';
import { decodeCursor, encodeCursor, toPage } from './cursor';

const nameCursor = z.object({ name: z.string() });
const hostUnitCursor = z.object({ host: z.string(), unit: z.string() });

// Any UTF-16 string, lone surrogates included.
const anyText = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 })
  .map((codes) => String.fromCharCode(...codes));

function base64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}

function assertInvalid(cursor: string): void {
  assert.throws(() => decodeCursor(cursor, nameCursor), InvalidCursorError, JSON.stringify(cursor));
}

describe('encodeCursor / decodeCursor', () => {
  it('round-trips a sort key', () => {
    assert.deepEqual(decodeCursor(encodeCursor({ name: 'web-01' }), nameCursor), { name: 'web-01' });
    assert.deepEqual(decodeCursor(encodeCursor({ host: 'h', unit: 'nginx.service' }), hostUnitCursor), {
      host: 'h',
      unit: 'nginx.service',
    });
  });

  it('produces URL-safe text without padding', () => {
    assert.match(encodeCursor({ name: '??>>~~ÿ' }), /^[A-Za-z0-9_-]+$/);
  });

  it('rejects text that is not base64url JSON', () => {
    for (const cursor of ['', 'not a cursor', '%%%%', base64url('{"name":'), base64url('name=web')]) {
      assertInvalid(cursor);
    }
  });

  it('rejects JSON that does not have the expected shape', () => {
    for (const json of ['null', '[]', '"web"', '42', '{}', '{"name":1}', '{"name":null}', '{"unit":"web"}']) {
      assertInvalid(base64url(json));
    }
  });

  it('rejects a cursor of one listing when passed to another', () => {
    assert.throws(() => decodeCursor(encodeCursor({ unit: 'nginx.service' }), nameCursor), InvalidCursorError);
  });

  it('rejects a cursor with a character added in front', () => {
    const cursor = encodeCursor({ name: 'web-01' });
    for (const prefix of ['A', 'x', '_']) assertInvalid(`${prefix}${cursor}`);
  });

  it('reports the failure as a 400 naming the cursor field', () => {
    try {
      decodeCursor('garbage', nameCursor);
      assert.fail('expected InvalidCursorError');
    } catch (error) {
      assert.ok(error instanceof InvalidCursorError);
      assert.equal(error.status, 400);
      assert.equal(error.code, 'cursor_invalid');
      assert.deepEqual(
        error.errors.map((e) => e.field),
        ['cursor'],
      );
    }
  });

  describe('properties', () => {
    it('round-trips any sort key of any strings', () => {
      fc.assert(
        fc.property(anyText, anyText, (host, unit) => {
          assert.deepEqual(decodeCursor(encodeCursor({ host, unit }), hostUnitCursor), { host, unit });
        }),
        { numRuns: 300 },
      );
    });

    it('rejects every truncation of a cursor', () => {
      fc.assert(
        fc.property(anyText, fc.nat(), (name, cut) => {
          const cursor = encodeCursor({ name });
          assertInvalid(cursor.slice(0, cut % cursor.length));
        }),
        { numRuns: 300 },
      );
    });

    it('either decodes to the expected shape or throws InvalidCursorError, for any string', () => {
      const cursorAlphabet = fc.constantFrom(
        ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_='.split(''),
      );
      const input = fc.oneof(
        anyText,
        fc.array(cursorAlphabet, { maxLength: 40 }).map((chars) => chars.join('')),
        anyText.map(base64url),
      );
      fc.assert(
        fc.property(input, (cursor) => {
          try {
            const key = decodeCursor(cursor, nameCursor);
            assert.equal(typeof key.name, 'string');
          } catch (error) {
            assert.ok(error instanceof InvalidCursorError, `unexpected ${String(error)}`);
          }
        }),
        { numRuns: 400 },
      );
    });
  });
});

describe('toPage', () => {
  const rows = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
  const toItem = (row: { id: string }): string => row.id.toUpperCase();
  const cursorKey = (row: { id: string }): Record<string, string> => ({ name: row.id });

  it('has no next cursor when the rows fit in the page', () => {
    assert.deepEqual(toPage(rows, 3, toItem, cursorKey), { items: ['A', 'B', 'C'], nextCursor: null });
    assert.deepEqual(toPage(rows, 5, toItem, cursorKey), { items: ['A', 'B', 'C'], nextCursor: null });
  });

  it('has no next cursor for no rows', () => {
    assert.deepEqual(toPage([], 10, toItem, cursorKey), { items: [], nextCursor: null });
  });

  it('drops the extra row and points the next cursor at the last item of the page', () => {
    const page = toPage(rows, 2, toItem, cursorKey);
    assert.deepEqual(page.items, ['A', 'B']);
    assert.ok(page.nextCursor !== null);
    assert.deepEqual(decodeCursor(page.nextCursor, nameCursor), { name: 'b' });
  });

  it('computes the cursor key from the last page row only', () => {
    const keyed: string[] = [];
    toPage(rows, 2, toItem, (row) => {
      keyed.push(row.id);
      return { name: row.id };
    });
    assert.deepEqual(keyed, ['b']);
  });

  it('sets nextCursor exactly when there are more rows than the limit', () => {
    fc.assert(
      fc.property(fc.array(fc.string(), { maxLength: 30 }), fc.integer({ min: 1, max: 30 }), (ids, limit) => {
        const page = toPage(
          ids.map((id) => ({ id })),
          limit,
          (row) => row.id,
          (row) => ({ name: row.id }),
        );
        assert.deepEqual(page.items, ids.slice(0, limit));
        if (ids.length > limit) {
          assert.ok(page.nextCursor !== null);
          assert.deepEqual(decodeCursor(page.nextCursor, nameCursor), { name: ids[limit - 1] });
        } else {
          assert.equal(page.nextCursor, null);
        }
      }),
      { numRuns: 300 },
    );
  });
});

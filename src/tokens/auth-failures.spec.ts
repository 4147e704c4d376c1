import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AuthFailure,
  AuthFailureRecord,
  AuthFailureWindows,
  MAX_PREFIXES_PER_SOURCE,
  tokenPrefixOf,
} from './auth-failures';

const failure = (overrides: Partial<AuthFailure> = {}): AuthFailure => ({
  reason: 'unknown',
  tokenPrefix: 'drv_abcdefgh',
  sourceAddress: '203.0.113.7',
  requestId: 'r1',
  ...overrides,
});

describe('AuthFailureWindows', () => {
  it('writes the first failure of a key at once and the rest with their count when the window ends', () => {
    const windows = new AuthFailureWindows(60_000);
    const first = windows.add(failure(), 60_000);
    assert.deepEqual(first.due, []);
    assert.equal(first.first?.count, 1);
    assert.deepEqual(first.first?.windowStart, new Date(60_000));
    for (let index = 0; index < 99; index += 1) assert.equal(windows.add(failure(), 60_001 + index).first, null);
    assert.deepEqual(windows.takeDue(119_999), [], 'nothing is due while the window is open');
    const [rest, ...others] = windows.takeDue(120_000);
    assert.deepEqual(others, []);
    assert.equal(rest?.count, 99);
    assert.deepEqual(windows.takeDue(Infinity), [], 'each failure is written once');
  });

  it('folds a source trying many different tokens into one key instead of one event per token', () => {
    const windows = new AuthFailureWindows(60_000);
    const firsts = Array.from(
      { length: 50 },
      (_unused, index) => windows.add(failure({ tokenPrefix: `drv_${String(index).padStart(8, '0')}` }), 1_000).first,
    ).filter((record) => record !== null);
    assert.equal(firsts.length, MAX_PREFIXES_PER_SOURCE + 1);
    assert.equal(firsts.at(-1)?.tokenPrefix, '*');
    const rest = windows.takeDue(Infinity);
    assert.deepEqual(rest, [{ ...firsts.at(-1)!, count: 50 - MAX_PREFIXES_PER_SOURCE - 1 }]);
  });

  it('never loses or double-counts a failure, and writes at most two events per key and window (property)', () => {
    const arbitraryFailure = fc.record({
      reason: fc.constantFrom('missing', 'malformed', 'unknown', 'expired', 'revoked' as const),
      tokenPrefix: fc.option(fc.constantFrom('drv_a', 'drv_b', 'drv_c'), { nil: null }),
      sourceAddress: fc.constantFrom('10.0.0.1', '10.0.0.2'),
      requestId: fc.constant(null),
    });
    fc.assert(
      fc.property(fc.array(fc.tuple(arbitraryFailure, fc.nat(10_000)), { maxLength: 300 }), (timed) => {
        const windows = new AuthFailureWindows(1_000);
        const written: AuthFailureRecord[] = [];
        let now = 0;
        for (const [item, delay] of timed) {
          now += delay;
          const { due, first } = windows.add(item, now);
          written.push(...due, ...(first ? [first] : []));
        }
        written.push(...windows.takeDue(Infinity));
        assert.equal(
          written.reduce((sum, record) => sum + record.count, 0),
          timed.length,
        );
        const perKey = new Map<string, number>();
        for (const record of written) {
          const key = JSON.stringify([record.sourceAddress, record.tokenPrefix, record.reason, record.windowStart]);
          perKey.set(key, (perKey.get(key) ?? 0) + 1);
        }
        assert.ok([...perKey.values()].every((events) => events <= 2));
      }),
    );
  });
});

describe('tokenPrefixOf', () => {
  it('keeps drv_ and 8 characters of a token, never the secret', () => {
    const secret = `drv_${'A'.repeat(43)}`;
    assert.equal(tokenPrefixOf(secret), 'drv_AAAAAAAA');
    assert.equal(tokenPrefixOf(null), null);
  });
});

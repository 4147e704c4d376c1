import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { attemptOutcome, retryDelayMs, RetryPolicy } from './webhook-retry';

const POLICY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 1_000, maxDelayMs: 10_000 };
const noJitter = () => 0;

describe('retryDelayMs', () => {
  it('doubles from the base after each failed attempt, up to the cap', () => {
    const delays = [1, 2, 3, 4, 5, 6].map((attempt) => retryDelayMs(POLICY, attempt, noJitter));
    assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
  });

  it('takes at most a quarter off at random, and never goes below 1 ms or above the cap', () => {
    assert.equal(
      retryDelayMs(POLICY, 1, () => 0.999_999),
      750,
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const delay = retryDelayMs(POLICY, attempt, () => r);
          const ceiling = Math.min(POLICY.maxDelayMs, POLICY.baseDelayMs * 2 ** Math.min(attempt - 1, 40));
          assert.ok(delay >= Math.floor(ceiling * 0.75) && delay <= ceiling, `${attempt}: ${delay}`);
        },
      ),
    );
  });
});

describe('attemptOutcome', () => {
  it('delivers on any 2xx', () => {
    for (const status of [200, 201, 202, 204, 299]) {
      assert.deepEqual(attemptOutcome(POLICY, 1, status), { status: 'delivered' });
    }
  });

  it('retries other statuses and no response until the attempts are used up, then fails', () => {
    for (const status of [null, 199, 301, 400, 404, 429, 500, 503]) {
      assert.deepEqual(attemptOutcome(POLICY, 1, status, noJitter), { status: 'pending', retryInMs: 1_000 });
      assert.deepEqual(attemptOutcome(POLICY, 4, status, noJitter), { status: 'pending', retryInMs: 8_000 });
      assert.deepEqual(attemptOutcome(POLICY, 5, status, noJitter), { status: 'failed' });
    }
  });

  it('a success on the last allowed attempt still delivers', () => {
    assert.deepEqual(attemptOutcome(POLICY, 5, 200), { status: 'delivered' });
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffMs, MAX_BACKOFF_MS } from './backoff';

describe('backoffMs', () => {
  it('is a random time up to a bound that doubles with each failure', () => {
    assert.equal(
      backoffMs(1, () => 0),
      0,
    );
    assert.equal(
      backoffMs(1, () => 0.5),
      500,
    );
    assert.equal(
      backoffMs(2, () => 0.5),
      1_000,
    );
    assert.equal(
      backoffMs(4, () => 0.5),
      4_000,
    );
  });

  it('never waits 60 s or more', () => {
    for (const failures of [7, 20, 1_000]) {
      assert.ok(backoffMs(failures, () => 0.999_999) < MAX_BACKOFF_MS);
      assert.equal(
        backoffMs(failures, () => 0.5),
        MAX_BACKOFF_MS / 2,
      );
    }
    assert.equal(MAX_BACKOFF_MS, 60_000);
  });

  it('stays within its bounds with real randomness', () => {
    for (let index = 0; index < 1_000; index++) {
      const waitMs = backoffMs(3);
      assert.ok(waitMs >= 0 && waitMs < 4_000);
    }
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitAtMost } from './wait-at-most';

describe('waitAtMost', () => {
  it('is true when the work settles in time', async () => {
    assert.equal(await waitAtMost(Promise.resolve('done'), 60_000), true);
  });

  it('is false once the time is up, while the work still runs', async () => {
    let finish: () => void = () => undefined;
    const work = new Promise<void>((resolve) => (finish = resolve));
    assert.equal(await waitAtMost(work, 10), false);
    finish();
    assert.equal(await waitAtMost(work, 10), true);
  });
});

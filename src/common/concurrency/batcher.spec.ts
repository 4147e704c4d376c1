import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher, statementBatcher } from './batcher';

/** A batcher doubling numbers, recording each batch it ran; `failWhen` makes a batch reject. */
function doubling(maxSize: number, failWhen: (items: readonly number[]) => boolean = () => false) {
  const batches: number[][] = [];
  const failures: number[] = [];
  const batcher = new Batcher<number, number>({
    runMany: (items) => {
      batches.push([...items]);
      return failWhen(items)
        ? Promise.reject(new Error(`refused ${items.join(',')}`))
        : Promise.resolve(items.map((n) => 2 * n));
    },
    keyOf: (n) => String(n),
    maxSize,
    onBatchFailed: (_error, size) => failures.push(size),
  });
  return { batcher, batches, failures };
}

describe('Batcher', () => {
  it('runs the calls of one turn as one batch, and each caller gets its own result', async () => {
    const { batcher, batches } = doubling(100);
    assert.deepEqual(await Promise.all([1, 2, 3].map((n) => batcher.run(n))), [2, 4, 6]);
    assert.deepEqual(batches, [[1, 2, 3]]);
  });

  it('runs a call alone when nothing else is asked in its turn', async () => {
    const { batcher, batches } = doubling(100);
    assert.equal(await batcher.run(1), 2);
    assert.equal(await batcher.run(2), 4);
    assert.deepEqual(batches, [[1], [2]]);
  });

  it('starts a batch as soon as it is full', async () => {
    const { batcher, batches } = doubling(2);
    assert.deepEqual(await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.run(n))), [2, 4, 6, 8, 10]);
    assert.deepEqual(batches, [[1, 2], [3, 4], [5]]);
  });

  it('never puts two calls with the same key in one batch', async () => {
    const { batcher, batches } = doubling(100);
    assert.deepEqual(await Promise.all([1, 2, 1, 3].map((n) => batcher.run(n))), [2, 4, 2, 6]);
    assert.deepEqual(batches, [
      [1, 2],
      [1, 3],
    ]);
  });

  it("runs a failed batch's calls one by one, so that only the failing one fails", async () => {
    const { batcher, batches, failures } = doubling(100, (items) => items.includes(2));
    const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.run(n)));
    assert.deepEqual(
      results.map((result) => (result.status === 'fulfilled' ? result.value : (result.reason as Error).message)),
      [2, 'refused 2', 6],
    );
    assert.deepEqual(batches, [[1, 2, 3], [1], [2], [3]]);
    assert.deepEqual(failures, [3], 'the failed batch is reported once');
  });

  it('fails every call of a batch that gave the wrong number of results, without running it again', async () => {
    let runs = 0;
    const batcher = new Batcher<number, number>({
      runMany: () => {
        runs += 1;
        return Promise.resolve([0]);
      },
      keyOf: (n) => String(n),
      maxSize: 100,
    });
    const results = await Promise.allSettled([1, 2].map((n) => batcher.run(n)));
    assert.deepEqual(
      results.map((result) => result.status === 'rejected' && (result.reason as Error).message),
      ['a batch of 2 gave 1 result(s)', 'a batch of 2 gave 1 result(s)'],
    );
    assert.equal(runs, 1);
  });

  it('still runs the calls of a failed batch when its listener throws', async () => {
    let first = true;
    const batcher = new Batcher<number, number>({
      runMany: (items) => {
        if (first) {
          first = false;
          return Promise.reject(new Error('deadlock'));
        }
        return Promise.resolve(items.map((n) => n + 1));
      },
      keyOf: (n) => String(n),
      maxSize: 100,
      onBatchFailed: () => {
        throw new Error('listener failed');
      },
    });
    assert.deepEqual(await Promise.all([1, 2].map((n) => batcher.run(n))), [2, 3]);
  });
});

describe('statementBatcher', () => {
  it('logs a failed batch of several naming its statements, then runs each call alone', async () => {
    const warnings: { fields: object; message: string }[] = [];
    const batches: number[][] = [];
    const batcher = statementBatcher<number, number>(
      { warn: (fields, message) => warnings.push({ fields, message }) },
      'doublings',
      {
        runMany: (items) => {
          batches.push([...items]);
          return items.length > 1 ? Promise.reject(new Error('too many')) : Promise.resolve([2 * items[0]!]);
        },
        keyOf: (n) => String(n),
        maxSize: 10,
      },
    );
    assert.deepEqual(await Promise.all([1, 2].map((n) => batcher.run(n))), [2, 4]);
    assert.deepEqual(batches, [[1, 2], [1], [2]]);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.message, 'a batch of 2 doublings failed; each is made on its own');
    assert.deepEqual(Object.keys(warnings[0]!.fields), ['err', 'size']);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TaskOutputStream } from './task-output';

describe('TaskOutputStream', () => {
  it('stores every chunk in order, batched, and nothing twice', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string(), { maxLength: 30 }), async (chunks) => {
        const writes: string[] = [];
        const stream = new TaskOutputStream((text) => Promise.resolve(void writes.push(text)), 1_000_000, 1);
        for (const chunk of chunks) stream.push(chunk);
        await stream.flush(true);
        assert.equal(writes.join(''), chunks.join(''));
        assert.equal(stream.wrote, chunks.join('') !== '');
      }),
      { numRuns: 100 },
    );
  });

  it('stops storing at its bound and says how much it dropped', async () => {
    const writes: string[] = [];
    const stream = new TaskOutputStream((text) => Promise.resolve(void writes.push(text)), 10, 1);
    stream.push('0123456');
    stream.push('789abcdef');
    await stream.flush(true);
    const stored = writes.join('');
    assert.ok(stored.startsWith('0123456789'));
    assert.match(stored, /6 more characters of output were not stored/);
  });

  it('reports a failed write when flushed', async () => {
    const stream = new TaskOutputStream(() => Promise.reject(new Error('database gone')), 100, 1);
    stream.push('x');
    await assert.rejects(stream.flush(true), /database gone/);
  });
});

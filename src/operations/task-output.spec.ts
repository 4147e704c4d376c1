import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { storableText, TaskOutputStream } from './task-output';

const unexpected = (error: unknown) => assert.fail(`unexpected write failure: ${String(error)}`);

describe('TaskOutputStream', () => {
  it('stores every chunk in order, batched, and nothing twice', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string(), { maxLength: 30 }), async (chunks) => {
        const writes: string[] = [];
        const stream = new TaskOutputStream(
          (text) => Promise.resolve(void writes.push(text)),
          unexpected,
          1_000_000,
          1,
        );
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
    const stream = new TaskOutputStream((text) => Promise.resolve(void writes.push(text)), unexpected, 10, 1);
    stream.push('0123456');
    stream.push('789abcdef');
    await stream.flush(true);
    const stored = writes.join('');
    assert.ok(stored.startsWith('0123456789'));
    assert.match(stored, /6 more characters of output were not stored/);
  });

  it('reports a failed write once, stops streaming, and never fails the flush', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const stream = new TaskOutputStream(
      () => {
        calls++;
        return Promise.reject(new Error('database gone'));
      },
      (error) => errors.push(error),
      100,
      1,
    );
    stream.push('x');
    await stream.flush();
    stream.push('y');
    await stream.flush(true);
    assert.equal(calls, 1);
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /database gone/);
    assert.equal(stream.wrote, false, 'the stored output is incomplete: the caller stores its own');
  });
});

describe('storableText', () => {
  it('replaces NUL and lone surrogates, and keeps everything else', () => {
    assert.equal(storableText('a\0b'), 'a\uFFFDb');
    assert.equal(storableText('cut \uD83D'), 'cut \uFFFD');
    assert.equal(storableText('\uDE00 tail'), '\uFFFD tail');
    assert.equal(storableText('whole \uD83D\uDE00'), 'whole \uD83D\uDE00');
  });

  it('always yields text PostgreSQL stores as it is (no NUL, UTF-8 round trip)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)) }),
        (text) => {
          const stored = storableText(text);
          assert.ok(!stored.includes('\0'));
          assert.equal(Buffer.from(stored, 'utf8').toString('utf8'), stored);
          assert.equal(stored.length, text.length);
        },
      ),
      { numRuns: 500 },
    );
  });
});

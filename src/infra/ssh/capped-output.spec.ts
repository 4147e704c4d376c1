import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CappedOutput } from './capped-output';

/** Feeds `text` (as UTF-8) to a CappedOutput in chunks cut at the given positions. */
function capture(maxBytes: number, text: string, cuts: number[] = []): CappedOutput {
  const bytes = Buffer.from(text, 'utf8');
  const output = new CappedOutput(maxBytes);
  let start = 0;
  for (const cut of [...cuts.map((at) => at % (bytes.length + 1)).sort((a, b) => a - b), bytes.length]) {
    output.append(bytes.subarray(start, Math.max(start, cut)));
    start = Math.max(start, cut);
  }
  return output;
}

describe('CappedOutput', () => {
  it('keeps everything up to the limit, whatever the chunking', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), fc.array(fc.nat()), (text, cuts) => {
        const output = capture(Buffer.byteLength(text) + 2, text, cuts);
        assert.equal(output.truncated, false);
        assert.equal(output.toString(), text);
      }),
    );
  });

  it('keeps the head and the tail and says how many bytes it dropped', () => {
    const output = capture(10, 'abcdefghijklmnopqrstuvwxyz', [3, 7, 20]);
    assert.equal(output.truncated, true);
    assert.equal(output.toString(), 'abcde\n[... 16 bytes of output dropped ...]\nvwxyz');
  });

  it('never splits a character at the cuts and counts every byte', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', minLength: 1, maxLength: 200 }),
        fc.integer({ min: 2, max: 64 }),
        fc.array(fc.nat()),
        (text, maxBytes, cuts) => {
          const output = capture(maxBytes, text, cuts);
          const total = Buffer.byteLength(text);
          assert.equal(output.truncated, total > maxBytes);
          if (!output.truncated) return;
          const match = /^([^]*)\n\[\.\.\. (\d+) bytes of output dropped \.\.\.\]\n([^]*)$/.exec(output.toString());
          assert.ok(match, output.toString());
          const [, head, dropped, tail] = match as unknown as [string, string, string, string];
          assert.ok(text.startsWith(head) && text.endsWith(tail), 'head and tail are intact characters of the text');
          assert.equal(Buffer.byteLength(head) + Number(dropped) + Buffer.byteLength(tail), total);
          assert.ok(Buffer.byteLength(head) + Buffer.byteLength(tail) <= maxBytes);
        },
      ),
    );
  });

  it('holds at most the limit however much is appended', () => {
    const output = new CappedOutput(1000);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    for (let i = 0; i < 200; i++) output.append(chunk);
    const text = output.toString();
    assert.ok(text.startsWith('x'.repeat(500)) && text.endsWith('x'.repeat(500)));
    assert.match(text, new RegExp(`\\[\\.\\.\\. ${200 * 64 * 1024 - 1000} bytes of output dropped`));
  });

  it('rejects a limit too small to hold a head and a tail', () => {
    assert.throws(() => new CappedOutput(1), RangeError);
    assert.throws(() => new CappedOutput(Number.NaN), RangeError);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OutputChunk } from '@drover/protocol';
import { AttemptOutput, chunksOf, OUTPUT_CHUNK_CHARS } from './output';

describe('AttemptOutput', () => {
  it('cuts output into chunks the protocol accepts, never inside a character', () => {
    const text = `${'a'.repeat(OUTPUT_CHUNK_CHARS - 1)}😀${'b'.repeat(10)}`;
    const chunks = chunksOf(text);
    assert.equal(chunks.join(''), text);
    assert.ok(chunks.every((chunk) => chunk.length <= OUTPUT_CHUNK_CHARS));
    assert.equal(chunks[0]?.length, OUTPUT_CHUNK_CHARS - 1);
  });

  it('numbers chunks 0, 1, 2 and sends a failed one again', async () => {
    const sent: OutputChunk[] = [];
    let failOnce = true;
    const output = new AttemptOutput(
      (chunk) => {
        if (failOnce) {
          failOnce = false;
          return Promise.reject(new Error('unreachable'));
        }
        sent.push(chunk);
        return Promise.resolve(true);
      },
      () => assert.fail('no error expected'),
      1,
    );
    output.push('x'.repeat(OUTPUT_CHUNK_CHARS + 5));
    output.push('tail\0');
    await output.flush(true);
    assert.deepEqual(
      sent.map((chunk) => chunk.seq),
      [0, 1],
    );
    assert.equal(sent[1]?.text, 'xxxxxtail\uFFFD');
  });

  it('stops after the server says the attempt lost the task', async () => {
    let posts = 0;
    const output = new AttemptOutput(
      () => {
        posts++;
        return Promise.resolve(false);
      },
      () => undefined,
    );
    output.push('one');
    await output.flush();
    output.push('two');
    await output.flush(true);
    assert.equal(posts, 1);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import fc from 'fast-check';
import { shellWords, wordsFromRealShell } from '../../../test/support/shell-words';
import { shellQuote } from './shell-quote';

/** The remote login shell is sh or bash; both must read the quoted line back as the same argv. */
const SHELLS = ['/bin/sh', '/bin/bash'].filter((shell) => existsSync(shell));

/** What `shell` receives as arguments when it runs the quoted command line. */
function roundTrip(shell: string, argv: readonly string[]): string[] {
  const output = execFileSync(shell, ['-c', `printf '%s\\0' ${shellQuote(argv)}`]);
  return output.toString('utf8').split('\0').slice(0, -1);
}

/** Characters with a meaning to sh, over-represented so that every generated argv is hostile. */
const shellSyntax = fc.constantFrom(
  ...["'", '"', '\\', '$', '`', '(', ')', '{', '}', ';', '&', '|', '<', '>', '*', '?', '[', ']', '~', '#', '!'],
  ...[' ', '\t', '\n', '\r', '%', '=', '-', '$(id)', "'\\''", '${IFS}'],
);
const argument = fc
  .string({ unit: fc.oneof(shellSyntax, fc.string({ unit: 'binary', maxLength: 1 }), fc.constant('a')) })
  .map((text) => text.replaceAll('\0', ''));

describe('shellQuote', () => {
  it('single-quotes every element and escapes single quotes', () => {
    assert.equal(shellQuote(['printf', '%s\n', "it's", '']), `'printf' '%s\n' 'it'\\''s' ''`);
  });

  it('rejects an empty argv and NUL bytes', () => {
    assert.throws(() => shellQuote([]), /empty argv/);
    assert.throws(() => shellQuote(['echo', 'a\0b']), /argv\[1\] contains a NUL byte/);
  });

  for (const shell of SHELLS) {
    it(`round-trips arbitrary argv exactly through ${shell}`, () => {
      assert.deepEqual(roundTrip(shell, ['a b', '$(id)', '`id`', '; rm -rf /tmp/x', "'", '"', '\\', '']), [
        'a b',
        '$(id)',
        '`id`',
        '; rm -rf /tmp/x',
        "'",
        '"',
        '\\',
        '',
      ]);
      fc.assert(
        fc.property(fc.array(argument, { minLength: 1, maxLength: 6 }), (argv) => {
          assert.deepEqual(roundTrip(shell, argv), argv);
        }),
        { numRuns: 150 },
      );
    });
  }

  it('reads back through an exact shell-word parser that sh and bash agree with on 10,000 generated argvs', () => {
    const wellFormed = fc
      .array(
        argument.filter((text) => !/\p{Cs}/u.test(text)),
        { minLength: 1, maxLength: 6 },
      )
      .filter((argv) => argv.length > 0);
    const argvs = fc.sample(wellFormed, { numRuns: 10_000, seed: 20261201 });
    const lines = argvs.map((argv) => shellQuote(argv));
    assert.deepEqual(
      lines.map((line) => shellWords(line)),
      argvs,
    );
    for (const shell of SHELLS) assert.deepEqual(wordsFromRealShell(shell, lines), argvs, shell);
    // The parser refuses what it cannot read exactly, rather than guessing.
    for (const line of ["'a' $(id)", "'a';'b'", "'a' \\\n'b'", "'a", '"a"', "'a'*", '~', "'a' #"]) {
      assert.throws(() => shellWords(line), /unquoted|unterminated|escapes no character/, line);
    }
  });
});

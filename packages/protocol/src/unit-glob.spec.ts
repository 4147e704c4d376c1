import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileUnitGlob, matchesUnitGlob, UNIT_GLOB_MAX_LENGTH, unitGlobProblem } from './unit-glob';

/**
 * An independent oracle: the glob as an anchored RegExp with every literal escaped. The matcher
 * under test never builds a RegExp; this one exists only to compare against.
 */
function oracle(glob: string): RegExp {
  const escape = (char: string) => char.replace(/[\\^$.*+?()[\]{}|/-]/g, (c) => `\\${c}`);
  let source = '';
  for (let i = 0; i < glob.length; i += 1) {
    const char = glob[i] as string;
    if (char === '*') source += '[\\s\\S]*';
    else if (char === '?') source += '[\\s\\S]';
    else if (char === '[') {
      const close = glob.indexOf(']', i);
      const body = glob.slice(i + 1, close);
      let set = '';
      for (let j = 0; j < body.length; j += 1) {
        const low = body[j] as string;
        if (body[j + 1] === '-' && j + 2 < body.length) {
          set += `${escape(low)}-${escape(body[j + 2] as string)}`;
          j += 2;
        } else {
          set += escape(low);
        }
      }
      source += `[${set}]`;
      i = close;
    } else source += escape(char);
  }
  return new RegExp(`^${source}$`);
}

const LITERALS = ['a', 'b', 'c', '.', '-', '@', '\\', ':', '_'];
const literal = fc.constantFrom(...LITERALS);
const globPart = fc.oneof(
  { weight: 5, arbitrary: literal },
  { weight: 2, arbitrary: fc.constant('*') },
  { weight: 2, arbitrary: fc.constant('?') },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.array(literal, { minLength: 1, maxLength: 3 }).map((chars) => `[${chars.join('')}]`),
      fc.constantFrom('[a-c]', '[-a]', '[a-]', '[.-a]', '[0-9b]'),
    ),
  },
);
const glob = fc.array(globPart, { minLength: 1, maxLength: 8 }).map((parts) => parts.join(''));
const name = fc
  .array(fc.constantFrom(...LITERALS, 'd', '0', '5', 'x'), { maxLength: 10 })
  .map((chars) => chars.join(''));

describe('unitGlobProblem', () => {
  it('accepts unit-name characters with * ? and character classes', () => {
    for (const valid of [
      '*',
      'nginx.service',
      'nginx*.service',
      'app-?.service',
      'app-[0-9].service',
      'app-[0-9a-f][-_].service',
      'getty@tty[1-6].service',
      'dev-sda\\x2d1.device',
      '*.timer',
      '**',
      'a'.repeat(UNIT_GLOB_MAX_LENGTH),
    ]) {
      assert.equal(unitGlobProblem(valid), null, valid);
    }
  });

  it('rejects malformed globs, saying why', () => {
    const cases: [string, RegExp][] = [
      ['', /1-256 characters/],
      ['a'.repeat(UNIT_GLOB_MAX_LENGTH + 1), /1-256 characters/],
      ['app-[0-9.service', /not closed/],
      ['app]', /no matching '\['/],
      ['app-[].service', /matches nothing/],
      ['[z-a]', /backwards/],
      ['[[a]]', /cannot appear inside/],
      ['[*]', /cannot appear inside/],
      ['[!a]', /cannot appear inside/],
      ['[^a]', /cannot appear inside/],
      ['nginx service', /' ' at position 5 is not allowed/],
      ['nginx;reboot', /';' at position 5/],
      ['$(id)', /'\$' at position 0/],
    ];
    for (const [bad, why] of cases) assert.match(unitGlobProblem(bad) ?? 'accepted', why, JSON.stringify(bad));
  });

  it('rejects every regular-expression metacharacter that is not glob syntax', () => {
    for (const meta of ['(', ')', '|', '+', '{', '}', '^', '$', '/', '!', '#', '%', '&', '=', '~', '`', '"', "'"]) {
      assert.notEqual(unitGlobProblem(`nginx${meta}.service`), null, meta);
    }
  });

  it('rejects any character outside unit-name characters and *?[]', () => {
    const allowed = /^[A-Za-z0-9:_.\\@*?[\]-]$/;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)),
        (char) => {
          fc.pre(!allowed.test(char));
          assert.notEqual(unitGlobProblem(`a${char}b`), null, JSON.stringify(char));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('matchesUnitGlob', () => {
  it('matches as a shell glob over the whole name', () => {
    const cases: [string, string, boolean][] = [
      ['nginx*.service', 'nginx.service', true],
      ['nginx*.service', 'nginx-canary.service', true],
      ['nginx*.service', 'nginx.socket', false],
      ['nginx*.service', 'my-nginx.service', false],
      ['*', '', true],
      ['*', 'anything.service', true],
      ['?', '', false],
      ['app-?.service', 'app-1.service', true],
      ['app-?.service', 'app-10.service', false],
      ['app-[0-9].service', 'app-7.service', true],
      ['app-[0-9].service', 'app-x.service', false],
      ['[-a]', '-', true],
      ['[a-]', '-', true],
      ['[a-]', 'b', false],
      ['getty@tty[1-6].service', 'getty@tty3.service', true],
      ['getty@tty[1-6].service', 'getty@tty7.service', false],
      // Literal dots are dots, not "any character" as they would be in an unescaped RegExp.
      ['a.service', 'aXservice', false],
      ['dev-sda\\x2d1.device', 'dev-sda\\x2d1.device', true],
      ['*a*a*b', 'aaab', true],
      ['*a*a*b', 'aaaa', false],
    ];
    for (const [pattern, unit, expected] of cases) {
      assert.equal(matchesUnitGlob(pattern, unit), expected, `${pattern} ~ ${unit}`);
    }
  });

  it('agrees with an escaped, anchored RegExp translation on random globs and names', () => {
    fc.assert(
      fc.property(glob, name, (pattern, unit) => {
        fc.pre(unitGlobProblem(pattern) === null); // e.g. a backwards range such as [c-a]
        assert.equal(matchesUnitGlob(pattern, unit), oracle(pattern).test(unit), `${pattern} ~ ${unit}`);
      }),
      { numRuns: 3000 },
    );
  });

  it('matches names built from the glob (each * and ? filled, each class by a member)', () => {
    const filler = fc.array(fc.constantFrom(...LITERALS), { maxLength: 4 }).map((chars) => chars.join(''));
    fc.assert(
      fc.property(glob, fc.array(filler, { minLength: 64, maxLength: 64 }), (pattern, fills) => {
        fc.pre(unitGlobProblem(pattern) === null);
        let unit = '';
        let k = 0;
        for (let i = 0; i < pattern.length; i += 1) {
          const char = pattern[i] as string;
          if (char === '*') unit += fills[k++ % fills.length];
          else if (char === '?') unit += 'x';
          else if (char === '[') {
            // The class's first character is always a member (alone, or the low end of a range).
            unit += pattern[i + 1];
            i = pattern.indexOf(']', i);
          } else unit += char;
        }
        assert.ok(matchesUnitGlob(pattern, unit), `${pattern} ~ ${unit}`);
      }),
      { numRuns: 1000 },
    );
  });

  it('a glob without wildcards matches exactly its own text', () => {
    fc.assert(
      fc.property(fc.array(literal, { minLength: 1, maxLength: 12 }), name, (chars, other) => {
        const text = chars.join('');
        assert.equal(matchesUnitGlob(text, text), true);
        assert.equal(matchesUnitGlob(text, other), other === text);
      }),
      { numRuns: 500 },
    );
  });

  it('stays fast on patterns that make backtracking matchers explode', () => {
    const pattern = `${'*a'.repeat(60)}*b`;
    const unit = 'a'.repeat(255);
    const compiled = compileUnitGlob(pattern);
    const started = process.hrtime.bigint();
    for (let i = 0; i < 20; i += 1) assert.equal(matchesUnitGlob(compiled, unit), false);
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(elapsedMs < 500, `took ${elapsedMs} ms`);
  });
});

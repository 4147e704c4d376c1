import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import fc from 'fast-check';
import { shellWords, wordsFromRealShell } from '../../test/support/shell-words';
import { sudoersArg } from '../access/sudoers';
import {
  formatSelector,
  labelKeyProblem,
  labelValueProblem,
  matchesUnitGlob,
  parseSelector,
  SelectorSyntaxError,
  unitGlobProblem,
  VERBS,
} from '@drover/protocol';
import { CreateHostDto } from '../hosts/dto/host.dto';
import { shellQuote } from '../infra/ssh/shell-quote';
import { PROBE_PROGRAM, PutProbeDto } from '../probes/dto/probe.dto';
import { RolloutStrategyDto } from '../rollouts/dto/rollout.dto';
import { CreateTokenDto } from '../tokens/dto/token.dto';
import { HostActionDto } from './dto/operation.dto';
import {
  isTemplate,
  legacyVerbArgv,
  normaliseUnitName,
  snapshotArgv,
  UNIT_TYPES,
  unitNameProblem,
  verbArgv,
} from '@drover/systemd';

/**
 * Generated input, valid and hostile, fed to the request schemas and then to the argv builders:
 * whatever a schema accepts must become argv words that a shell reads back exactly, and whatever
 * it must not accept (shell syntax, control characters, non-ASCII, overlong text) never gets
 * through. 10,000 runs per property.
 */
const RUNS = 10_000;
const SHELLS = ['/bin/sh', '/bin/bash'].filter((shell) => existsSync(shell));

const UNIT_CHAR = /^[A-Za-z0-9:_.\\@-]$/;
const unitChar = fc.constantFrom(...'abnxyzAZ09:_.\\@-'.split(''));
/** Characters with a meaning to a shell, a parser or a terminal, and non-ASCII look-alikes. */
const HOSTILE = [
  ...["'", '"', '\\', '$', '`', '(', ')', '{', '}', ';', '&', '|', '<', '>', '*', '?', '[', ']', '~', '#', '!'],
  ...[' ', '\t', '\n', '\r', '\0', '\x1b', '\x7f', '=', '/', '%', ',', '+'],
  ...['é', 'ï', 'с', '\u200b', '\u202e', '\u00a0', '😀', '\uffff'],
];
const hostileChar = fc.constantFrom(...HOSTILE);
const anyChar = fc.string({ unit: 'binary', minLength: 1, maxLength: 1 });
const typeSuffix = fc.constantFrom('', '.', '.bak', '.Service', ...UNIT_TYPES.map((type) => `.${type}`));

/** Mostly plausible unit names, some bare, some hostile, some around the 255-character limit. */
const unitCandidate = fc
  .oneof(
    { weight: 4, arbitrary: fc.tuple(fc.string({ unit: unitChar, minLength: 1, maxLength: 40 }), typeSuffix) },
    {
      weight: 3,
      arbitrary: fc.tuple(fc.string({ unit: fc.oneof(unitChar, hostileChar, anyChar), maxLength: 40 }), typeSuffix),
    },
    { weight: 1, arbitrary: fc.tuple(fc.string({ unit: unitChar, minLength: 240, maxLength: 260 }), typeSuffix) },
  )
  .map(([body, suffix]) => `${body}${suffix}`);

/** The argvs the builders make for a unit: the verb itself, the snapshot read, the init-script fallback. */
function argvsFor(verb: (typeof VERBS)[number], unit: string): string[][] {
  const argvs = [verbArgv(verb, unit)];
  if (!isTemplate(unit)) argvs.push(snapshotArgv(unit));
  const legacy = legacyVerbArgv(verb, unit);
  if (legacy.supported) argvs.push(legacy.argv);
  return argvs;
}

/**
 * What sudo compares the user's argument with, for a sudoersArg output: the sudoers lexer turns
 * `\` + one of `\,:=#` into that character, then fnmatch(3) reads `\c` as a literal c and would
 * read an unescaped `*` `?` `[` as a wildcard (which this refuses to return).
 */
function sudoMatchesOnly(escaped: string): string {
  const pattern = escaped.replace(/\\([\\,:=#])/g, '$1');
  let literal = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const char = pattern[i]!;
    if (char === '\\') {
      i += 1;
      literal += pattern[i] ?? '';
    } else if ('*?['.includes(char)) {
      throw new Error(`unescaped wildcard ${char} in ${escaped}`);
    } else {
      literal += char;
    }
  }
  return literal;
}

/** Checks that `lines` (each a shellQuote output) read back as `argvs` in every real shell here. */
function assertRealShellsAgree(lines: string[], argvs: string[][]): void {
  assert.ok(lines.length >= 1_000, `only ${lines.length} command lines to check`);
  for (const shell of SHELLS) assert.deepEqual(wordsFromRealShell(shell, lines), argvs, shell);
}

describe('generated input against the request schemas and argv builders', () => {
  it('unit names: an accepted name becomes exactly its argv words (parser and real shells), nothing hostile gets in', () => {
    const lines: string[] = [];
    const argvs: string[][] = [];
    fc.assert(
      fc.property(unitCandidate, fc.constantFrom(...VERBS), (text, verb) => {
        const parsed = HostActionDto.schema.safeParse({ verb, unit: text });
        if (!parsed.success) {
          assert.ok(parsed.error.issues.every((issue) => issue.path[0] === 'unit'));
          return;
        }
        assert.ok(
          [...text].every((char) => UNIT_CHAR.test(char)),
          `accepted ${JSON.stringify(text)}`,
        );
        const unit = parsed.data.unit!;
        assert.equal(unit, normaliseUnitName(text));
        assert.ok(unit.length <= 255 && !unit.startsWith('-') && unitNameProblem(unit) === null);
        for (const argv of argvsFor(verb, unit)) {
          const line = shellQuote(argv);
          assert.deepEqual(shellWords(line), argv);
          // The unit is one whole word, after `--` wherever systemctl reads options.
          if (argv[0] === 'service') assert.equal(`${argv[1]}.service`, unit);
          else if (!argv.includes('daemon-reload')) assert.deepEqual(argv.slice(-2), ['--', unit]);
          if (lines.length < 4_000) {
            lines.push(line);
            argvs.push(argv);
          }
        }
        assert.equal(sudoMatchesOnly(sudoersArg(unit)), unit);
      }),
      { numRuns: RUNS },
    );
    assertRealShellsAgree(lines, argvs);
  });

  it('unit globs: accepted globs use unit-name characters and * ? [ ] only, and never reach an argv', () => {
    const globChar = fc.oneof(unitChar, fc.constantFrom('*', '?', '[', ']', '-'), hostileChar);
    const glob = fc.tuple(fc.string({ unit: globChar, minLength: 1, maxLength: 30 }), typeSuffix);
    const name = fc.tuple(fc.string({ unit: unitChar, minLength: 1, maxLength: 10 }), typeSuffix);
    fc.assert(
      fc.property(glob, name, ([body, suffix], [nameBody, nameSuffix]) => {
        const text = `${body}${suffix}`;
        const token = CreateTokenDto.schema.safeParse({ name: 'fuzz', scopes: ['operate'], unitGlob: text });
        const rollout = RolloutStrategyDto.schema.safeParse({ unit: text, selector: '' });
        if (token.success || rollout.success) {
          assert.ok(
            [...text].every((char) => UNIT_CHAR.test(char) || '*?[]'.includes(char)),
            JSON.stringify(text),
          );
        }
        if (rollout.success && /[*?[\]]/.test(text)) {
          assert.equal(unitGlobProblem(rollout.data.unit), null);
          assert.throws(() => verbArgv('restart', rollout.data.unit), /refusing unit name/);
        }
        // A glob selects among discovered names; only such a name, checked again, reaches argv.
        const unit = `${nameBody}${nameSuffix}`;
        if (token.success && unitGlobProblem(text) === null && matchesUnitGlob(text, unit)) {
          assert.ok([...unit].every((char) => UNIT_CHAR.test(char)));
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('selectors: an accepted selector holds only valid label keys and values, and reads back from its canonical text', () => {
    const selectorPart = fc.oneof(
      fc.constantFrom('env', 'role', 'a.b/c', 'x-1', 'in', 'notin', '=', '==', '!=', '!', '(', ')', ',', ' '),
      fc.string({ unit: fc.oneof(unitChar, hostileChar, anyChar), maxLength: 6 }),
    );
    fc.assert(
      fc.property(fc.array(selectorPart, { maxLength: 12 }), (parts) => {
        const text = parts.join('');
        let selector;
        try {
          selector = parseSelector(text);
        } catch (error) {
          assert.ok(error instanceof SelectorSyntaxError, String(error));
          return;
        }
        for (const requirement of selector) {
          assert.equal(labelKeyProblem(requirement.key), null, requirement.key);
          const values =
            'value' in requirement ? [requirement.value] : 'values' in requirement ? requirement.values : [];
          for (const value of values) assert.equal(labelValueProblem(value), null, value);
        }
        assert.deepEqual(parseSelector(formatSelector(selector)), selector);
      }),
      { numRuns: RUNS },
    );
  });

  it('labels and host names and addresses: what a host accepts holds no shell, control or non-ASCII character', () => {
    const text = fc.string({ unit: fc.oneof(unitChar, hostileChar, anyChar), maxLength: 20 });
    const address = fc.oneof(
      fc.ipV4(),
      fc.ipV6(),
      fc.domain(),
      text,
      fc.tuple(fc.domain(), text).map(([a, b]) => a + b),
    );
    const labels = fc.dictionary(fc.oneof(fc.constantFrom('env', 'a.b/c'), text), fc.oneof(fc.constant('prod'), text), {
      maxKeys: 3,
    });
    fc.assert(
      fc.property(fc.oneof(fc.constant('web-01'), text), address, labels, (name, host, hostLabels) => {
        const parsed = CreateHostDto.schema.safeParse({ name, address: host, labels: hostLabels });
        if (!parsed.success) return;
        const { name: acceptedName, address: acceptedAddress, labels: acceptedLabels } = parsed.data;
        assert.match(acceptedName, /^[A-Za-z0-9][A-Za-z0-9._-]*$/);
        // ssh2 and the probes get the address as a value, never through a shell; still, only these.
        assert.ok(isIP(acceptedAddress) !== 0 || /^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(acceptedAddress), acceptedAddress);
        assert.match(acceptedAddress, /^[A-Za-z0-9.:%-]+$/);
        assert.doesNotMatch(acceptedAddress, /^-/);
        for (const [key, value] of Object.entries(acceptedLabels)) {
          assert.match(key, /^[A-Za-z0-9][A-Za-z0-9._/-]*$/);
          assert.match(value, /^([A-Za-z0-9][A-Za-z0-9._-]*)?$/);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('probes: an accepted HTTP path is one word of the request line; an accepted catalogue argv reads back exactly', () => {
    const lines: string[] = [];
    const argvs: string[][] = [];
    const text = fc.string({ unit: fc.oneof(unitChar, hostileChar, anyChar), maxLength: 24 });
    const path = fc.oneof(
      fc.webPath(),
      text,
      text.map((rest) => `/${rest}`),
    );
    const argv = fc.array(
      fc.oneof(
        fc.constant('/usr/bin/curl'),
        text.map((rest) => `/${rest}`),
        text,
      ),
      {
        minLength: 0,
        maxLength: 5,
      },
    );
    fc.assert(
      fc.property(path, argv, (probePath, probeArgv) => {
        const strategy = (probe: unknown) => ({ unit: 'nginx', selector: '', healthGate: { probes: [probe] } });
        const http = RolloutStrategyDto.schema.safeParse(strategy({ type: 'http', port: 8080, path: probePath }));
        const accepted = http.success ? http.data.healthGate.probes[0]! : null;
        if (accepted?.type === 'http') {
          assert.deepEqual(`GET ${accepted.path} HTTP/1.1`.split(' '), ['GET', accepted.path, 'HTTP/1.1']);
          assert.match(accepted.path, /^\/[\x21-\x7e]*$/);
        }
        // A rollout never carries an argv of its own: only the catalogue does.
        assert.equal(
          RolloutStrategyDto.schema.safeParse(strategy({ type: 'command', argv: probeArgv })).success,
          false,
        );
        const entry = PutProbeDto.schema.safeParse({ argv: probeArgv });
        if (entry.success) {
          const { argv: acceptedArgv } = entry.data;
          assert.ok(acceptedArgv.every((word) => /^[\x21-\x7e]+$/.test(word)));
          assert.match(acceptedArgv[0]!, PROBE_PROGRAM);
          const line = shellQuote(acceptedArgv);
          assert.deepEqual(shellWords(line), acceptedArgv);
          lines.push(line);
          argvs.push(acceptedArgv);
        }
      }),
      { numRuns: RUNS },
    );
    assertRealShellsAgree(lines, argvs);
  });
});

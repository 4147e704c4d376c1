import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatSelector, matchesSelector, parseSelector, Requirement, Selector, SelectorSyntaxError } from './selector';

/** Asserts that parsing `input` fails with SelectorSyntaxError at `position`, returning the error. */
function assertSyntaxError(input: string, position: number, reason?: RegExp): SelectorSyntaxError {
  let caught: unknown;
  try {
    parseSelector(input);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof SelectorSyntaxError, `expected SelectorSyntaxError for ${JSON.stringify(input)}`);
  assert.equal(caught.position, position, `position for ${JSON.stringify(input)}: ${caught.reason}`);
  if (reason) assert.match(caught.reason, reason);
  return caught;
}

// fast-check may build records without a prototype; parseSelector returns plain objects.
const noProto = { noNullPrototype: true } as const;

// Generators of valid selectors, following the Kubernetes label syntax the parser enforces.
const labelName = fc.stringMatching(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/);
const dnsLabel = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$/);
const dnsPrefix = fc.array(dnsLabel, { minLength: 1, maxLength: 4 }).map((labels) => labels.join('.'));
const labelKey = fc
  .tuple(fc.option(dnsPrefix, { nil: undefined }), labelName)
  .map(([prefix, name]) => (prefix === undefined ? name : `${prefix}/${name}`));
const labelValue = fc.oneof(fc.constant(''), labelName);
// `k in ()` is rejected, so a set holding only "" has no text; every other value list does.
const valueList = fc
  .array(labelValue, { minLength: 1, maxLength: 5 })
  .filter((values) => !(values.length === 1 && values[0] === ''));

const requirementArb: fc.Arbitrary<Requirement> = fc.oneof(
  fc.record({ key: labelKey, operator: fc.constantFrom('exists' as const, 'notExists' as const) }, noProto),
  fc.record(
    { key: labelKey, operator: fc.constantFrom('equals' as const, 'notEquals' as const), value: labelValue },
    noProto,
  ),
  fc.record({ key: labelKey, operator: fc.constantFrom('in' as const, 'notIn' as const), values: valueList }, noProto),
);
const selectorArb: fc.Arbitrary<Selector> = fc.array(requirementArb, { maxLength: 8 });

const optionalSpace = fc.stringMatching(/^[ \t]{0,3}$/);
const requiredSpace = fc.stringMatching(/^[ \t]{1,3}$/);

/** Writes a requirement with arbitrary blanks wherever the grammar allows them. */
function spacedRequirement(requirement: Requirement): fc.Arbitrary<string> {
  const { key } = requirement;
  switch (requirement.operator) {
    case 'exists':
      return fc.tuple(optionalSpace, optionalSpace).map(([a, b]) => `${a}${key}${b}`);
    case 'notExists':
      return fc.tuple(optionalSpace, optionalSpace, optionalSpace).map(([a, b, c]) => `${a}!${b}${key}${c}`);
    case 'equals':
    case 'notEquals': {
      const operators = requirement.operator === 'equals' ? ['=', '=='] : ['!='];
      return fc
        .tuple(fc.constantFrom(...operators), optionalSpace, optionalSpace, optionalSpace, optionalSpace)
        .map(([op, a, b, c, d]) => `${a}${key}${b}${op}${c}${requirement.value}${d}`);
    }
    case 'in':
    case 'notIn': {
      const word = requirement.operator === 'in' ? 'in' : 'notin';
      return fc
        .tuple(
          optionalSpace,
          requiredSpace,
          optionalSpace,
          fc.array(fc.tuple(optionalSpace, optionalSpace), {
            minLength: requirement.values.length,
            maxLength: requirement.values.length,
          }),
          optionalSpace,
        )
        .map(([a, b, c, around, d]) => {
          const values = requirement.values.map((value, i) => {
            const [before, after] = around[i] ?? ['', ''];
            return `${before}${value}${after}`;
          });
          return `${a}${key}${b}${word}${c}(${values.join(',')})${d}`;
        });
    }
  }
}

describe('parseSelector', () => {
  it('returns no requirements for an empty or blank selector', () => {
    assert.deepEqual(parseSelector(''), []);
    assert.deepEqual(parseSelector('   '), []);
    assert.deepEqual(parseSelector('\t \t'), []);
  });

  it('parses a bare key as an existence requirement', () => {
    assert.deepEqual(parseSelector('canary'), [{ key: 'canary', operator: 'exists' }]);
  });

  it('parses !key as a non-existence requirement', () => {
    assert.deepEqual(parseSelector('!canary'), [{ key: 'canary', operator: 'notExists' }]);
  });

  it('parses = and == as the same equality requirement', () => {
    const expected: Selector = [{ key: 'role', operator: 'equals', value: 'web' }];
    assert.deepEqual(parseSelector('role=web'), expected);
    assert.deepEqual(parseSelector('role==web'), expected);
  });

  it('parses != as an inequality requirement', () => {
    assert.deepEqual(parseSelector('tier!=db'), [{ key: 'tier', operator: 'notEquals', value: 'db' }]);
  });

  it('parses in and notin with their value lists in order', () => {
    assert.deepEqual(parseSelector('env in (prod,staging)'), [
      { key: 'env', operator: 'in', values: ['prod', 'staging'] },
    ]);
    assert.deepEqual(parseSelector('env notin (dev,test)'), [
      { key: 'env', operator: 'notIn', values: ['dev', 'test'] },
    ]);
    assert.deepEqual(parseSelector('env in (prod)'), [{ key: 'env', operator: 'in', values: ['prod'] }]);
  });

  it('parses the example from the issue into four ANDed requirements', () => {
    assert.deepEqual(parseSelector('role=web,env in (prod,staging),!canary,tier!=db'), [
      { key: 'role', operator: 'equals', value: 'web' },
      { key: 'env', operator: 'in', values: ['prod', 'staging'] },
      { key: 'canary', operator: 'notExists' },
      { key: 'tier', operator: 'notEquals', value: 'db' },
    ]);
  });

  it('tolerates spaces and tabs around every token', () => {
    assert.deepEqual(parseSelector('  role = web ,\tenv  in  ( prod , staging ) , ! canary , tier != db\t'), [
      { key: 'role', operator: 'equals', value: 'web' },
      { key: 'env', operator: 'in', values: ['prod', 'staging'] },
      { key: 'canary', operator: 'notExists' },
      { key: 'tier', operator: 'notEquals', value: 'db' },
    ]);
    assert.deepEqual(parseSelector('env in(prod)'), [{ key: 'env', operator: 'in', values: ['prod'] }]);
  });

  it('accepts empty values after =, != and inside value lists', () => {
    assert.deepEqual(parseSelector('tier='), [{ key: 'tier', operator: 'equals', value: '' }]);
    assert.deepEqual(parseSelector('tier!='), [{ key: 'tier', operator: 'notEquals', value: '' }]);
    assert.deepEqual(parseSelector('tier=,role=web'), [
      { key: 'tier', operator: 'equals', value: '' },
      { key: 'role', operator: 'equals', value: 'web' },
    ]);
    assert.deepEqual(parseSelector('k in (a,)'), [{ key: 'k', operator: 'in', values: ['a', ''] }]);
    assert.deepEqual(parseSelector('k in (,a)'), [{ key: 'k', operator: 'in', values: ['', 'a'] }]);
    assert.deepEqual(parseSelector('k notin (a,,b)'), [{ key: 'k', operator: 'notIn', values: ['a', '', 'b'] }]);
    assert.deepEqual(parseSelector('k in (,)'), [{ key: 'k', operator: 'in', values: ['', ''] }]);
  });

  it('accepts keys with a DNS subdomain prefix', () => {
    assert.deepEqual(parseSelector('example.com/role=web'), [
      { key: 'example.com/role', operator: 'equals', value: 'web' },
    ]);
    assert.deepEqual(parseSelector('!drover.example.org/canary'), [
      { key: 'drover.example.org/canary', operator: 'notExists' },
    ]);
  });

  it('accepts operator words as keys and values', () => {
    assert.deepEqual(parseSelector('in in (notin)'), [{ key: 'in', operator: 'in', values: ['notin'] }]);
    assert.deepEqual(parseSelector('notin=in'), [{ key: 'notin', operator: 'equals', value: 'in' }]);
  });

  it('accepts keys and values of exactly 63 characters', () => {
    const long = 'a'.repeat(63);
    assert.deepEqual(parseSelector(`${long}=${long}`), [{ key: long, operator: 'equals', value: long }]);
  });

  it('accepts a selector of exactly 4096 characters', () => {
    const input = `${'k=v,'.repeat(1024).slice(0, -1)} `;
    assert.equal(input.length, 4096);
    assert.equal(parseSelector(input).length, 1024);
  });

  describe('rejects malformed selectors at the position where they go wrong', () => {
    it('a trailing comma fails at the end of the selector', () => {
      assertSyntaxError('role=web,', 9, /expected a label key, found end of selector/);
    });

    it('a leading comma fails at the comma', () => {
      assertSyntaxError(',role', 0, /expected a label key/);
    });

    it('doubled commas fail at the second comma', () => {
      assertSyntaxError('a,,b', 2, /expected a label key/);
    });

    it('in without parentheses fails at the value', () => {
      assertSyntaxError('role in prod', 8, /expected '\('/);
    });

    it('in at the end of the selector fails at the end', () => {
      assertSyntaxError('role in', 7, /expected '\('.*end of selector/);
    });

    it('an unclosed value list fails at the end', () => {
      assertSyntaxError('role in (a', 10, /unclosed value list/);
      assertSyntaxError('role in (a,', 11, /unclosed value list/);
    });

    it('a second = fails at that =', () => {
      assertSyntaxError('role=a=b', 6, /expected ',' or end of selector/);
    });

    it('!key followed by an operator fails at the operator', () => {
      assertSyntaxError('!role=web', 5, /takes no operator/);
      assertSyntaxError('!role in (a)', 6, /takes no operator/);
    });

    it('an empty value list fails at the closing parenthesis', () => {
      assertSyntaxError('role notin ()', 12, /expected a label value/);
      assertSyntaxError('role in ()', 9, /expected a label value/);
    });

    it('values separated by a blank instead of a comma fail at the second value', () => {
      assertSyntaxError('env in (a b)', 10, /expected ',' or '\)'/);
    });

    it('an unknown operator word fails at that word', () => {
      assertSyntaxError('role is web', 5, /expected an operator/);
      assertSyntaxError('role web', 5, /expected an operator/);
    });

    it('stray punctuation fails where it appears', () => {
      assertSyntaxError('role(web)', 4, /expected an operator/);
      assertSyntaxError('role=(web)', 5, /expected a label value/);
      assertSyntaxError('role=web)', 8, /expected ',' or end of selector/);
      assertSyntaxError('=web', 0, /expected a label key/);
      assertSyntaxError('!=web', 0, /expected a label key/);
      assertSyntaxError('!', 1, /expected a label key, found end of selector/);
      assertSyntaxError('role!', 4, /expected an operator/);
      assertSyntaxError('role in (a)(b)', 11, /expected ',' or end of selector/);
    });

    it('keys longer than 63 characters fail at the key', () => {
      assertSyntaxError(`${'k'.repeat(64)}=web`, 0, /label key/);
      assertSyntaxError(`role=web,${'k'.repeat(64)}`, 9, /label key/);
      assertSyntaxError(`example.com/${'k'.repeat(64)}=web`, 0, /label key/);
    });

    it('values longer than 63 characters fail at the value', () => {
      assertSyntaxError(`role=${'v'.repeat(64)}`, 5, /label value/);
      assertSyntaxError(`role in (web,${'v'.repeat(64)})`, 13, /label value/);
      assertSyntaxError(`role != ${'v'.repeat(64)}`, 8, /label value/);
    });

    it('keys with characters outside the label syntax fail at the key', () => {
      assertSyntaxError('ro$le=web', 0, /label key/);
      assertSyntaxError('-role=web', 0, /label key/);
      assertSyntaxError('role_=web', 0, /label key/);
      assertSyntaxError('env=prod,röle', 9, /label key/);
      assertSyntaxError('role\n=web', 0, /label key/);
    });

    it('key prefixes that are not lowercase DNS subdomains fail at the key', () => {
      assertSyntaxError('Example.com/role=web', 0, /prefix/);
      assertSyntaxError('/role=web', 0, /prefix/);
      assertSyntaxError('example..com/role=web', 0, /prefix/);
      assertSyntaxError(`${'a'.repeat(254)}/role=web`, 0, /prefix/);
      assertSyntaxError('example.com/=web', 0, /label key/);
      assertSyntaxError('a/b/c=web', 0, /label key/);
    });

    it('values with characters outside the label syntax fail at the value', () => {
      assertSyntaxError('role=w$b', 5, /label value/);
      assertSyntaxError('role=web-', 5, /label value/);
      assertSyntaxError('env in (prod,st/aging)', 13, /label value/);
    });

    it('a selector longer than 4096 characters fails at position 4096', () => {
      const input = `role=${'a'.repeat(4092)}`;
      assert.equal(input.length, 4097);
      assertSyntaxError(input, 4096, /longer than 4096/);
    });
  });

  it('reports the failure as a field error naming the position', () => {
    const error = assertSyntaxError('role=a=b', 6);
    assert.equal(error.status, 400);
    assert.equal(error.code, 'selector_invalid');
    assert.equal(error.message, `${error.reason} at position 6`);
    assert.deepEqual(error.errors, [{ field: 'selector', message: `${error.reason} at position 6` }]);
  });

  it('names the field it was given in the field error', () => {
    assert.throws(
      () => parseSelector('role in prod', 'hostSelector'),
      (error: unknown) =>
        error instanceof SelectorSyntaxError && error.errors.length === 1 && error.errors[0]?.field === 'hostSelector',
    );
  });

  describe('properties', () => {
    it('parses the formatted text of any valid selector back to the same selector', () => {
      fc.assert(
        fc.property(selectorArb, (selector) => {
          assert.deepEqual(parseSelector(formatSelector(selector)), selector);
        }),
        { numRuns: 400 },
      );
    });

    it('ignores blanks between tokens of any valid selector', () => {
      const spaced = selectorArb.chain((selector) =>
        fc.tuple(...selector.map(spacedRequirement)).map((parts): [Selector, string] => [selector, parts.join(',')]),
      );
      fc.assert(
        fc.property(spaced, ([selector, text]) => {
          assert.deepEqual(parseSelector(text), selector);
        }),
        { numRuns: 300 },
      );
    });

    it('either parses or throws SelectorSyntaxError positioned inside the input, for any string', () => {
      const selectorAlphabet = fc.constantFrom(
        'a',
        'b',
        'k',
        '0',
        '-',
        '_',
        '.',
        '/',
        '=',
        '!',
        '(',
        ')',
        ',',
        ' ',
        '\t',
        'in',
        'notin',
        'é',
        '\n',
        '$',
      );
      const input = fc.oneof(
        fc.string({ maxLength: 60 }),
        // Any UTF-16 code units, lone surrogates included.
        fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 }).map((codes) => String.fromCharCode(...codes)),
        fc.array(selectorAlphabet, { maxLength: 40 }).map((parts) => parts.join('')),
      );
      fc.assert(
        fc.property(input, (text) => {
          try {
            const selector = parseSelector(text);
            assert.ok(Array.isArray(selector));
          } catch (error) {
            assert.ok(error instanceof SelectorSyntaxError, `unexpected ${String(error)} for ${JSON.stringify(text)}`);
            assert.ok(error.position >= 0 && error.position <= text.length, `position ${error.position}`);
          }
        }),
        { numRuns: 500 },
      );
    });
  });
});

describe('formatSelector', () => {
  it('writes the canonical text of every operator', () => {
    assert.equal(
      formatSelector([
        { key: 'role', operator: 'equals', value: 'web' },
        { key: 'env', operator: 'in', values: ['prod', 'staging'] },
        { key: 'canary', operator: 'notExists' },
        { key: 'tier', operator: 'notEquals', value: 'db' },
        { key: 'gpu', operator: 'exists' },
        { key: 'zone', operator: 'notIn', values: ['a', ''] },
      ]),
      'role=web,env in (prod,staging),!canary,tier!=db,gpu,zone notin (a,)',
    );
  });

  it('writes an empty selector as an empty string', () => {
    assert.equal(formatSelector([]), '');
  });

  it('normalises == and blanks away', () => {
    assert.equal(formatSelector(parseSelector(' role == web ,  env in ( a , b ) ')), 'role=web,env in (a,b)');
  });
});

describe('matchesSelector', () => {
  const labels = { role: 'web', env: 'prod', tier: '' };

  it('matches everything with an empty selector', () => {
    assert.equal(matchesSelector([], {}), true);
    assert.equal(matchesSelector([], labels), true);
  });

  it('matches the issue example against a host it describes and not against others', () => {
    const selector = parseSelector('role=web,env in (prod,staging),!canary,tier!=db');
    assert.equal(matchesSelector(selector, { role: 'web', env: 'staging' }), true);
    assert.equal(matchesSelector(selector, { role: 'web', env: 'prod', tier: 'cache' }), true);
    assert.equal(matchesSelector(selector, { role: 'web', env: 'prod', canary: 'true' }), false);
    assert.equal(matchesSelector(selector, { role: 'web', env: 'dev' }), false);
    assert.equal(matchesSelector(selector, { role: 'web', env: 'prod', tier: 'db' }), false);
    assert.equal(matchesSelector(selector, { env: 'prod' }), false);
  });

  it('tests existence by key, whatever the value', () => {
    assert.equal(matchesSelector(parseSelector('tier'), labels), true);
    assert.equal(matchesSelector(parseSelector('!tier'), labels), false);
    assert.equal(matchesSelector(parseSelector('canary'), labels), false);
    assert.equal(matchesSelector(parseSelector('!canary'), labels), true);
  });

  it('does not match = or in when the key is absent', () => {
    assert.equal(matchesSelector(parseSelector('canary='), labels), false);
    assert.equal(matchesSelector(parseSelector('canary=true'), labels), false);
    assert.equal(matchesSelector(parseSelector('canary in (true,)'), labels), false);
  });

  it('matches != and notin when the key is absent', () => {
    assert.equal(matchesSelector(parseSelector('canary!=true'), labels), true);
    assert.equal(matchesSelector(parseSelector('canary!='), labels), true);
    assert.equal(matchesSelector(parseSelector('canary notin (true,)'), labels), true);
  });

  it('compares empty values with labels whose value is empty', () => {
    assert.equal(matchesSelector(parseSelector('tier='), labels), true);
    assert.equal(matchesSelector(parseSelector('tier!='), labels), false);
    assert.equal(matchesSelector(parseSelector('tier in (a,)'), labels), true);
    assert.equal(matchesSelector(parseSelector('tier notin (,a)'), labels), false);
  });

  it('does not treat inherited object properties as labels', () => {
    assert.equal(matchesSelector(parseSelector('constructor'), {}), false);
    assert.equal(matchesSelector(parseSelector('toString!=x'), {}), true);
  });

  describe('properties', () => {
    const labelsArb = fc.dictionary(labelKey, labelValue, { maxKeys: 6 });
    // Requirements on keys that sometimes appear in the generated labels.
    const keyPool = ['role', 'env', 'example.com/tier'];
    const pooledKey = fc.constantFrom(...keyPool);
    const pooledValue = fc.constantFrom('', 'web', 'prod', 'db');
    const pooledLabels = fc.dictionary(pooledKey, pooledValue, { maxKeys: 3 });
    const pooledRequirement: fc.Arbitrary<Requirement> = fc.oneof(
      fc.record({ key: pooledKey, operator: fc.constantFrom('exists' as const, 'notExists' as const) }, noProto),
      fc.record(
        { key: pooledKey, operator: fc.constantFrom('equals' as const, 'notEquals' as const), value: pooledValue },
        noProto,
      ),
      fc.record(
        {
          key: pooledKey,
          operator: fc.constantFrom('in' as const, 'notIn' as const),
          values: fc.array(pooledValue, { minLength: 1, maxLength: 3 }),
        },
        noProto,
      ),
    );

    it('matches != and notin, and never = or in, when the key is absent', () => {
      fc.assert(
        fc.property(labelKey, labelValue, valueList, labelsArb, (key, value, values, generated) => {
          const others = Object.fromEntries(Object.entries(generated).filter(([k]) => k !== key));
          assert.equal(matchesSelector([{ key, operator: 'notEquals', value }], others), true);
          assert.equal(matchesSelector([{ key, operator: 'notIn', values }], others), true);
          assert.equal(matchesSelector([{ key, operator: 'equals', value }], others), false);
          assert.equal(matchesSelector([{ key, operator: 'in', values }], others), false);
          assert.equal(matchesSelector([{ key, operator: 'exists' }], others), false);
          assert.equal(matchesSelector([{ key, operator: 'notExists' }], others), true);
        }),
        { numRuns: 300 },
      );
    });

    it('makes != the negation of = and notin the negation of in when the key is present', () => {
      fc.assert(
        fc.property(labelKey, labelValue, labelValue, valueList, (key, actual, value, values) => {
          const present = { [key]: actual };
          assert.equal(matchesSelector([{ key, operator: 'equals', value }], present), actual === value);
          assert.equal(matchesSelector([{ key, operator: 'notEquals', value }], present), actual !== value);
          assert.equal(matchesSelector([{ key, operator: 'in', values }], present), values.includes(actual));
          assert.equal(matchesSelector([{ key, operator: 'notIn', values }], present), !values.includes(actual));
        }),
        { numRuns: 300 },
      );
    });

    it('matches a selector exactly when it matches each of its requirements', () => {
      fc.assert(
        fc.property(fc.array(pooledRequirement, { maxLength: 5 }), pooledLabels, (selector, generated) => {
          const expected = selector.every((requirement) => matchesSelector([requirement], generated));
          assert.equal(matchesSelector(selector, generated), expected);
        }),
        { numRuns: 400 },
      );
    });

    it('gives the same answer for a selector and its formatted-and-reparsed text', () => {
      fc.assert(
        fc.property(fc.array(pooledRequirement, { maxLength: 5 }), pooledLabels, (selector, generated) => {
          const textual = selector.filter((r) => !('values' in r) || !(r.values.length === 1 && r.values[0] === ''));
          assert.equal(
            matchesSelector(parseSelector(formatSelector(textual)), generated),
            matchesSelector(textual, generated),
          );
        }),
        { numRuns: 300 },
      );
    });
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { labelKeyProblem, labelValueProblem } from './label-syntax';

describe('labelKeyProblem', () => {
  it('accepts names of 1 to 63 characters that start and end alphanumeric', () => {
    for (const key of ['a', 'Z9', 'role', 'app.kubernetes-io_name', 'a-b', 'a_b', 'a.b', 'k'.repeat(63)]) {
      assert.equal(labelKeyProblem(key), null, key);
    }
  });

  it('accepts a lowercase DNS subdomain prefix of up to 253 characters', () => {
    assert.equal(labelKeyProblem('example.com/role'), null);
    assert.equal(labelKeyProblem('a-1.b-2.example/Role'), null);
    const prefix = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    assert.equal(prefix.length, 253);
    assert.equal(labelKeyProblem(`${prefix}/role`), null);
  });

  it('rejects names that are empty, too long or badly shaped', () => {
    for (const key of ['', 'k'.repeat(64), '-role', 'role-', '_role', 'role.', 'ro le', 'ro$le', 'röle', 'role\n']) {
      assert.match(labelKeyProblem(key) ?? 'accepted', /^label key '/, JSON.stringify(key));
    }
  });

  it('rejects prefixes that are empty, too long, uppercase or not DNS subdomains', () => {
    const tooLong = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`;
    for (const key of [
      '/role',
      'Example.com/role',
      'example..com/role',
      '-example.com/role',
      'ex_ample/role',
      `${tooLong}/role`,
    ]) {
      assert.match(labelKeyProblem(key) ?? 'accepted', /^label key prefix '/, JSON.stringify(key));
    }
  });

  it('rejects a key with a prefix but no name, or with more than one slash', () => {
    assert.notEqual(labelKeyProblem('example.com/'), null);
    assert.notEqual(labelKeyProblem('a/b/c'), null);
  });

  it('rejects every key containing a character outside [A-Za-z0-9-_./]', () => {
    const outside = fc
      .integer({ min: 0, max: 0xffff })
      .map((code) => String.fromCharCode(code))
      .filter((char) => !/^[A-Za-z0-9\-_./]$/.test(char));
    fc.assert(
      fc.property(fc.string({ maxLength: 10 }), outside, fc.string({ maxLength: 10 }), (before, char, after) => {
        assert.notEqual(labelKeyProblem(`${before}${char}${after}`), null);
      }),
      { numRuns: 300 },
    );
  });
});

describe('labelValueProblem', () => {
  it('accepts the empty value and names of up to 63 characters', () => {
    for (const value of ['', 'web', '1', 'v1.2-rc_3', 'v'.repeat(63)]) {
      assert.equal(labelValueProblem(value), null, value);
    }
  });

  it('rejects values that are too long, badly shaped or contain a slash', () => {
    for (const value of ['v'.repeat(64), '-web', 'web-', '.web', 'we b', 'example.com/web', 'wéb', ' ']) {
      assert.match(labelValueProblem(value) ?? 'accepted', /^label value '/, JSON.stringify(value));
    }
  });
});

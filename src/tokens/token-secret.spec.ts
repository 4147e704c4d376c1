import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { generateTokenSecret, hashTokenSecret, isWellFormedTokenSecret } from './token-secret';

const SHAPE = /^drv_[A-Za-z0-9_-]{43}$/;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('generateTokenSecret', () => {
  it('returns drv_ followed by 43 base64url characters (256 bits)', () => {
    const secret = generateTokenSecret();
    assert.match(secret, SHAPE);
    assert.equal(secret.length, 47);
    assert.equal(Buffer.from(secret.slice(4), 'base64url').length, 32);
  });

  it('returns a different well-formed secret every time', () => {
    const secrets = Array.from({ length: 2000 }, () => generateTokenSecret());
    assert.equal(new Set(secrets).size, secrets.length);
    for (const secret of secrets) assert.ok(isWellFormedTokenSecret(secret), secret);
  });
});

describe('isWellFormedTokenSecret', () => {
  const valid = `drv_${'A'.repeat(43)}`;

  it('accepts drv_ plus 43 base64url characters', () => {
    assert.equal(isWellFormedTokenSecret(valid), true);
    assert.equal(isWellFormedTokenSecret(`drv_${'-_aZ09'.repeat(7)}x`), true);
  });

  it('rejects near misses', () => {
    for (const secret of [
      '',
      'drv_',
      `drv_${'A'.repeat(42)}`,
      `drv_${'A'.repeat(44)}`,
      `DRV_${'A'.repeat(43)}`,
      `drv-${'A'.repeat(43)}`,
      `drv${'A'.repeat(44)}`,
      `xdrv_${'A'.repeat(43)}`,
      `drv_${'A'.repeat(42)}=`,
      `drv_${'A'.repeat(42)}+`,
      `drv_${'A'.repeat(42)}/`,
      `drv_${'A'.repeat(42)}.`,
      `drv_${'A'.repeat(42)} `,
      ` ${valid}`,
      `${valid}\n`,
      `${valid} `,
      `Bearer ${valid}`,
      `drv_${'A'.repeat(42)}é`,
    ]) {
      assert.equal(isWellFormedTokenSecret(secret), false, JSON.stringify(secret));
    }
  });

  it('rejects a valid secret with any one body character replaced by a non-base64url character', () => {
    const notBase64url = fc
      .integer({ min: 0, max: 0xffff })
      .map((code) => String.fromCharCode(code))
      .filter((char) => !BASE64URL.includes(char));
    fc.assert(
      fc.property(fc.integer({ min: 4, max: 46 }), notBase64url, (index, char) => {
        const secret = generateTokenSecret();
        const altered = secret.slice(0, index) + char + secret.slice(index + 1);
        assert.equal(isWellFormedTokenSecret(altered), false, JSON.stringify(altered));
      }),
      { numRuns: 300 },
    );
  });
});

describe('hashTokenSecret', () => {
  it('is the lowercase hex SHA-256 of the secret', () => {
    assert.equal(hashTokenSecret(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(hashTokenSecret('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('is 64 hex characters and deterministic', () => {
    const secret = generateTokenSecret();
    const hash = hashTokenSecret(secret);
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.equal(hashTokenSecret(secret), hash);
  });

  it('never contains the secret', () => {
    const secret = generateTokenSecret();
    assert.ok(!hashTokenSecret(secret).includes(secret.slice(4)));
  });

  it('differs for different secrets', () => {
    const hashes = new Set(Array.from({ length: 500 }, () => hashTokenSecret(generateTokenSecret())));
    assert.equal(hashes.size, 500);
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        fc.pre(a !== b);
        assert.notEqual(hashTokenSecret(a), hashTokenSecret(b));
      }),
      { numRuns: 200 },
    );
  });
});

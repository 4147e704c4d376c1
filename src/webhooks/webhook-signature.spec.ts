import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { generateWebhookSecret, signWebhook, verifyWebhookSignature } from './webhook-signature';

const SECRET = 'whsec_test';
const BODY = '{"id":"8c1f8f5e-0b6e-4d7a-9d0a-2f3c4b5a6d7e","type":"rollout.finished"}';
const NOW = 1_800_000_000;

describe('signWebhook', () => {
  it('is t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">, as a receiver recomputes it with any HMAC library', () => {
    const expected = createHmac('sha256', SECRET).update(`${NOW}.${BODY}`).digest('hex');
    assert.equal(signWebhook(SECRET, NOW, BODY), `t=${NOW},v1=${expected}`);
  });

  it('matches a known vector', () => {
    // printf '%s' '1700000000.{}' | openssl dgst -sha256 -hmac key
    assert.equal(
      signWebhook('key', 1_700_000_000, '{}'),
      't=1700000000,v1=' + createHmac('sha256', 'key').update('1700000000.{}').digest('hex'),
    );
  });
});

describe('verifyWebhookSignature', () => {
  it('accepts what signWebhook produced, for any body and secret', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), (secret, body) => {
        const check = verifyWebhookSignature(secret, signWebhook(secret, NOW, body), body, NOW);
        assert.deepEqual(check, { ok: true });
      }),
    );
  });

  it('refuses a changed body, another secret, or a changed timestamp', () => {
    const header = signWebhook(SECRET, NOW, BODY);
    assert.equal(verifyWebhookSignature(SECRET, header, `${BODY} `, NOW).ok, false);
    assert.equal(verifyWebhookSignature('whsec_other', header, BODY, NOW).ok, false);
    const moved = header.replace(`t=${NOW}`, `t=${NOW + 1}`);
    assert.deepEqual(verifyWebhookSignature(SECRET, moved, BODY, NOW), { ok: false, reason: 'no signature matches' });
  });

  it('refuses a timestamp outside the tolerance (a replayed request)', () => {
    const header = signWebhook(SECRET, NOW - 301, BODY);
    const check = verifyWebhookSignature(SECRET, header, BODY, NOW);
    assert.equal(check.ok, false);
    assert.match(check.ok ? '' : check.reason, /more than 300 s/);
    assert.equal(verifyWebhookSignature(SECRET, header, BODY, NOW, 600).ok, true);
  });

  it('refuses missing or malformed headers without throwing', () => {
    for (const header of [undefined, '', 't=1', 'v1=abc', `t=${NOW},v1=zz`, 't=x,v1=' + '0'.repeat(64), '=,=,']) {
      assert.equal(verifyWebhookSignature(SECRET, header, BODY, NOW).ok, false, String(header));
    }
  });

  it('accepts when one of several v1 signatures matches (a secret being rotated)', () => {
    const good = signWebhook(SECRET, NOW, BODY).split(',')[1];
    const header = `t=${NOW},v1=${'0'.repeat(64)},${good}`;
    assert.equal(verifyWebhookSignature(SECRET, header, BODY, NOW).ok, true);
  });
});

describe('generateWebhookSecret', () => {
  it('is whsec_ and 32 random bytes, different every time', () => {
    const secrets = Array.from({ length: 500 }, () => generateWebhookSecret());
    assert.equal(new Set(secrets).size, secrets.length);
    for (const secret of secrets) {
      assert.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(secret.slice(6), 'base64url').length, 32);
    }
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { issuesToFieldErrors } from '../../common/validation/zod-validation.pipe';
import { CreateTokenDto } from './token.dto';

/** The fields a 400 would name for `body`, or [] when it is accepted. */
function badFields(body: unknown): string[] {
  const result = CreateTokenDto.schema.safeParse(body);
  return result.success ? [] : issuesToFieldErrors(result.error.issues).map((error) => error.field);
}

function messageFor(body: unknown, field: string): string {
  const result = CreateTokenDto.schema.safeParse(body);
  assert.equal(result.success, false);
  const errors = result.success ? [] : issuesToFieldErrors(result.error.issues);
  return errors.find((error) => error.field === field)?.message ?? '';
}

describe('CreateTokenDto.schema', () => {
  it('accepts a minimal token and one with every bound', () => {
    assert.deepEqual(CreateTokenDto.schema.parse({ name: 'ci', scopes: ['read'] }), { name: 'ci', scopes: ['read'] });
    const future = new Date(Date.now() + 3_600_000).toISOString();
    assert.deepEqual(
      badFields({
        name: 'ci.deploy_1',
        scopes: ['operate'],
        hostSelector: 'env in (staging),!canary',
        unitGlob: 'app-[0-9]*.service',
        expiresAt: future,
      }),
      [],
    );
    assert.deepEqual(
      badFields({ name: 'x', scopes: ['audit'], expiresInDays: 3650, hostSelector: null, unitGlob: null }),
      [],
    );
    assert.deepEqual(badFields({ name: 'x', scopes: ['audit'], expiresAt: '2999-01-01T00:00:00+02:00' }), []);
  });

  it('drops repeated scopes', () => {
    assert.deepEqual(CreateTokenDto.schema.parse({ name: 'x', scopes: ['read', 'admin', 'read'] }).scopes, [
      'read',
      'admin',
    ]);
  });

  it('names every bad field', () => {
    assert.deepEqual(
      badFields({ name: 'has space', scopes: [], hostSelector: 'env in (', unitGlob: 'nginx;reboot', extra: 1 }).sort(),
      ['extra', 'hostSelector', 'name', 'scopes', 'unitGlob'],
    );
    assert.deepEqual(badFields({ name: 'x', scopes: ['root'] }), ['scopes[0]']);
    assert.deepEqual(badFields({ scopes: ['read'] }), ['name']);
    assert.deepEqual(badFields({ name: 'x'.repeat(101), scopes: ['read'] }), ['name']);
  });

  it('says where a hostSelector is malformed', () => {
    assert.match(
      messageFor({ name: 'x', scopes: ['read'], hostSelector: 'env in (a b)' }, 'hostSelector'),
      /position 10/,
    );
  });

  it('says why a unitGlob is malformed and bounds its length', () => {
    assert.match(messageFor({ name: 'x', scopes: ['read'], unitGlob: 'app-[0-9.service' }, 'unitGlob'), /not closed/);
    assert.deepEqual(badFields({ name: 'x', scopes: ['read'], unitGlob: 'a'.repeat(257) }), ['unitGlob']);
    assert.deepEqual(badFields({ name: 'x', scopes: ['read'], unitGlob: '' }), ['unitGlob']);
  });

  it('takes expiresInDays (1-3650) or a future expiresAt, not both', () => {
    for (const days of [0, 3651, 1.5, '7']) {
      assert.deepEqual(
        badFields({ name: 'x', scopes: ['read'], expiresInDays: days }),
        ['expiresInDays'],
        String(days),
      );
    }
    const past = new Date(Date.now() - 1000).toISOString();
    assert.match(messageFor({ name: 'x', scopes: ['read'], expiresAt: past }, 'expiresAt'), /in the future/);
    assert.deepEqual(badFields({ name: 'x', scopes: ['read'], expiresAt: 'tomorrow' }), ['expiresAt']);
    const future = new Date(Date.now() + 86_400_000).toISOString();
    assert.match(
      messageFor({ name: 'x', scopes: ['read'], expiresAt: future, expiresInDays: 1 }, 'expiresAt'),
      /not both/,
    );
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { scopesAllow, TokenScope } from './token-scope';

const ALL: readonly TokenScope[] = ['read', 'operate', 'admin', 'audit'];

/** held -> the scopes it grants; everything else is refused. */
const EXPECTED: Record<TokenScope, readonly TokenScope[]> = {
  admin: ['admin', 'operate', 'read', 'audit'],
  operate: ['operate', 'read'],
  read: ['read'],
  audit: ['audit'],
};

describe('scopesAllow', () => {
  for (const held of ALL) {
    for (const required of ALL) {
      const allowed = EXPECTED[held].includes(required);
      it(`${allowed ? 'lets' : 'does not let'} a ${held} token do what needs ${required}`, () => {
        assert.equal(scopesAllow([held], required), allowed);
      });
    }
  }

  it('grants everything to admin', () => {
    for (const required of ALL) assert.equal(scopesAllow(['admin'], required), true, required);
  });

  it('does not let read escalate to operate or admin', () => {
    assert.equal(scopesAllow(['read'], 'operate'), false);
    assert.equal(scopesAllow(['read'], 'admin'), false);
    assert.equal(scopesAllow(['read', 'audit'], 'operate'), false);
  });

  it('lets audit read only the audit trail', () => {
    assert.equal(scopesAllow(['audit'], 'audit'), true);
    assert.equal(scopesAllow(['audit'], 'read'), false);
    assert.equal(scopesAllow(['operate'], 'audit'), false);
  });

  it('allows nothing without scopes', () => {
    for (const required of ALL) assert.equal(scopesAllow([], required), false, required);
  });

  it('allows what any one held scope allows', () => {
    const scope = fc.constantFrom(...ALL);
    fc.assert(
      fc.property(fc.array(scope, { maxLength: 4 }), scope, (held, required) => {
        assert.equal(
          scopesAllow(held, required),
          held.some((h) => EXPECTED[h].includes(required)),
        );
      }),
      { numRuns: 200 },
    );
  });
});

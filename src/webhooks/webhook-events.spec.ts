import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { eventMatches, eventPatternProblem, eventPatternToLike, WEBHOOK_EVENT_EXAMPLES } from './webhook-events';

/** SQL LIKE with backslash escapes, as PostgreSQL evaluates it. */
function like(pattern: string, text: string): boolean {
  let regex = '';
  for (let index = 0; index < pattern.length; index += 1) {
    const character = pattern[index]!;
    if (character === '\\') regex += pattern[++index]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (character === '%') regex += '.*';
    else if (character === '_') regex += '.';
    else regex += character.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${regex}$`, 's').test(text);
}

describe('eventPatternProblem', () => {
  it('accepts *, exact types and prefixes of known kinds', () => {
    for (const pattern of ['*', 'rollout.*', 'rollout.host.*', 'operation.failed', 'rollout.awaiting_approval']) {
      assert.equal(eventPatternProblem(pattern), null, pattern);
    }
    for (const type of WEBHOOK_EVENT_EXAMPLES) assert.equal(eventPatternProblem(type), null, type);
  });

  it('refuses unknown kinds and malformed patterns', () => {
    assert.match(eventPatternProblem('host.*') ?? '', /no known kind/);
    for (const pattern of ['', 'rollout', 'rollout.', 'rollout*', '*.failed', 'rollout.*.x', 'Rollout.*', 'a%b']) {
      assert.notEqual(eventPatternProblem(pattern), null, pattern);
    }
  });
});

describe('eventPatternToLike', () => {
  it('matches in SQL exactly what eventMatches matches in code (_ and % in types are literal)', () => {
    const segment = fc.stringMatching(/^[a-z_%\\]{1,6}$/);
    const type = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('.'));
    fc.assert(
      fc.property(type, type, fc.boolean(), (patternBase, candidate, prefix) => {
        const pattern = prefix ? `${patternBase}.*` : patternBase;
        assert.equal(like(eventPatternToLike(pattern), candidate), eventMatches([pattern], candidate), pattern);
      }),
    );
    assert.equal(like(eventPatternToLike('rollout.awaiting_approval'), 'rollout.awaitingXapproval'), false);
    assert.equal(like(eventPatternToLike('*'), 'operation.failed'), true);
  });
});

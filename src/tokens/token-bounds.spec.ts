import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ForbiddenError } from '../common/errors/domain-errors';
import { matchesSelector, matchesUnitGlob, parseSelector } from '@drover/protocol';
import { assertMayActOn, BoundedAction, BoundsTarget, declarationProblem } from './token-bounds';

const UNBOUNDED = { hostSelector: null, unitGlob: null };

function host(name: string, labels: Record<string, string> = {}): BoundsTarget {
  return { name, labels };
}

/** A restart of the unit, or with no unit a daemon-reload (which acts on the whole host). */
function actionOn(unit: string | null): BoundedAction {
  return unit === null ? { verb: 'daemon-reload', units: [] } : { verb: 'restart', units: [unit] };
}

/** The ForbiddenError assertMayActOn throws, or null when it allows the action. */
function refusal(
  principal: Parameters<typeof assertMayActOn>[0],
  targets: readonly BoundsTarget[],
  unitOrAction: string | null | BoundedAction,
): ForbiddenError | null {
  const action = typeof unitOrAction === 'object' && unitOrAction !== null ? unitOrAction : actionOn(unitOrAction);
  try {
    assertMayActOn(principal, targets, action);
    return null;
  } catch (error) {
    assert.ok(error instanceof ForbiddenError, `expected ForbiddenError, got ${String(error)}`);
    return error;
  }
}

describe('assertMayActOn', () => {
  it('lets an unbounded token act on any host and unit, and without a unit', () => {
    const targets = [host('a', { env: 'prod' }), host('b')];
    assert.equal(refusal(UNBOUNDED, targets, 'sshd.service'), null);
    assert.equal(refusal(UNBOUNDED, targets, null), null);
    assert.equal(refusal(UNBOUNDED, [], null), null);
  });

  it('allows hosts inside the hostSelector and names those outside it', () => {
    const bounds = { hostSelector: 'env=staging,role in (web,api)', unitGlob: null };
    const inside = [host('s1', { env: 'staging', role: 'web' }), host('s2', { env: 'staging', role: 'api' })];
    assert.equal(refusal(bounds, inside, 'nginx.service'), null);

    const error = refusal(bounds, [...inside, host('p1', { env: 'prod', role: 'web' }), host('bare')], 'nginx.service');
    assert.ok(error);
    assert.equal(error.status, 403);
    assert.equal(error.code, 'forbidden');
    assert.match(error.message, /only on hosts matching 'env=staging,role in \(web,api\)'/);
    assert.match(error.message, /2 hosts outside it: p1, bare$/);
    assert.doesNotMatch(error.message, /s1|s2/);
  });

  it('names the first five hosts outside the bounds and counts the rest', () => {
    const outside = Array.from({ length: 12 }, (_, index) => host(`prod-${index}`, { env: 'prod' }));
    const error = refusal({ hostSelector: 'env=staging', unitGlob: null }, outside, null);
    assert.match(error?.message ?? '', /12 hosts outside it: prod-0, prod-1, prod-2, prod-3, prod-4 and 7 more$/);
  });

  it('allows units matching the unitGlob and refuses others by name', () => {
    const bounds = { hostSelector: null, unitGlob: 'nginx*.service' };
    assert.equal(refusal(bounds, [host('a')], 'nginx.service'), null);
    assert.equal(refusal(bounds, [host('a')], 'nginx-canary.service'), null);
    const error = refusal(bounds, [host('a')], 'sshd.service');
    assert.match(error?.message ?? '', /only on units matching 'nginx\*\.service', not on 'sshd\.service'/);
  });

  it('refuses a unit-less verb (daemon-reload) to a token with a unitGlob, saying so', () => {
    const error = refusal({ hostSelector: null, unitGlob: '*' }, [host('a')], null);
    assert.match(error?.message ?? '', /not on the whole host \(such as daemon-reload\)/);
    // A host bound alone does not stop unit-less verbs on hosts inside it.
    assert.equal(refusal({ hostSelector: 'env=prod', unitGlob: null }, [host('a', { env: 'prod' })], null), null);
  });

  it('treats daemon-reload as host-level whatever unit the request names', () => {
    const bounds = { hostSelector: null, unitGlob: 'fleet-*' };
    // The escape: a unit inside the glob named alongside a verb that reloads the whole manager.
    const named = refusal(bounds, [host('a')], { verb: 'daemon-reload', units: ['fleet-demo.service'] });
    assert.match(named?.message ?? '', /not on the whole host \(such as daemon-reload\)/);
    assert.equal(refusal(bounds, [host('a')], { verb: 'restart', units: ['fleet-demo.service'] }), null);
    assert.equal(refusal(UNBOUNDED, [host('a')], { verb: 'daemon-reload', units: ['fleet-demo.service'] }), null);
  });

  it('lets discovery through on the host bound alone, since it only reads', () => {
    const bounds = { hostSelector: 'env=prod', unitGlob: 'fleet-*' };
    assert.equal(refusal(bounds, [host('a', { env: 'prod' })], { verb: 'discover' }), null);
    assert.match(refusal(bounds, [host('b')], { verb: 'discover' })?.message ?? '', /1 host outside it: b$/);
  });

  it('checks every unit of a glob rollout, and only the hosts when it matched none', () => {
    const bounds = { hostSelector: null, unitGlob: 'app-*.service' };
    const both = { verb: 'restart', units: ['app-1.service', 'db.service', 'app-2.service'] } as const;
    assert.match(refusal(bounds, [host('a')], both)?.message ?? '', /not on 'db\.service'$/);
    assert.equal(refusal(bounds, [host('a')], { verb: 'restart', units: [] }), null);
  });

  it('reports host and unit problems together', () => {
    const error = refusal({ hostSelector: 'env=staging', unitGlob: 'app-*.service' }, [host('p', {})], 'db.service');
    assert.match(error?.message ?? '', /1 host outside it: p; this token may act only on units matching/);
  });

  it('refuses (403, not 400) when stored bounds no longer parse', () => {
    assert.match(
      refusal({ hostSelector: 'env in (', unitGlob: null }, [host('a')], null)?.message ?? '',
      /no longer valid/,
    );
    assert.match(
      refusal({ hostSelector: null, unitGlob: 'a[' }, [host('a')], 'a.service')?.message ?? '',
      /no longer valid/,
    );
  });

  it('refuses exactly when some target is outside the selector or the unit is outside the glob', () => {
    const value = fc.constantFrom('prod', 'staging', 'dev');
    const labels = fc.dictionary(fc.constantFrom('env', 'role', 'tier'), value, { maxKeys: 3 });
    const target = fc.record({ name: fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/), labels });
    const selector = fc.option(
      fc.constantFrom('env=prod', 'env!=prod', 'env in (prod,staging)', 'role', '!tier', 'env notin (dev),role', ''),
      { nil: null },
    );
    const unitGlob = fc.option(fc.constantFrom('*', 'nginx*', '*.service', 'app-[0-9].service', '?.socket'), {
      nil: null,
    });
    const unit = fc.option(fc.constantFrom('nginx.service', 'app-3.service', 'a.socket', 'sshd.service'), {
      nil: null,
    });
    fc.assert(
      fc.property(selector, unitGlob, fc.array(target, { maxLength: 6 }), unit, (hostSelector, glob, targets, name) => {
        const hostsOk =
          hostSelector === null || targets.every((t) => matchesSelector(parseSelector(hostSelector), t.labels));
        const unitOk = glob === null || (name !== null && matchesUnitGlob(glob, name));
        const error = refusal({ hostSelector, unitGlob: glob }, targets, name);
        assert.equal(error === null, hostsOk && unitOk, error?.message);
        if (error && !hostsOk) {
          const firstOutside = targets.find((t) => !matchesSelector(parseSelector(hostSelector ?? ''), t.labels));
          assert.ok(error.message.includes(firstOutside?.name ?? '?'), error.message);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('declarationProblem', () => {
  it('lets an unbounded token declare anything', () => {
    assert.equal(declarationProblem(UNBOUNDED, '', 'nginx.service'), null);
  });

  it('needs every requirement of the host selector in the declared selector', () => {
    const bounded = { hostSelector: 'env=staging', unitGlob: null };
    assert.equal(declarationProblem(bounded, 'role=web,env=staging', 'nginx.service'), null);
    assert.equal(declarationProblem(bounded, 'env==staging', 'nginx.service'), null, 'the same requirement spelled ==');
    assert.match(declarationProblem(bounded, 'role=web', 'nginx.service') ?? '', /must include 'env=staging'/);
    assert.match(declarationProblem(bounded, '', 'nginx.service') ?? '', /must include 'env=staging'/);
  });

  it('needs the unit inside the unit glob', () => {
    const bounded = { hostSelector: null, unitGlob: 'api-*.service' };
    assert.equal(declarationProblem(bounded, '', 'api-web.service'), null);
    assert.match(declarationProblem(bounded, '', 'nginx.service') ?? '', /not on 'nginx.service'/);
  });

  it('never lets a declared selector match a host outside the bounds (property)', () => {
    const label = fc.record({ env: fc.constantFrom('prod', 'staging'), role: fc.constantFrom('web', 'db') });
    const requirement = fc.constantFrom('env=staging', 'env!=prod', 'role=web', 'role in (web,db)', 'env');
    fc.assert(
      fc.property(fc.array(requirement, { maxLength: 3 }), fc.array(label), (requirements, hosts) => {
        const selector = requirements.join(',');
        const bounds = { hostSelector: 'env=staging', unitGlob: null };
        if (declarationProblem(bounds, selector, 'nginx.service') !== null) return;
        for (const labels of hosts) {
          if (matchesSelector(parseSelector(selector), labels)) assert.equal(labels.env, 'staging');
        }
      }),
    );
  });
});

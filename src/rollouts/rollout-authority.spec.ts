import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ActingToken, actingTokenProblem, CatalogueEntry, commandProbeNames, probeProblems } from './rollout-authority';

const NOW = new Date('2026-12-01T12:00:00.000Z');
const TOKEN: ActingToken = {
  name: 'deploy',
  scopes: ['operate'],
  hostSelector: 'env=staging',
  unitGlob: 'fleet-*',
  revokedAt: null,
  expiresAt: null,
};
const STAGING = [{ name: 'web-1', labels: { env: 'staging' } }];
const RESTART = { verb: 'restart' as const, units: ['fleet-demo.service'] };

describe('actingTokenProblem', () => {
  it('lets a token in good standing go on within its bounds', () => {
    assert.equal(actingTokenProblem(TOKEN, NOW, STAGING, RESTART), null);
    assert.equal(actingTokenProblem({ ...TOKEN, expiresAt: new Date(NOW.getTime() + 1) }, NOW, STAGING, RESTART), null);
  });

  it('stops a rollout whose token is gone, revoked, expired or lost its scope, saying which', () => {
    assert.match(actingTokenProblem(null, NOW, STAGING, RESTART) ?? '', /no longer exists/);
    const revokedAt = new Date('2026-12-01T11:00:00.000Z');
    assert.equal(
      actingTokenProblem({ ...TOKEN, revokedAt }, NOW, STAGING, RESTART),
      "its token 'deploy' was revoked at 2026-12-01T11:00:00.000Z",
    );
    assert.match(actingTokenProblem({ ...TOKEN, expiresAt: NOW }, NOW, STAGING, RESTART) ?? '', /expired at/);
    assert.match(actingTokenProblem({ ...TOKEN, scopes: ['read'] }, NOW, STAGING, RESTART) ?? '', /'operate' scope/);
    assert.equal(actingTokenProblem({ ...TOKEN, scopes: ['admin'] }, NOW, STAGING, RESTART), null);
  });

  it('stops it at a host relabelled out of the bounds, or a host-level verb under a unit bound', () => {
    const moved = [...STAGING, { name: 'web-2', labels: { env: 'prod' } }];
    assert.match(actingTokenProblem(TOKEN, NOW, moved, RESTART) ?? '', /no longer covers .*1 host outside it: web-2$/);
    const reload = { verb: 'daemon-reload' as const, units: ['fleet-demo.service'] };
    assert.match(actingTokenProblem(TOKEN, NOW, STAGING, reload) ?? '', /not on the whole host/);
  });
});

describe('probeProblems', () => {
  const catalogue = new Map<string, CatalogueEntry>([
    ['any', { argv: ['/usr/bin/true'], timeoutMs: 2000, unitGlob: null }],
    ['api', { argv: ['/usr/bin/true'], timeoutMs: 2000, unitGlob: 'api-*.service' }],
  ]);

  it('names each probe missing from the catalogue or limited to other units, by its place in the gate', () => {
    const probes = [
      { type: 'tcp' as const, port: 80, timeoutMs: 2000 },
      { type: 'command' as const, name: 'any' },
      { type: 'command' as const, name: 'gone' },
      { type: 'command' as const, name: 'api' },
    ];
    assert.deepEqual(probeProblems(probes, catalogue, ['api-1.service', 'web.service']), [
      "healthGate.probes[2]: no probe 'gone' in the catalogue (GET /v1/probes)",
      "healthGate.probes[3]: probe 'api' may gate only units matching 'api-*.service', not 'web.service'",
    ]);
    assert.deepEqual(probeProblems(probes.slice(0, 2), catalogue, ['web.service']), []);
    assert.deepEqual(commandProbeNames([...probes, { type: 'command', name: 'any' }]), ['any', 'gone', 'api']);
  });
});

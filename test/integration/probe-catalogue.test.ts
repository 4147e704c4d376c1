import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { DroverClient, Schemas } from '../../src/client';
import { buildHosts } from '../factories/host.factory';
import { insertUnits } from '../factories/unit.factory';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { assertProblem } from '../support/problems';

type Strategy = Schemas['RolloutStrategy'];

const CLI = path.resolve(__dirname, '../../src/cli/main.js');
const run = promisify(execFile);

const CHECK_NGINX = ['/usr/bin/systemctl', 'is-active', '--quiet', 'nginx.service'];

describe('probe catalogue', () => {
  let api: TestApi;
  let admin: DroverClient;

  async function auditOf(action: string) {
    return query<{ actor_name: string; parameters: { name: string }; before: unknown; after: unknown }>(
      api.database.url,
      `SELECT actor_name, parameters, before, after FROM audit_events WHERE action = $1 ORDER BY seq`,
      [action],
    );
  }

  async function putProbe(name: string, body: Schemas['PutProbe'], client = admin) {
    return client.PUT('/v1/probes/{name}', { params: { path: { name } }, body });
  }

  before(async () => {
    api = await startTestApi();
    admin = await api.client();
    const hosts = buildHosts(3, () => ({ labels: { suite: 'catalogue' } }));
    const imported = await admin.POST('/v1/hosts/bulk-upsert', { body: { hosts } });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    for (const host of hosts) {
      await insertUnits(api.prisma, host.name, [{ name: 'nginx.service' }, { name: 'api-1.service' }]);
    }
  });
  after(() => api.close());

  it('creates (201), replaces (200), reads, lists and deletes (204) probes, auditing each change', async () => {
    const created = await putProbe('nginx-active', { argv: CHECK_NGINX, description: 'nginx is active' });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    assert.deepEqual(created.data?.argv, CHECK_NGINX);
    assert.equal(created.data?.timeoutMs, 2000);
    assert.equal(created.data?.unitGlob, null);

    const replaced = await putProbe('nginx-active', {
      argv: [...CHECK_NGINX.slice(0, 2), 'nginx.service'],
      timeoutMs: 500,
    });
    assert.equal(replaced.response.status, 200, JSON.stringify(replaced.error));
    assert.equal(replaced.data?.timeoutMs, 500);
    assert.equal(replaced.data?.createdAt, created.data?.createdAt);

    const read = await admin.GET('/v1/probes/{name}', { params: { path: { name: 'nginx-active' } } });
    assert.deepEqual(read.data, replaced.data);
    const listed = await admin.GET('/v1/probes', {});
    assert.deepEqual(
      listed.data?.items.map((probe) => probe.name),
      ['nginx-active'],
    );

    const deleted = await admin.DELETE('/v1/probes/{name}', { params: { path: { name: 'nginx-active' } } });
    assert.equal(deleted.response.status, 204);
    assertProblem(
      await admin.GET('/v1/probes/{name}', { params: { path: { name: 'nginx-active' } } }),
      404,
      'probe_not_found',
    );
    assertProblem(
      await admin.DELETE('/v1/probes/{name}', { params: { path: { name: 'nginx-active' } } }),
      404,
      'probe_not_found',
    );

    const [create] = await auditOf('probe.create');
    assert.deepEqual(create?.parameters, { name: 'nginx-active' });
    assert.equal(create?.before, null);
    assert.deepEqual(create?.after, {
      argv: CHECK_NGINX,
      description: 'nginx is active',
      timeoutMs: 2000,
      unitGlob: null,
    });
    const [update] = await auditOf('probe.update');
    assert.deepEqual(update?.before, create?.after, 'an update records the definition it replaced');
    assert.deepEqual((update?.after as { timeoutMs: number }).timeoutMs, 500);
    const [removal] = await auditOf('probe.delete');
    assert.deepEqual(removal?.before, update?.after, 'a deletion records the definition it removed');
  });

  it('lets only unbounded admin tokens change the catalogue, and any reader read it', async () => {
    await putProbe('readable', { argv: ['/usr/bin/true'] });
    for (const input of [
      { scopes: ['operate' as const] },
      { scopes: ['admin' as const], hostSelector: 'suite=catalogue' },
      { scopes: ['admin' as const], unitGlob: 'nginx*' },
    ]) {
      const client = await api.client(input);
      assertProblem(await putProbe('sneaky', { argv: ['/bin/sh', '-c', 'touch /tmp/x'] }, client), 403, 'forbidden');
      assertProblem(
        await client.DELETE('/v1/probes/{name}', { params: { path: { name: 'readable' } } }),
        403,
        'forbidden',
      );
    }
    const reader = await api.client({ scopes: ['read'] });
    assert.equal(
      (await reader.GET('/v1/probes/{name}', { params: { path: { name: 'readable' } } })).response.status,
      200,
    );
    assert.equal((await auditOf('probe.create')).filter((event) => event.parameters.name === 'sneaky').length, 0);
  });

  it('refuses argv it could not run or express exactly, naming the field', async () => {
    const cases: [unknown, string][] = [
      ['curl -f localhost || reboot', 'argv'],
      [[], 'argv'],
      [['curl', '-f'], 'argv[0]'],
      [['/usr/bin/../bin/sh'], 'argv[0]'],
      [['/usr/bin/my*prog'], 'argv[0]'],
      [['/usr/bin/curl', 'a b'], 'argv[1]'],
      [['/usr/bin/curl', ''], 'argv[1]'],
      [['/usr/bin/curl', 'x\ny'], 'argv[1]'],
    ];
    for (const [argv, field] of cases) {
      assertProblem(await putProbe('bad', { argv: argv as string[] }), 400, 'validation_failed', field);
    }
    assertProblem(await putProbe('Bad_Name', { argv: ['/usr/bin/true'] }), 400, 'validation_failed', 'name');
    assertProblem(
      await putProbe('ok', { argv: ['/usr/bin/true'], unitGlob: 'a[' }),
      400,
      'validation_failed',
      'unitGlob',
    );
    assert.equal((await admin.GET('/v1/probes/{name}', { params: { path: { name: 'bad' } } })).response.status, 404);
  });

  it('is managed from the CLI: set takes the argv after --, list shows it, delete removes it', async () => {
    const env = { ...process.env, DROVER_URL: api.baseUrl, DROVER_TOKEN: await api.token() };
    const drover = (...args: string[]) => run(process.execPath, [CLI, ...args], { env });
    await drover('probes', 'set', 'cli-made', '--timeout-ms', '750', '--unit-glob', 'nginx*', '--', ...CHECK_NGINX);
    const listed = await drover('probes', 'list');
    assert.match(
      listed.stdout,
      /^cli-made\s+750 ms\s+nginx\*\s+\/usr\/bin\/systemctl is-active --quiet nginx\.service$/m,
    );
    assert.equal((await drover('probes', 'delete', 'cli-made')).stdout, 'probe cli-made deleted\n');
    await assert.rejects(drover('probes', 'get', 'cli-made'), /probe 'cli-made' does not exist/);
  });

  describe('in rollouts', () => {
    const base: Strategy = { unit: 'nginx.service', selector: 'suite=catalogue' };

    before(async () => {
      assert.equal((await putProbe('nginx-up', { argv: CHECK_NGINX, timeoutMs: 1500 })).response.status, 201);
      assert.equal(
        (await putProbe('api-only', { argv: ['/usr/bin/true'], unitGlob: 'api-*.service' })).response.status,
        201,
      );
    });

    it('refuses a command probe carrying its own argv, even from an unbounded admin', async () => {
      // The escape this closes: any operate token ran `sh -c ...` as root on every selected host.
      const bounded = await api.client({ scopes: ['operate'], hostSelector: 'suite=catalogue', unitGlob: 'nginx*' });
      for (const client of [bounded, admin]) {
        const result = await client.POST('/v1/rollouts', {
          body: {
            ...base,
            healthGate: { probes: [{ type: 'command', argv: ['/bin/sh', '-c', 'touch /tmp/x'] } as never] },
          },
        });
        assertProblem(result, 400, 'validation_failed', 'healthGate.probes[0].name');
      }
      const [row] = await query<{ count: string }>(api.database.url, 'SELECT count(*) FROM rollouts');
      assert.equal(Number(row?.count), 0);
    });

    it('shows the catalogue commands a plan would run, and refuses unknown or mismatched probes', async () => {
      const bounded = await api.client({ scopes: ['operate'], hostSelector: 'suite=catalogue', unitGlob: 'nginx*' });
      const plan = await bounded.POST('/v1/rollouts/plan', {
        body: { ...base, healthGate: { probes: [{ type: 'command', name: 'nginx-up' }] } },
      });
      assert.equal(plan.response.status, 200, JSON.stringify(plan.error));
      assert.equal(plan.data?.ok, true, plan.data?.problems.join('; '));
      assert.deepEqual(plan.data?.probeCommands, [{ name: 'nginx-up', argv: CHECK_NGINX, timeoutMs: 1500 }]);

      const unknown = await admin.POST('/v1/rollouts/plan', {
        body: {
          ...base,
          healthGate: {
            probes: [
              { type: 'tcp', port: 80 },
              { type: 'command', name: 'nope' },
            ],
          },
        },
      });
      assert.equal(unknown.data?.ok, false);
      assert.deepEqual(unknown.data?.problems, [
        "healthGate.probes[1]: no probe 'nope' in the catalogue (GET /v1/probes)",
      ]);

      const mismatched = await admin.POST('/v1/rollouts', {
        body: { ...base, healthGate: { probes: [{ type: 'command', name: 'api-only' }] } },
      });
      const problem = assertProblem(mismatched, 422, 'rollout_cannot_start');
      assert.match(
        problem.detail,
        /probe 'api-only' may gate only units matching 'api-\*\.service', not 'nginx\.service'/,
      );
      const apiPlan = await admin.POST('/v1/rollouts/plan', {
        body: {
          unit: 'api-*.service',
          selector: 'suite=catalogue',
          healthGate: { probes: [{ type: 'command', name: 'api-only' }] },
        },
      });
      assert.equal(apiPlan.data?.ok, true, apiPlan.data?.problems.join('; '));
    });
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createDroverClient, DroverClient, Schemas } from '../../src/client';
import { buildHost, buildHosts } from '../factories/host.factory';
import { insertUnits } from '../factories/unit.factory';
import { query } from '../support/database';
import { startTestApi, TestApi } from '../support/api';
import { assertProblem, type Problem } from '../support/problems';

/** One requirement of a label selector, as the generators below make them. */
interface Requirement {
  key: string;
  op: 'exists' | '!' | '=' | '==' | '!=' | 'in' | 'notin';
  values: string[];
}

describe('inventory API', () => {
  let api: TestApi;
  let admin: DroverClient;

  before(async () => {
    api = await startTestApi();
    admin = await api.client();
  });
  after(() => api.close());

  describe('authentication', () => {
    it('rejects a request without a token with 401 problem+json', async () => {
      const anonymous = createDroverClient(api.baseUrl, undefined);
      assertProblem(await anonymous.GET('/v1/hosts', {}), 401, 'unauthenticated');
    });

    it('rejects unknown, malformed, expired and revoked tokens', async () => {
      const unknown = createDroverClient(api.baseUrl, `drv_${'A'.repeat(43)}`);
      assertProblem(await unknown.GET('/v1/hosts', {}), 401, 'unauthenticated');
      const malformed = createDroverClient(api.baseUrl, 'not-a-token');
      assertProblem(await malformed.GET('/v1/hosts', {}), 401, 'unauthenticated');
      const expired = await api.client({ expiresAt: new Date(Date.now() - 1000) });
      const problem = assertProblem(await expired.GET('/v1/hosts', {}), 401, 'unauthenticated');
      assert.match(problem.detail, /expired/);
      const revokedSecret = await api.token({ name: 'revoke-me' });
      await query(api.database.url, `UPDATE api_tokens SET revoked_at = now() WHERE name = 'revoke-me'`);
      const revoked = createDroverClient(api.baseUrl, revokedSecret);
      assert.match(assertProblem(await revoked.GET('/v1/hosts', {}), 401, 'unauthenticated').detail, /revoked/);
    });

    it('stores only the SHA-256 of a token and records its last use', async () => {
      const secret = await api.token({ name: 'hash-check' });
      const client = createDroverClient(api.baseUrl, secret);
      assert.equal((await client.GET('/v1/hosts', {})).response.status, 200);
      const rows = await query<{ secret_hash: string; last_used_at: Date | null }>(
        api.database.url,
        `SELECT secret_hash, last_used_at FROM api_tokens WHERE name = 'hash-check'`,
      );
      const { createHash } = await import('node:crypto');
      assert.equal(rows[0]?.secret_hash, createHash('sha256').update(secret).digest('hex'));
      assert.ok(rows[0]?.last_used_at instanceof Date);
      const leaked = await query(api.database.url, `SELECT 1 FROM api_tokens WHERE secret_hash = $1`, [secret]);
      assert.equal(leaked.length, 0);
    });

    it('lets health probes through without a token', async () => {
      const response = await fetch(`${api.baseUrl}/healthz/ready`);
      assert.equal(response.status, 200);
      const body = (await response.json()) as Schemas['Readiness'];
      assert.equal(body.status, 'ready');
      assert.equal(body.checks.database.status, 'up');
      assert.equal(body.checks.redis.status, 'up');
    });

    it('refuses inventory changes to a read-only token with 403', async () => {
      const reader = await api.client({ scopes: ['read'] });
      assert.equal((await reader.GET('/v1/hosts', {})).response.status, 200);
      assertProblem(await reader.POST('/v1/hosts', { body: buildHost() }), 403, 'forbidden');
    });
  });

  describe('hosts CRUD', () => {
    it('creates, reads, updates and deletes a host', async () => {
      const input = buildHost({ labels: { role: 'web', env: 'prod' } });
      const created = await admin.POST('/v1/hosts', { body: input });
      assert.equal(created.response.status, 201);
      assert.equal(created.data?.name, input.name);
      assert.deepEqual(created.data?.labels, { role: 'web', env: 'prod' });
      assert.equal(created.data?.status, 'unknown');

      const read = await admin.GET('/v1/hosts/{name}', { params: { path: { name: input.name } } });
      assert.deepEqual(read.data, created.data);

      const updated = await admin.PATCH('/v1/hosts/{name}', {
        params: { path: { name: input.name } },
        body: { port: 2222, labels: { role: 'db' } },
      });
      assert.equal(updated.response.status, 200);
      assert.equal(updated.data?.port, 2222);
      assert.deepEqual(updated.data?.labels, { role: 'db' });
      assert.equal(updated.data?.address, input.address);

      const deleted = await admin.DELETE('/v1/hosts/{name}', { params: { path: { name: input.name } } });
      assert.equal(deleted.response.status, 204);
      assertProblem(
        await admin.GET('/v1/hosts/{name}', { params: { path: { name: input.name } } }),
        404,
        'host_not_found',
      );
    });

    it('answers 404 for unknown hosts on read, update and delete', async () => {
      const path = { name: 'no-such-host' };
      assertProblem(await admin.GET('/v1/hosts/{name}', { params: { path } }), 404, 'host_not_found');
      assertProblem(
        await admin.PATCH('/v1/hosts/{name}', { params: { path }, body: { port: 23 } }),
        404,
        'host_not_found',
      );
      assertProblem(await admin.DELETE('/v1/hosts/{name}', { params: { path } }), 404, 'host_not_found');
    });

    it('answers 409 naming the field for a duplicate name', async () => {
      const input = buildHost();
      assert.equal((await admin.POST('/v1/hosts', { body: input })).response.status, 201);
      const problem = assertProblem(await admin.POST('/v1/hosts', { body: input }), 409, 'host_exists', 'name');
      assert.match(problem.detail, new RegExp(input.name));
    });

    it('answers 400 naming every bad field and creates nothing', async () => {
      const before = await query<{ count: string }>(api.database.url, 'SELECT count(*) FROM hosts');
      const result = await admin.POST('/v1/hosts', {
        body: {
          ...buildHost(),
          name: 'bad name',
          port: 70000,
          hostKeyFingerprint: 'MD5:aa',
          labels: { 'bad key!': 'v' },
          extra: true,
        } as unknown as Schemas['CreateHost'],
      });
      const problem = assertProblem(result, 400, 'validation_failed');
      const fields = problem.errors.map((error) => error.field).sort();
      assert.deepEqual(fields, ['extra', 'hostKeyFingerprint', 'labels.bad key!', 'name', 'port']);
      const afterCount = await query<{ count: string }>(api.database.url, 'SELECT count(*) FROM hosts');
      assert.equal(afterCount[0]?.count, before[0]?.count);
    });

    it('answers 400 for malformed JSON and unknown routes with problem+json', async () => {
      const token = await api.token();
      const response = await fetch(`${api.baseUrl}/v1/hosts`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: '{"name": ',
      });
      assert.equal(response.status, 400);
      assert.equal(((await response.json()) as Problem).code, 'malformed_request');
      const missing = await fetch(`${api.baseUrl}/v1/nothing-here`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(missing.status, 404);
      assert.equal(((await missing.json()) as Problem).code, 'route_not_found');
    });
  });

  describe('bulk upsert', () => {
    it('is idempotent: the same payload twice gives the same rows and touches nothing', async () => {
      const hosts = buildHosts(2500, (index) => ({ labels: { bulk: 'a', shard: `s${index % 7}` } }));
      const first = await admin.POST('/v1/hosts/bulk-upsert', { body: { hosts } });
      assert.deepEqual(first.data, { total: 2500, created: 2500, updated: 0, unchanged: 0 });
      const snapshot = `SELECT id, name, address, port, transport, ssh_user, host_key_fingerprint, labels, created_at, updated_at
                        FROM hosts WHERE labels @> '{"bulk":"a"}' ORDER BY name`;
      const rowsBefore = await query(api.database.url, snapshot);

      const second = await admin.POST('/v1/hosts/bulk-upsert', { body: { hosts } });
      assert.deepEqual(second.data, { total: 2500, created: 0, updated: 0, unchanged: 2500 });
      assert.deepEqual(await query(api.database.url, snapshot), rowsBefore);
    });

    it('updates only the hosts that changed and replaces their labels whole', async () => {
      const hosts = buildHosts(10, () => ({ labels: { bulk: 'b', keep: 'no' } }));
      await admin.POST('/v1/hosts/bulk-upsert', { body: { hosts } });
      const changed = hosts.map((host, index) => (index < 3 ? { ...host, labels: { bulk: 'b' }, port: 2200 } : host));
      const result = await admin.POST('/v1/hosts/bulk-upsert', {
        body: { hosts: [...changed, buildHost({ labels: { bulk: 'b' } })] },
      });
      assert.deepEqual(result.data, { total: 11, created: 1, updated: 3, unchanged: 7 });
      const host = await admin.GET('/v1/hosts/{name}', { params: { path: { name: hosts[0]!.name } } });
      assert.deepEqual(host.data?.labels, { bulk: 'b' });
      assert.equal(host.data?.port, 2200);
    });

    it('rejects a payload with a duplicate or invalid host whole, naming hosts[i] fields', async () => {
      const good = buildHost({ labels: { bulk: 'c' } });
      const result = await admin.POST('/v1/hosts/bulk-upsert', {
        body: { hosts: [good, { ...buildHost(), address: 'not an address' }, { ...good }] },
      });
      const problem = assertProblem(result, 400, 'validation_failed');
      assert.deepEqual(problem.errors.map((error) => error.field).sort(), ['hosts[1].address', 'hosts[2].name']);
      assertProblem(
        await admin.GET('/v1/hosts/{name}', { params: { path: { name: good.name } } }),
        404,
        'host_not_found',
      );
    });
  });

  describe('listing with selectors and cursors', () => {
    const roles = ['web', 'db', 'cache'];
    const envs = ['prod', 'staging', 'dev'];
    let fleet: Schemas['CreateHost'][];

    before(async () => {
      fleet = buildHosts(60, (index) => {
        const labels: Record<string, string> = {
          sel: 'yes',
          role: roles[index % 3]!,
          env: envs[index % 3 === 0 ? index % 2 : 2]!,
        };
        if (index % 5 === 0) labels.canary = 'true';
        if (index % 4 === 0) labels.tier = index % 8 === 0 ? 'db' : 'front';
        return { labels };
      });
      await admin.POST('/v1/hosts/bulk-upsert', { body: { hosts: fleet } });
    });

    async function listAll(selector: string, limit: number): Promise<string[]> {
      const names: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await admin.GET('/v1/hosts', {
          params: { query: { selector: `sel=yes,${selector}`.replace(/,$/, ''), limit, cursor } },
        });
        assert.equal(page.response.status, 200, JSON.stringify(page.error));
        assert.ok(page.data!.items.length <= limit);
        names.push(...page.data!.items.map((host) => host.name));
        cursor = page.data!.nextCursor ?? undefined;
        pages += 1;
      } while (cursor !== undefined);
      assert.ok(pages >= Math.ceil(names.length / limit));
      return names;
    }

    /**
     * The documented semantics, written here apart from the product's parser and matcher: every
     * requirement must hold; `!=` and `notin` also hold where the label is absent.
     */
    function holds(requirement: Requirement, labels: Record<string, string>): boolean {
      const value = labels[requirement.key];
      switch (requirement.op) {
        case 'exists':
          return value !== undefined;
        case '!':
          return value === undefined;
        case '=':
        case '==':
          return value === requirement.values[0];
        case '!=':
          return value !== requirement.values[0];
        case 'in':
          return value !== undefined && requirement.values.includes(value);
        case 'notin':
          return value === undefined || !requirement.values.includes(value);
      }
    }

    function expected(requirements: Requirement[]): string[] {
      return fleet
        .filter((host) => requirements.every((requirement) => holds(requirement, host.labels ?? {})))
        .map((host) => host.name)
        .sort();
    }

    it('selects with the example selector from the docs', async () => {
      const selector = 'role=web,env in (prod,staging),!canary,tier!=db';
      const names = await listAll(selector, 100);
      assert.deepEqual(
        names,
        expected([
          { key: 'role', op: '=', values: ['web'] },
          { key: 'env', op: 'in', values: ['prod', 'staging'] },
          { key: 'canary', op: '!', values: [] },
          { key: 'tier', op: '!=', values: ['db'] },
        ]),
      );
      assert.ok(names.length > 0);
    });

    it('pages through every host exactly once in name order', async () => {
      for (const limit of [1, 7, 60, 1000]) {
        const names = await listAll('', limit);
        assert.equal(names.length, 60);
        assert.deepEqual(names, [...names].sort());
        assert.equal(new Set(names).size, 60);
      }
    });

    it('agrees with the selector semantics for generated selectors (property)', async () => {
      const key = fc.constantFrom('role', 'env', 'canary', 'tier', 'absent');
      const value = fc.constantFrom('web', 'db', 'cache', 'prod', 'staging', 'dev', 'true', 'front', 'x');
      const requirement: fc.Arbitrary<Requirement> = fc.oneof(
        key.map((k) => ({ key: k, op: 'exists' as const, values: [] })),
        key.map((k) => ({ key: k, op: '!' as const, values: [] })),
        fc
          .tuple(key, fc.constantFrom('=' as const, '==' as const, '!=' as const), value)
          .map(([k, op, v]) => ({ key: k, op, values: [v] })),
        fc
          .tuple(
            key,
            fc.constantFrom('in' as const, 'notin' as const),
            fc.uniqueArray(value, { minLength: 1, maxLength: 3 }),
          )
          .map(([k, op, vs]) => ({ key: k, op, values: vs })),
      );
      const render = (r: Requirement): string =>
        r.op === 'exists'
          ? r.key
          : r.op === '!'
            ? `!${r.key}`
            : r.op === 'in' || r.op === 'notin'
              ? `${r.key} ${r.op} (${r.values.join(',')})`
              : `${r.key}${r.op}${r.values[0]}`;
      await fc.assert(
        fc.asyncProperty(fc.array(requirement, { minLength: 1, maxLength: 3 }), async (requirements) => {
          const selector = requirements.map(render).join(',');
          const sel: Requirement = { key: 'sel', op: '=', values: ['yes'] };
          assert.deepEqual(await listAll(selector, 50), expected([sel, ...requirements]));
        }),
        { numRuns: 60 },
      );
    });

    it('answers 400 saying where a malformed selector fails', async () => {
      const problem = assertProblem(
        await admin.GET('/v1/hosts', { params: { query: { selector: 'role=web,env in (prod' } } }),
        400,
        'selector_invalid',
        'selector',
      );
      assert.match(problem.detail, /position 21/);
    });

    it('answers 400 for a cursor it did not issue', async () => {
      assertProblem(
        await admin.GET('/v1/hosts', { params: { query: { cursor: 'bm90LWEtY3Vyc29y' } } }),
        400,
        'cursor_invalid',
        'cursor',
      );
      assertProblem(
        await admin.GET('/v1/hosts', { params: { query: { limit: 0 } } }),
        400,
        'validation_failed',
        'limit',
      );
    });
  });

  describe('units', () => {
    it('lists the units of a host and one unit across a selector, paginated', async () => {
      const hosts = buildHosts(5, (index) => ({ labels: { unitfleet: 'u', env: index < 3 ? 'prod' : 'dev' } }));
      await admin.POST('/v1/hosts/bulk-upsert', { body: { hosts } });
      for (const [index, host] of hosts.entries()) {
        await insertUnits(api.prisma, host.name, [
          { name: 'nginx.service', mainPid: 100 + index },
          { name: 'cron.service', activeState: 'inactive', subState: 'dead' },
          { name: 'getty@tty1.service' },
        ]);
      }
      const own = await admin.GET('/v1/hosts/{name}/units', {
        params: { path: { name: hosts[0]!.name }, query: { limit: 2 } },
      });
      assert.deepEqual(
        own.data?.items.map((unit) => unit.name),
        ['cron.service', 'getty@tty1.service'],
      );
      assert.ok(own.data?.nextCursor);
      const rest = await admin.GET('/v1/hosts/{name}/units', {
        params: { path: { name: hosts[0]!.name }, query: { cursor: own.data.nextCursor } },
      });
      assert.deepEqual(
        rest.data?.items.map((unit) => unit.name),
        ['nginx.service'],
      );
      assert.equal(rest.data?.items[0]?.mainPid, 100);

      const fleetWide = await admin.GET('/v1/units', {
        params: { query: { name: 'nginx.service', selector: 'unitfleet=u,env=prod', limit: 2 } },
      });
      assert.deepEqual(
        fleetWide.data?.items.map((unit) => unit.hostName),
        [hosts[0]!.name, hosts[1]!.name],
      );
      const next = await admin.GET('/v1/units', {
        params: {
          query: { name: 'nginx.service', selector: 'unitfleet=u,env=prod', cursor: fleetWide.data.nextCursor! },
        },
      });
      assert.deepEqual(
        next.data?.items.map((unit) => unit.hostName),
        [hosts[2]!.name],
      );
      assert.equal(next.data?.nextCursor, null);

      // A bare name means NAME.service, as systemctl reads it.
      const bare = await admin.GET('/v1/units', {
        params: { query: { name: 'nginx', selector: 'unitfleet=u,env=prod' } },
      });
      assert.deepEqual(
        bare.data?.items.map((unit) => [unit.hostName, unit.name]),
        hosts.slice(0, 3).map((host) => [host.name, 'nginx.service']),
      );
    });

    it('rejects unit names that are not systemd unit names', async () => {
      for (const name of ['nginx; reboot', '$(id)', '../x', '-H host', 'ngïnx']) {
        assertProblem(await admin.GET('/v1/units', { params: { query: { name } } }), 400, 'validation_failed', 'name');
      }
      assertProblem(
        await admin.GET('/v1/hosts/{name}/units', { params: { path: { name: 'missing-host' } } }),
        404,
        'host_not_found',
      );
    });
  });
});

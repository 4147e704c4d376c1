import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { after, before, describe, it } from 'node:test';
import type { DroverClient, Schemas } from '../../src/client';
import { MetricsService } from '../../src/infra/metrics/metrics.service';
import { buildHost, buildHosts } from '../factories/host.factory';
import { insertUnits } from '../factories/unit.factory';
import { ProtocolAgent } from '../support/agent-client';
import { startTestApi, TestApi } from '../support/api';
import { countRows, query } from '../support/database';
import { waitUntil } from '../support/wait';

type Verification = Schemas['AuditVerification'];

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

describe('audit trail', () => {
  let api: TestApi;
  let admin: DroverClient;
  let auditor: DroverClient;

  const eventCount = async () => countRows(api.database.url, 'audit_events');

  async function verify(range: { fromSeq?: number; toSeq?: number } = {}): Promise<Verification> {
    const result = await auditor.GET('/v1/audit/verify', { params: { query: range } });
    assert.equal(result.response.status, 200, JSON.stringify(result.error));
    return result.data!;
  }

  /** Runs SQL as the superuser with the append-only protection lifted, as an attacker with DB access would. */
  async function tamper(sql: string): Promise<void> {
    await query(
      api.database.url,
      `DO $$ BEGIN
         ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;
         ${sql};
         ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;
       END $$`,
    );
  }

  before(async () => {
    // Webhooks to a local address are allowed only with this switch.
    api = await startTestApi({ WEBHOOK_ALLOW_LOOPBACK: 'true' });
    admin = await api.client({ name: 'audit-admin' });
    auditor = await api.client({ scopes: ['audit'] });
  });
  after(() => api.close());

  it('writes exactly one event for every mutating route of the API (walks openapi.json)', async () => {
    const spec = JSON.parse(await readFile(path.resolve(__dirname, '../../../openapi.json'), 'utf8')) as {
      paths: Record<string, Record<string, unknown>>;
    };
    // The agent's own routes after enrolment (its credential, heartbeats, a task's progress) change
    // no inventory: the end of a task they report is audited once, as agent-protocol.test.ts checks.
    const agentProtocol = (route: string) => route.startsWith('/agent/v1/') && route !== '/agent/v1/enroll';
    const mutating = Object.entries(spec.paths).flatMap(([route, item]) =>
      Object.keys(item)
        .filter((method) => ['post', 'put', 'patch', 'delete'].includes(method) && !agentProtocol(route))
        .map((method) => `${method.toUpperCase()} ${route}`),
    );
    const host = buildHost({ labels: { audit: 'walk' } });
    let tokenId = '';
    let rolloutId = '';
    let subscriptionId = '';
    let policyId = '';
    let joinToken = '';
    const walkingAgent = new ProtocolAgent(api.baseUrl);
    const steer = (action: 'pause' | 'resume' | 'approve' | 'cancel' | 'retry') => () =>
      admin.POST(`/v1/rollouts/{id}/${action}` as '/v1/rollouts/{id}/pause', {
        params: { path: { id: rolloutId } },
        body: { reason: 'audit walk' },
      });
    const calls: Record<string, () => Promise<{ response: Response }>> = {
      'POST /v1/hosts': () => admin.POST('/v1/hosts', { body: host }),
      'POST /v1/hosts/bulk-upsert': () => admin.POST('/v1/hosts/bulk-upsert', { body: { hosts: buildHosts(3) } }),
      'PATCH /v1/hosts/{name}': () =>
        admin.PATCH('/v1/hosts/{name}', { params: { path: { name: host.name } }, body: { port: 2022 } }),
      'POST /v1/hosts/{name}/actions': () =>
        admin.POST('/v1/hosts/{name}/actions', {
          params: { path: { name: host.name } },
          body: { verb: 'restart', unit: 'nginx.service' },
        }),
      'POST /v1/operations': () =>
        admin.POST('/v1/operations', { body: { verb: 'status', unit: 'nginx.service', selector: 'audit=walk' } }),
      'POST /v1/rollouts/plan': () =>
        admin.POST('/v1/rollouts/plan', { body: { unit: 'nginx.service', selector: 'audit=walk' } }),
      // No worker runs here, so the rollout stays where each control request puts it.
      'POST /v1/rollouts': async () => {
        const created = await admin.POST('/v1/rollouts', {
          body: { unit: 'nginx.service', selector: 'audit=walk', approveAfterCanary: true },
        });
        rolloutId = created.data?.id ?? '';
        return created;
      },
      'POST /v1/rollouts/{id}/pause': steer('pause'),
      'POST /v1/rollouts/{id}/resume': steer('resume'),
      'POST /v1/rollouts/{id}/approve': steer('approve'),
      'POST /v1/rollouts/{id}/cancel': steer('cancel'),
      'POST /v1/rollouts/{id}/retry': steer('retry'),
      'POST /v1/policies': async () => {
        // A unit of the walked host out of line with the policy, so its reconcile starts a rollout.
        await insertUnits(api.prisma, host.name, [{ name: 'walked.service' }]);
        const created = await admin.POST('/v1/policies', {
          body: { name: 'walked', selector: 'audit=walk', unit: 'walked.service', activity: 'inactive' },
        });
        policyId = created.data?.id ?? '';
        return created;
      },
      'PATCH /v1/policies/{id}': () =>
        admin.PATCH('/v1/policies/{id}', { params: { path: { id: policyId } }, body: { description: 'walked' } }),
      'POST /v1/policies/{id}/reconcile': () =>
        admin.POST('/v1/policies/{id}/reconcile', { params: { path: { id: policyId } }, body: { dryRun: false } }),
      'DELETE /v1/policies/{id}': () => admin.DELETE('/v1/policies/{id}', { params: { path: { id: policyId } } }),
      'POST /v1/hosts/{name}/discover': () =>
        admin.POST('/v1/hosts/{name}/discover', { params: { path: { name: host.name } } }),
      'DELETE /v1/hosts/{name}': () => admin.DELETE('/v1/hosts/{name}', { params: { path: { name: host.name } } }),
      'POST /v1/tokens': async () => {
        const created = await admin.POST('/v1/tokens', { body: { name: 'walked-token', scopes: ['read'] } });
        tokenId = created.data?.id ?? '';
        return created;
      },
      'POST /v1/tokens/{id}/revoke': () => admin.POST('/v1/tokens/{id}/revoke', { params: { path: { id: tokenId } } }),
      'PUT /v1/probes/{name}': () =>
        admin.PUT('/v1/probes/{name}', { params: { path: { name: 'walked' } }, body: { argv: ['/usr/bin/true'] } }),
      'DELETE /v1/probes/{name}': () => admin.DELETE('/v1/probes/{name}', { params: { path: { name: 'walked' } } }),
      'POST /v1/webhooks': async () => {
        const created = await admin.POST('/v1/webhooks', {
          body: { name: 'walked', url: 'http://127.0.0.1:9/hook', events: ['rollout.*'] },
        });
        subscriptionId = created.data?.id ?? '';
        return created;
      },
      'POST /v1/webhooks/{id}/deliveries/{deliveryId}/redeliver': async () => {
        // No worker runs here to deliver anything: a delivery that failed for good, as one would.
        const [event] = await query<{ id: string }>(
          api.database.url,
          `INSERT INTO webhook_events (type, subject_id, data) VALUES ('rollout.finished', gen_random_uuid(), '{}')
           RETURNING id`,
        );
        const [delivery] = await query<{ id: string }>(
          api.database.url,
          `INSERT INTO webhook_deliveries (id, subscription_id, event_id, status, attempts)
           VALUES (gen_random_uuid(), $1, $2, 'failed', 8) RETURNING id`,
          [subscriptionId, event!.id],
        );
        return admin.POST('/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver', {
          params: { path: { id: subscriptionId, deliveryId: delivery!.id } },
        });
      },
      'DELETE /v1/webhooks/{id}': () => admin.DELETE('/v1/webhooks/{id}', { params: { path: { id: subscriptionId } } }),
      'POST /v1/agent-join-tokens': async () => {
        const created = await admin.POST('/v1/agent-join-tokens', { body: { labels: { audit: 'walk' } } });
        joinToken = created.data?.joinToken ?? '';
        return created;
      },
      'DELETE /v1/agent-join-tokens/{id}': async () => {
        const [unused] = await query<{ id: string }>(
          api.database.url,
          `INSERT INTO agent_join_tokens (id, secret_hash, created_by, expires_at)
           VALUES (gen_random_uuid(), repeat('0', 64), 'audit walk', now() + interval '1 hour') RETURNING id::text`,
        );
        return admin.DELETE('/v1/agent-join-tokens/{id}', { params: { path: { id: unused!.id } } });
      },
      'POST /agent/v1/enroll': async () => {
        const { status } = await walkingAgent.enrol(joinToken, 'walked-agent');
        return { response: new Response(null, { status }) };
      },
      'POST /v1/agents/{id}/revoke': () =>
        admin.POST('/v1/agents/{id}/revoke', { params: { path: { id: walkingAgent.agentId } } }),
      'POST /v1/access/sudoers': () =>
        admin.POST('/v1/access/sudoers', {
          body: { user: 'drover', verbs: ['status', 'restart'], units: ['nginx.service'] },
        }),
      'POST /v1/access/polkit': () =>
        admin.POST('/v1/access/polkit', {
          body: { user: 'drover-agent', verbs: ['restart', 'reload'], units: ['nginx.service'] },
        }),
    };
    const untested = mutating.filter((route) => !(route in calls));
    assert.deepEqual(untested, [], 'every mutating route has an audit check here');
    for (const route of Object.keys(calls)) {
      const before = await eventCount();
      const { response } = await calls[route]!();
      assert.ok(response.ok, `${route} answered ${response.status}`);
      // A dry run changes nothing, so it records nothing; a reconcile starts a rollout for a policy
      // (rollout.create and policy.reconcile); every other POST records exactly one event.
      const expected = route === 'POST /v1/rollouts/plan' ? 0 : route === 'POST /v1/policies/{id}/reconcile' ? 2 : 1;
      assert.equal((await eventCount()) - before, expected, `${route} wrote ${expected} audit event(s)`);
    }
    const [created] = await query<{
      actor_name: string;
      action: string;
      source_address: string | null;
      request_id: string | null;
    }>(
      api.database.url,
      `SELECT actor_name, action, source_address, request_id FROM audit_events WHERE action = 'host.create' AND host_name = $1`,
      [host.name],
    );
    assert.equal(created?.actor_name, 'audit-admin');
    assert.ok(created?.source_address, 'the source address is recorded');
    assert.ok(created?.request_id, 'the request id is recorded');
  });

  it('keeps a bounded token inside its selector and unit glob: 403, audited, nothing queued', async () => {
    await admin.POST('/v1/hosts/bulk-upsert', {
      body: {
        hosts: [
          buildHost({ name: 'bounds-staging', labels: { env: 'staging', bounds: 'yes' } }),
          buildHost({ name: 'bounds-prod', labels: { env: 'prod', bounds: 'yes' } }),
        ],
      },
    });
    const pipeline = await api.client({
      name: 'deploy-pipeline',
      scopes: ['operate'],
      hostSelector: 'env=staging',
      unitGlob: 'api-*.service',
    });
    const operationsBefore = await query(api.database.url, 'SELECT 1 FROM operations');
    const refusals = [
      pipeline.POST('/v1/operations', { body: { verb: 'restart', unit: 'api-web.service', selector: 'bounds=yes' } }),
      pipeline.POST('/v1/operations', { body: { verb: 'restart', unit: 'nginx.service', selector: 'env=staging' } }),
      pipeline.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: 'bounds-prod' } },
        body: { verb: 'restart', unit: 'api-web.service' },
      }),
      pipeline.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: 'bounds-staging' } },
        body: { verb: 'daemon-reload' },
      }),
    ];
    for (const refusal of await Promise.all(refusals)) {
      assert.equal(refusal.response.status, 403);
      assert.equal(refusal.error?.code, 'forbidden');
    }
    const bounded = await api.client({ name: 'bounded-admin', scopes: ['admin'], hostSelector: 'env=staging' });
    const relabel = await bounded.PATCH('/v1/hosts/{name}', {
      params: { path: { name: 'bounds-prod' } },
      body: { labels: { env: 'staging' } },
    });
    assert.equal(relabel.response.status, 403, 'a bounded token cannot relabel hosts into its own bounds');
    assert.deepEqual(await query(api.database.url, 'SELECT 1 FROM operations'), operationsBefore, 'nothing was queued');
    const denied = await query<{ actor_name: string; reason: string }>(
      api.database.url,
      `SELECT actor_name, reason FROM audit_events WHERE action = 'access.denied' AND actor_name IN ('deploy-pipeline', 'bounded-admin')`,
    );
    assert.equal(denied.length, 5, 'every refusal so far is in the audit trail');
    assert.ok(denied.some((event) => /bounds-prod/.test(event.reason)));
    const trusting = await pipeline.POST('/v1/operations', {
      body: { verb: 'restart', unit: 'api-web.service', selector: 'env=staging', trustOnFirstUse: true },
    });
    assert.equal(trusting.response.status, 403, 'pinning host keys is an inventory change: not for this token');
    const allowed = await pipeline.POST('/v1/operations', {
      body: { verb: 'restart', unit: 'api-web.service', selector: 'env=staging' },
    });
    assert.equal(allowed.response.status, 202, 'inside its bounds the token works');
  });

  it('refuses UPDATE, DELETE and TRUNCATE on the audit table', async () => {
    await admin.POST('/v1/hosts', { body: buildHost() });
    for (const sql of ["UPDATE audit_events SET result = 'x'", 'DELETE FROM audit_events', 'TRUNCATE audit_events']) {
      await assert.rejects(query(api.database.url, sql), /append-only/, sql);
    }
  });

  it('keeps one unbroken chain under concurrent writers', async () => {
    const before = await eventCount();
    const created = await Promise.all(buildHosts(25).map((host) => admin.POST('/v1/hosts', { body: host })));
    // A race in the chaining trigger would surface as failed requests (a duplicate seq), not as a gap.
    assert.deepEqual(
      created.map((result) => result.response.status),
      Array.from({ length: 25 }, () => 201),
    );
    assert.equal((await eventCount()) - before, 25, 'one event per request');
    const seqs = await query<{ seq: string }>(api.database.url, 'SELECT seq FROM audit_events ORDER BY seq');
    assert.deepEqual(
      seqs.map((row) => Number(row.seq)),
      seqs.map((_row, index) => index + 1),
      'seq is gap-free',
    );
    const result = await verify();
    assert.equal(result.ok, true, JSON.stringify(result.firstBroken));
    assert.equal(result.checked, seqs.length);
  });

  it('names the first altered event when a row is edited with the protection lifted', async () => {
    const total = await eventCount();
    const target = Math.max(2, total - 3);
    await tamper(`UPDATE audit_events SET parameters = '{"port": 1}' WHERE seq = ${target}`);
    const result = await verify();
    assert.equal(result.ok, false);
    assert.equal(result.firstBroken?.seq, target);
    assert.match(result.firstBroken?.reason ?? '', /altered/);
    assert.equal((await verify({ fromSeq: target + 1 })).ok, true, 'events after it still chain to each other');
  });

  it('names a deleted event as missing', async () => {
    const fresh = await startTestApi();
    try {
      const client = await fresh.client();
      await Promise.all(buildHosts(5).map((host) => client.POST('/v1/hosts', { body: host })));
      await query(
        fresh.database.url,
        `DO $$ BEGIN
           ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;
           DELETE FROM audit_events WHERE seq = 3;
           ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;
         END $$`,
      );
      const reader = await fresh.client({ scopes: ['audit'] });
      const result = (await reader.GET('/v1/audit/verify', {})).data!;
      assert.equal(result.ok, false);
      assert.equal(result.firstBroken?.seq, 3);
      assert.match(result.firstBroken?.reason ?? '', /missing/);
    } finally {
      await fresh.close();
    }
  });

  it('filters, pages newest first, and needs the audit scope', async () => {
    const reader = await api.client({ scopes: ['read'] });
    assert.equal((await reader.GET('/v1/audit/events', {})).response.status, 403);
    const denied = await query(
      api.database.url,
      `SELECT 1 FROM audit_events WHERE action = 'access.denied' AND result = 'denied'`,
    );
    assert.ok(denied.length >= 1, 'the refused request was itself audited');

    const seen: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await auditor.GET('/v1/audit/events', {
        params: { query: { action: 'host.create', limit: 7, cursor } },
      });
      assert.equal(page.response.status, 200);
      for (const event of page.data!.items) assert.equal(event.action, 'host.create');
      seen.push(...page.data!.items.map((event) => event.seq));
      cursor = page.data!.nextCursor ?? undefined;
    } while (cursor);
    assert.deepEqual(
      seen,
      [...seen].sort((a, b) => b - a),
      'newest first',
    );
    const creates = await query(api.database.url, `SELECT 1 FROM audit_events WHERE action = 'host.create'`);
    assert.equal(seen.length, creates.length);

    const byText = await auditor.GET('/v1/audit/events', { params: { query: { q: '"port": 2022' } } });
    assert.ok(byText.data!.items.length >= 1);
    assert.ok(byText.data!.items.every((event) => JSON.stringify(event.parameters).includes('2022')));
    const byActor = await auditor.GET('/v1/audit/events', {
      params: { query: { actor: 'audit-admin', result: 'succeeded' } },
    });
    assert.ok(byActor.data!.items.length > 0);
    assert.ok(byActor.data!.items.every((event) => event.actorName === 'audit-admin'));
    const future = await auditor.GET('/v1/audit/events', { params: { query: { from: '2999-01-01T00:00:00.000Z' } } });
    assert.equal(future.data!.items.length, 0);
    const windowStart = new Date();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const windowHosts = buildHosts(3, () => ({ labels: { window: 'yes' } }));
    for (const host of windowHosts) await admin.POST('/v1/hosts', { body: host });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const windowEnd = new Date();
    await admin.POST('/v1/hosts', { body: buildHost() });
    const inWindow = await auditor.GET('/v1/audit/events', {
      params: { query: { from: windowStart.toISOString(), to: windowEnd.toISOString() } },
    });
    assert.deepEqual(
      inWindow.data!.items.map((event) => event.hostName),
      windowHosts.map((host) => host.name).reverse(),
      'exactly the events of the time window, newest first',
    );
  });

  it('exports any query as JSON lines or CSV, streaming: what it holds does not grow with the export', async (t) => {
    // Two exports of the same shape, one four times the other, written through the real trigger
    // (chained like any other event).
    const seed = (actor: string, hostPrefix: string, count: number) =>
      query(
        api.database.url,
        `INSERT INTO audit_events (actor_name, action, result, host_name, unit, parameters)
         SELECT $1, 'unit.restart', 'succeeded', $2 || (i % 500), 'nginx.service', jsonb_build_object('i', i, 'pad', repeat('x', 200))
         FROM generate_series(1, $3::int) AS i`,
        [actor, hostPrefix, count],
      );
    await seed('bulk-seed-quarter', 'quarter-', 7_500);
    await seed('bulk-seed', 'seed-', 30_000);
    const token = await api.token({ scopes: ['audit'] });

    /**
     * Streams one export and samples what stays live (heap and the memory of buffers, after a full
     * collection) while it streams. The API and this client share the process: what the client
     * reads is counted and dropped, so anything that accumulates is the server's.
     */
    const exportOf = async (actor: string, format: 'jsonl' | 'csv') => {
      const live = () => {
        collectGarbage();
        const usage = process.memoryUsage();
        return usage.heapUsed + usage.external;
      };
      // Measured from before the request: an export that gathers everything before its first byte
      // holds it by the time the response arrives.
      const atStart = live();
      const response = await fetch(`${api.baseUrl}/v1/audit/export?actor=${actor}&format=${format}`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      assert.equal(response.status, 200);
      const reader = response.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      let peak = live() - atStart;
      let bytes = 0;
      let sampledAt = 0;
      let lines = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.byteLength;
        for (const byte of value) if (byte === 10) lines += 1;
        if (bytes - sampledAt > 500_000) {
          sampledAt = bytes;
          peak = Math.max(peak, live() - atStart);
        }
      }
      return { bytes, lines, peak };
    };

    for (const format of ['jsonl', 'csv'] as const) {
      const header = format === 'csv' ? 1 : 0;
      // Once unmeasured: first-use costs (code compiled, connections and pools grown) are not growth.
      await exportOf('bulk-seed-quarter', format);
      const small = await exportOf('bulk-seed-quarter', format);
      const large = await exportOf('bulk-seed', format);
      assert.equal(small.lines, 7_500 + header);
      assert.equal(large.lines, 30_000 + header);
      assert.ok(large.bytes > 10_000_000, `exported ${large.bytes} bytes`);
      // An export that held its rows, or its output, before sending would hold at least the
      // difference in what it sends (over 7 MB here, measured: 1.0-1.1 times it); a streaming one
      // holds a batch or two either way (measured: within about 1.5 MB), whatever the baseline.
      const growth = large.peak - small.peak;
      t.diagnostic(
        `${format}: at most ${small.peak} bytes live exporting ${small.bytes} bytes, ${large.peak} exporting ${large.bytes}`,
      );
      assert.ok(
        growth < (large.bytes - small.bytes) / 2,
        `${format}: ${small.peak} bytes stayed live while streaming ${small.bytes} bytes, ` +
          `${large.peak} while streaming ${large.bytes}: it grows with the export`,
      );
    }
    const verified = await verify({ fromSeq: (await eventCount()) - 37_499 });
    assert.equal(verified.ok, true);
  });

  it('stops an export whose client went away instead of waiting for drain forever', async () => {
    const token = await api.token({ scopes: ['audit'] });
    const inFlight = async () => (await api.app.get(MetricsService).auditExportsInFlight.get()).values[0]?.value ?? 0;
    const request = http.get(`${api.baseUrl}/v1/audit/export?actor=bulk-seed`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    request.on('error', () => undefined);
    // The client reads nothing, so the server's writes back up and it waits for 'drain'.
    const response = await new Promise<http.IncomingMessage>((resolve) => request.once('response', resolve));
    response.pause();
    assert.equal(response.statusCode, 200);
    await waitUntil(async () => (await inFlight()) === 1, 'the export is streaming');
    request.destroy();
    await waitUntil(async () => (await inFlight()) === 0, 'the export ended after its client left');
  });

  it('clamps verification to the newest event, however far toSeq reaches', { timeout: 60_000 }, async () => {
    const newest = await eventCount();
    const result = await verify({ fromSeq: newest - 9, toSeq: Number.MAX_SAFE_INTEGER });
    assert.deepEqual(
      { ok: result.ok, checked: result.checked, fromSeq: result.fromSeq, toSeq: result.toSeq },
      { ok: true, checked: 10, fromSeq: newest - 9, toSeq: newest },
    );
  });

  it("shows a unit's history on one host across operations", async () => {
    const history = await auditor.GET('/v1/audit/history', {
      params: { query: { host: 'seed-7', unit: 'nginx.service', limit: 5 } },
    });
    assert.equal(history.response.status, 200);
    assert.equal(history.data!.items.length, 5);
    assert.ok(history.data!.items.every((event) => event.hostName === 'seed-7' && event.unit === 'nginx.service'));
    assert.ok(history.data!.nextCursor);
  });
});

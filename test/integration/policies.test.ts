import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DroverClient, Schemas } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { countRows, query } from '../support/database';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { assertProblem } from '../support/problems';
import { onHost, waitForSettled } from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];
type Drift = Schemas['PolicyDriftPage']['items'];
type Reconcile = Schemas['Reconcile'];

const UNIT = 'nginx.service';
const CLI = path.resolve(__dirname, '../../src/cli/main.js');
/** Quick gates: the unit's state is what these tests are about, not how long it stays so. */
const QUICK = { healthGate: { minHealthyTimeMs: 0, timeoutMs: 10_000 }, batches: { size: 4 } } as const;

describe('desired-state policies on a booted fleet', () => {
  let api: TestApi;
  let worker: TestWorker;
  let admin: DroverClient;
  let hosts: FleetHost[];
  let policyId: string;

  const host = (index: number) => hosts[index]!;

  async function discoverAll(): Promise<void> {
    for (const { name } of hosts) {
      const queued = await admin.POST('/v1/hosts/{name}/discover', { params: { path: { name } } });
      assert.equal(queued.response.status, 202, JSON.stringify(queued.error));
    }
  }

  async function drift(id = policyId, client = admin): Promise<Drift> {
    const result = await client.GET('/v1/policies/{id}/drift', { params: { path: { id }, query: { limit: 1000 } } });
    assert.equal(result.response.status, 200, JSON.stringify(result.error));
    return result.data!.items;
  }

  /** Discovers every host and waits until the policy's drift names exactly these hosts. */
  async function driftSettlesOn(names: string[], id = policyId): Promise<Drift> {
    await discoverAll();
    let last: Drift = [];
    await waitUntil(
      async () => {
        last = await drift(id);
        return JSON.stringify(last.map((item) => item.host)) === JSON.stringify(names);
      },
      `the drift of policy ${id} names ${names.join(', ') || 'no host'}`,
      60_000,
    );
    return last;
  }

  async function reconcile(body: Schemas['ReconcilePolicy'], status: number, client = admin): Promise<Reconcile> {
    const result = await client.POST('/v1/policies/{id}/reconcile', { params: { path: { id: policyId } }, body });
    assert.equal(result.response.status, status, JSON.stringify(result.error ?? result.data));
    return result.data!;
  }

  async function nginxOn(fleetHost: FleetHost): Promise<string> {
    const enabled = await onHost(fleetHost, `systemctl is-enabled ${UNIT} || true`);
    const active = await onHost(fleetHost, `systemctl is-active ${UNIT} || true`);
    return `${enabled}/${active}`;
  }

  /** Runs the CLI as an operator would, with an admin token; resolves whatever it exits with. */
  async function drover(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const token = await api.token({ name: `cli-${randomBytes(3).toString('hex')}` });
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [CLI, ...args],
        { env: { ...process.env, DROVER_URL: api.baseUrl, DROVER_TOKEN: token } },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  async function rolloutCount(): Promise<number> {
    return countRows(api.database.url, 'rollouts');
  }

  async function metric(): Promise<string> {
    const token = await api.token({ scopes: ['read'] });
    const response = await fetch(`${api.baseUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    return await response.text();
  }

  before(async () => {
    const inventory = await readFleetInventory();
    hosts = inventory.hosts.slice(0, 4).sort((a, b) => a.name.localeCompare(b.name));
    assert.equal(hosts.length, 4, 'these tests need a fleet of at least 4 hosts');
    assert.ok(
      hosts.every((fleetHost) => fleetHost.labels.role === 'web'),
      'the fleet labels every host role=web',
    );
    await Promise.all(hosts.map((fleetHost) => onHost(fleetHost, `systemctl enable --now ${UNIT}`)));
    const queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
    worker = await startTestWorker(workerEnv(api.database.url, queuePrefix));
    admin = await api.client({ name: 'policy-admin' });
    const imported = await admin.POST('/v1/hosts/bulk-upsert', { body: { hosts } });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
  });

  after(async () => {
    await Promise.all(hosts.map((fleetHost) => onHost(fleetHost, `systemctl enable --now ${UNIT}`)));
    await worker.close();
    await api.close();
  });

  it('declares, reads, changes and deletes policies; refuses bad input naming the field', async () => {
    const created = await admin.POST('/v1/policies', {
      body: { name: 'web-nginx', selector: 'role=web', unit: 'nginx', enablement: 'enabled', activity: 'active' },
    });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    policyId = created.data!.id;
    assert.equal(created.data!.unit, UNIT, 'a unit name is read as systemctl reads it');
    assert.equal(created.data!.createdBy, 'policy-admin');

    const shown = await admin.GET('/v1/policies/{id}', { params: { path: { id: policyId } } });
    assert.deepEqual(shown.data, created.data);
    const other = await admin.POST('/v1/policies', {
      body: { name: 'probe-stopped', selector: 'env=staging', unit: 'drover-probe.service', activity: 'inactive' },
    });
    assert.equal(other.response.status, 201, JSON.stringify(other.error));
    const page = await admin.GET('/v1/policies', { params: { query: { limit: 1 } } });
    assert.deepEqual(
      page.data!.items.map((policy) => policy.name),
      ['probe-stopped'],
    );
    const next = await admin.GET('/v1/policies', { params: { query: { limit: 1, cursor: page.data!.nextCursor! } } });
    assert.deepEqual(
      next.data!.items.map((policy) => policy.name),
      ['web-nginx'],
    );

    const changed = await admin.PATCH('/v1/policies/{id}', {
      params: { path: { id: other.data!.id } },
      body: { description: 'the probe is off in staging', enablement: 'disabled' },
    });
    assert.equal(changed.response.status, 200, JSON.stringify(changed.error));
    assert.equal(changed.data!.enablement, 'disabled');
    assert.equal(changed.data!.activity, 'inactive');
    const emptied = await admin.PATCH('/v1/policies/{id}', {
      params: { path: { id: other.data!.id } },
      body: { enablement: null, activity: null },
    });
    assertProblem(emptied, 400, 'validation_failed', 'enablement');
    const deleted = await admin.DELETE('/v1/policies/{id}', { params: { path: { id: other.data!.id } } });
    assert.equal(deleted.response.status, 204);

    const bad = (body: unknown) => admin.POST('/v1/policies', { body: body as Schemas['CreatePolicy'] });
    const valid = { name: 'x', selector: 'role=web', unit: UNIT, enablement: 'enabled' };
    assertProblem(await bad({ ...valid, selector: 'role in (web' }), 400, 'validation_failed', 'selector');
    assertProblem(await bad({ ...valid, unit: 'nginx-*.service' }), 400, 'validation_failed', 'unit');
    assertProblem(await bad({ ...valid, enablement: 'on' }), 400, 'validation_failed', 'enablement');
    assertProblem(await bad({ ...valid, enablement: null }), 400, 'validation_failed', 'enablement');
    assertProblem(
      await bad({ ...valid, enablement: 'masked', activity: 'active' }),
      400,
      'validation_failed',
      'activity',
    );
    assertProblem(await bad({ ...valid, name: 'Web Nginx' }), 400, 'validation_failed', 'name');
    assertProblem(await bad({ ...valid, name: 'web-nginx' }), 409, 'policy_exists', 'name');
    assertProblem(
      await admin.GET('/v1/policies/{id}/drift', { params: { path: { id: 'nope' } } }),
      400,
      'validation_failed',
      'id',
    );
    const reader = await api.client({ scopes: ['read'] });
    assertProblem(
      await reader.POST('/v1/policies', { body: { ...valid, name: 'read-only' } as never }),
      403,
      'forbidden',
    );
  });

  it('lists exactly the hosts out of line with why, counts them, and reconciles them step by step', async () => {
    await driftSettlesOn([]);
    assert.match(await metric(), /drover_policy_out_of_line_hosts\{policy="web-nginx"\} 0/);

    await onHost(host(1), `systemctl disable --now ${UNIT}`);
    await onHost(host(3), `systemctl stop ${UNIT}`);
    const out = await driftSettlesOn([host(1).name, host(3).name]);
    assert.deepEqual(out[0]!.reasons, [
      'unit-file state is disabled, policy wants enabled',
      'active state is inactive, policy wants active',
    ]);
    assert.deepEqual(out[1]!.reasons, ['active state is inactive, policy wants active']);
    assert.equal(out[1]!.unit?.unitFileState, 'enabled');
    assert.match(await metric(), /drover_policy_out_of_line_hosts\{policy="web-nginx"\} 2/);

    const rolloutsBefore = await rolloutCount();
    const dry = await reconcile({ ...QUICK }, 200);
    assert.equal(dry.dryRun, true);
    assert.equal(dry.verb, 'enable');
    assert.deepEqual(dry.hosts, [host(1).name]);
    assert.deepEqual(dry.later, [
      { host: host(1).name, steps: ['start'] },
      { host: host(3).name, steps: ['start'] },
    ]);
    assert.equal(dry.plan?.ok, true, dry.plan?.problems.join('; '));
    assert.deepEqual(
      dry.plan?.hosts.map((planned) => planned.name),
      [host(1).name],
    );
    assert.equal(dry.rollout, null);
    assert.equal(await rolloutCount(), rolloutsBefore, 'a dry run starts nothing');

    const enabling = await reconcile({ ...QUICK, dryRun: false }, 201);
    assert.equal(enabling.rollout?.verb, 'enable');
    assert.deepEqual(enabling.rollout?.strategy.onlyHosts, [host(1).name]);
    const enabled = await waitForSettled(admin, enabling.rollout.id);
    assert.equal(enabled.status, 'succeeded', enabled.reason ?? '');
    assert.equal(await nginxOn(host(1)), 'enabled/inactive');

    let starting: Reconcile | undefined;
    await waitUntil(
      async () => {
        starting = await reconcile({ ...QUICK }, 200);
        return starting.verb === 'start' && starting.hosts.length === 2;
      },
      'the next reconcile step is to start nginx on both hosts',
      60_000,
    );
    assert.deepEqual(starting!.later, []);
    const started = await reconcile({ ...QUICK, dryRun: false }, 201);
    assert.deepEqual(
      started.rollout?.hosts.map((acted) => acted.name),
      [host(1).name, host(3).name],
    );
    const done = await waitForSettled(admin, started.rollout.id);
    assert.equal(done.status, 'succeeded', done.reason ?? '');
    for (const fleetHost of hosts) assert.equal(await nginxOn(fleetHost), 'enabled/active');
    await driftSettlesOn([]);
    const nothing = await reconcile({ ...QUICK, dryRun: false }, 200);
    assert.equal(nothing.verb, null);
    assert.equal(nothing.rollout, null);

    const audited = await query<{ action: string; parameters: { rolloutId?: string; verb?: string } }>(
      api.database.url,
      `SELECT action, parameters FROM audit_events WHERE action LIKE 'policy.%' ORDER BY seq`,
    );
    assert.deepEqual(
      audited.map((event) => event.action),
      ['policy.create', 'policy.create', 'policy.update', 'policy.delete', 'policy.reconcile', 'policy.reconcile'],
    );
    assert.deepEqual(
      audited.slice(4).map((event) => [event.parameters.verb, event.parameters.rolloutId]),
      [
        ['enable', enabling.rollout.id],
        ['start', started.rollout.id],
      ],
    );
  });

  it('reports a host without the unit as out of line and not reconcilable', async () => {
    const created = await admin.POST('/v1/policies', {
      body: {
        name: 'absent',
        selector: `role=web,env=${host(0).labels.env}`,
        unit: 'absent.service',
        activity: 'active',
      },
    });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    const names = hosts.filter((fleetHost) => fleetHost.labels.env === host(0).labels.env).map((h) => h.name);
    const items = await driftSettlesOn(names, created.data!.id);
    assert.ok(items.every((item) => item.unit === null && item.reasons[0] === 'unit not found on host'));
    const result = await admin.POST('/v1/policies/{id}/reconcile', {
      params: { path: { id: created.data!.id } },
      body: {},
    });
    assert.equal(result.response.status, 200);
    assert.equal(result.data!.verb, null);
    assert.deepEqual(
      result.data!.unreconcilable.map((entry) => entry.host),
      names,
    );
  });

  it('keeps a bounded token inside its bounds when it declares, changes or reconciles', async () => {
    const staging = await api.client({
      name: 'staging-ops',
      scopes: ['operate'],
      hostSelector: 'env=staging',
      unitGlob: 'nginx*.service',
    });
    const outsideHosts = await staging.POST('/v1/policies', {
      body: { name: 'all-web', selector: 'role=web', unit: UNIT, enablement: 'enabled' },
    });
    assert.match(assertProblem(outsideHosts, 403, 'forbidden').detail, /must include 'env=staging'/);
    const outsideUnits = await staging.POST('/v1/policies', {
      body: { name: 'staging-ssh', selector: 'env=staging', unit: 'ssh.service', enablement: 'enabled' },
    });
    assert.match(assertProblem(outsideUnits, 403, 'forbidden').detail, /not on 'ssh.service'/);
    const inside = await staging.POST('/v1/policies', {
      body: { name: 'staging-nginx', selector: 'role=web,env=staging', unit: UNIT, activity: 'active' },
    });
    assert.equal(inside.response.status, 201, JSON.stringify(inside.error));
    const widen = await staging.PATCH('/v1/policies/{id}', {
      params: { path: { id: inside.data!.id } },
      body: { selector: 'role=web' },
    });
    assertProblem(widen, 403, 'forbidden');
    assertProblem(await staging.DELETE('/v1/policies/{id}', { params: { path: { id: policyId } } }), 403, 'forbidden');

    // A prod host out of line: the staging token may see it but not act on it.
    const prod = hosts.find((fleetHost) => fleetHost.labels.env === 'prod')!;
    await onHost(prod, `systemctl stop ${UNIT}`);
    await driftSettlesOn([prod.name]);
    const refused = await staging.POST('/v1/policies/{id}/reconcile', {
      params: { path: { id: policyId } },
      body: { dryRun: false },
    });
    assert.match(assertProblem(refused, 403, 'forbidden').detail, new RegExp(prod.name));
    const fixed = await reconcile({ ...QUICK, dryRun: false }, 201);
    assert.equal((await waitForSettled(admin, fixed.rollout!.id)).status, 'succeeded');
    await driftSettlesOn([]);
  });

  it('shows policies and drift in the CLI, and reconciles with --apply --wait', async () => {
    const listed = await drover(['policies', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /web-nginx\s+\S+\s+role=web\s+nginx\.service\s+enabled\s+active/);

    await onHost(host(2), `systemctl stop ${UNIT}`);
    await driftSettlesOn([host(2).name]);
    const drifted = await drover(['policies', 'drift', 'web-nginx']);
    assert.equal(drifted.code, 0, drifted.stderr);
    assert.match(drifted.stdout, new RegExp(`${host(2).name}\\s+active state is inactive, policy wants active`));
    assert.match(drifted.stdout, /1 host\(s\) out of line/);

    const dry = await drover(['policies', 'reconcile', 'web-nginx', '--min-healthy', '0']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`policy web-nginx: start on ${host(2).name}`));
    assert.match(dry.stdout, /dry run: nothing started/);
    assert.equal(await nginxOn(host(2)), 'enabled/inactive', 'a dry run changes nothing');

    const applied = await drover(['policies', 'reconcile', 'web-nginx', '--min-healthy', '0', '--apply', '--wait']);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);
    assert.match(applied.stdout, /: succeeded/);
    assert.equal(await nginxOn(host(2)), 'enabled/active');
    await driftSettlesOn([]);
  });
});

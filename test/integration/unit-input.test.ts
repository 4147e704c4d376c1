import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Ajv from 'ajv';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, readFleetInventory, sshExec } from '../support/fleet';
import { actOnHost, onlyTask, waitForOperation } from '../support/operations';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

interface OpenApiDocument {
  components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
}

describe('unit names as systemctl reads them, and the snapshots tasks record (real systemd over SSH)', () => {
  let inventory: FleetInventory;
  let api: TestApi;
  let worker: TestWorker;
  let admin: DroverClient;
  let host: FleetInventory['hosts'][number];
  let openapi: OpenApiDocument;

  const mainPid = async (unit: string) => {
    const result = await sshExec(host, host.hostKeyFingerprint, `systemctl show -p MainPID --value ${unit}`);
    assert.equal(result.code, 0, result.stderr);
    return Number(result.stdout.trim());
  };

  /** A validator for a component of the committed openapi.json, as a client generated from it would read it. */
  function documented(component: string) {
    const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
    ajv.addSchema(openapi, 'openapi.json');
    const validate = ajv.getSchema(`openapi.json#/components/schemas/${component}`);
    assert.ok(validate, `openapi.json has the component ${component}`);
    return (value: unknown) => {
      assert.ok(validate(value), `${component}: ${JSON.stringify(validate.errors)}`);
    };
  }

  before(async () => {
    inventory = await readFleetInventory();
    host = inventory.hosts[0]!;
    openapi = JSON.parse(await readFile(path.resolve(__dirname, '../../../openapi.json'), 'utf8')) as OpenApiDocument;
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    worker = await startTestWorker(workerEnv(api.database.url, prefix));
    admin = await api.client();
    const imported = await admin.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: inventory.hosts.map((entry) => ({ ...entry, labels: { ...entry.labels, host: entry.name } })) },
    });
    assert.equal(imported.response.status, 200);
    const started = await sshExec(host, host.hostKeyFingerprint, 'systemctl enable --now nginx.service');
    assert.equal(started.code, 0, started.stderr);
  });

  after(async () => {
    await worker.close();
    await api.close();
  });

  it('restarts nginx.service for "unit":"nginx" and records nginx.service in the operation, task and audit trail', async () => {
    // Exactly this host, whatever other hosts share its labels.
    const selector = `host=${host.name}`;
    const pidBefore = await mainPid('nginx.service');
    const created = await admin.POST('/v1/operations', { body: { verb: 'restart', unit: 'nginx', selector } });
    assert.equal(created.response.status, 202, JSON.stringify(created.error));
    assert.equal(created.data!.unit, 'nginx.service');
    const operation = await waitForOperation(admin, created.data!.id);
    const task = onlyTask(operation);
    assert.equal(task.hostName, host.name);
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    assert.equal(task.unit, 'nginx.service');
    assert.equal(task.after?.id, 'nginx.service');
    assert.notEqual(await mainPid('nginx.service'), pidBefore, 'nginx.service restarted');

    const audit = await admin.GET('/v1/audit/events', { params: { query: { operationId: operation.id } } });
    assert.equal(audit.response.status, 200, JSON.stringify(audit.error));
    const events = audit.data!.items;
    assert.ok(events.length >= 2, 'the request and the task are audited');
    for (const event of events) assert.equal(event.unit, 'nginx.service', event.action);
    const byName = await admin.GET('/v1/audit/events', {
      params: { query: { unit: 'nginx', operationId: operation.id } },
    });
    assert.equal(byName.data?.items.length, events.length, 'the audit filter reads nginx as nginx.service too');
  });

  it("checks a token's unit glob against the name systemd acts on", async () => {
    const boundToNginx = await api.client({ scopes: ['operate'], unitGlob: 'nginx.service' });
    const task = onlyTask(await actOnHost(boundToNginx, host.name, { verb: 'status', unit: 'nginx' }));
    assert.equal(task.unit, 'nginx.service');
    assert.equal(task.state, 'succeeded', task.reason ?? '');

    const boundToProbe = await api.client({ scopes: ['operate'], unitGlob: 'drover-probe.service' });
    const refused = await boundToProbe.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: host.name } },
      body: { verb: 'restart', unit: 'nginx' },
    });
    assert.equal(refused.response.status, 403);
    assert.match(JSON.stringify(refused.error), /nginx\.service/);
  });

  it('returns task snapshots exactly as openapi.json documents them, camelCase field by field', async () => {
    const operation = await actOnHost(admin, host.name, { verb: 'restart', unit: 'nginx.service' });
    const task = onlyTask(operation);
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    assert.ok(task.before && task.after, 'a restart reads the unit before and after');

    documented('Operation')(operation);
    const taskSchema = openapi.components.schemas.Operation?.properties?.tasks as {
      items: { properties: Record<string, { properties?: Record<string, unknown> }> };
    };
    for (const snapshot of [task.before, task.after]) {
      const fields = Object.keys(taskSchema.items.properties.before?.properties ?? {});
      assert.deepEqual(fields.sort(), Object.keys(snapshot).sort(), 'every field returned is documented, and no other');
    }
    assert.ok(typeof task.after.mainPid === 'number' && task.after.mainPid > 0);
    assert.equal(task.after.activeState, 'active');

    const audit = await admin.GET('/v1/audit/events', { params: { query: { operationId: operation.id } } });
    assert.equal(audit.response.status, 200, JSON.stringify(audit.error));
    documented('AuditEventPage')(audit.data);
    assert.ok(audit.data!.items.some((event) => event.after?.mainPid === task.after?.mainPid));
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { actOnHost, onlyTask, waitForOperation } from '../support/operations';
import { assertProblem } from '../support/problems';
import { onHost, probeStarts, resetProbe, startRollout, waitForSettled } from '../support/rollouts';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const UNIT = 'drover-probe.service';
const DROP_IN = `/run/systemd/system/${UNIT}.d/interlock.conf`;

/**
 * Changes the unit's definition on disk without telling systemd: NeedDaemonReload=yes. systemd
 * notices changed files it loaded (not new drop-in directories), so the drop-in is loaded first.
 */
async function editWithoutReload(host: FleetHost, marker: string): Promise<void> {
  const write = (value: string) => `printf '[Service]\\nEnvironment=INTERLOCK=${value}\\n' > ${DROP_IN}`;
  await onHost(
    host,
    `mkdir -p /run/systemd/system/${UNIT}.d && ${write('loaded')} && systemctl daemon-reload && sleep 0.1 && ${write(marker)}`,
  );
  assert.equal(await onHost(host, `systemctl show -p NeedDaemonReload --value ${UNIT}`), 'yes');
}

/** The environment of the running unit, as systemd runs it now. */
async function environment(host: FleetHost): Promise<string> {
  return onHost(host, `systemctl show -p Environment --value ${UNIT}`);
}

describe('the daemon-reload interlock on booted hosts', () => {
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let hosts: FleetHost[];

  before(async () => {
    // The last hosts of the fleet: the ones other files use least.
    hosts = (await readFleetInventory()).hosts.slice(-2);
    const queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
    worker = await startTestWorker(workerEnv(api.database.url, queuePrefix));
    client = await api.client();
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, interlock: 'yes' } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
  });

  beforeEach(async () => {
    await Promise.all(hosts.map(resetProbe));
  });

  after(async () => {
    await Promise.all(hosts.map(resetProbe));
    await worker.close();
    await api.close();
  });

  it('refuses by default to restart a unit changed on disk, naming it and the changed file; nothing runs', async () => {
    const host = hosts[0]!;
    await editWithoutReload(host, 'refused');
    const startsBefore = (await probeStarts(host)).length;
    const operation = await actOnHost(client, host.name, { verb: 'restart', unit: UNIT });
    const task = onlyTask(operation);
    assert.equal(task.state, 'failed');
    assert.match(task.reason ?? '', new RegExp(`^not acted on: ${UNIT} changed on disk .*NeedDaemonReload=yes`));
    assert.ok(task.reason?.includes(DROP_IN), `the reason names the drop-in: ${task.reason}`);
    assert.equal((await probeStarts(host)).length, startsBefore, 'the unit was not restarted');
    assert.equal(await onHost(host, `systemctl show -p NeedDaemonReload --value ${UNIT}`), 'yes');
  });

  it("'auto' reloads first, so the restart runs the new definition, and records it in the task and audit event", async () => {
    const host = hosts[0]!;
    await editWithoutReload(host, 'auto');
    const operation = await actOnHost(client, host.name, { verb: 'restart', unit: UNIT, daemonReload: 'auto' });
    const task = onlyTask(operation);
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    assert.match(task.reason ?? '', /daemon-reload run first/);
    assert.equal(task.before?.needDaemonReload, true);
    assert.equal(task.after?.needDaemonReload, false);
    assert.match(await environment(host), /INTERLOCK=auto/);
    const events = await client.GET('/v1/audit/events', {
      params: { query: { action: 'unit.restart', host: host.name } },
    });
    const event = events.data!.items.find((item) => item.taskId === task.id);
    assert.deepEqual(
      [event?.parameters?.daemonReload, event?.parameters?.daemonReloaded],
      ['auto', true],
      JSON.stringify(event),
    );
  });

  it("'ignore' acts on the old definition and says so", async () => {
    const host = hosts[0]!;
    await editWithoutReload(host, 'ignored');
    const operation = await actOnHost(client, host.name, { verb: 'restart', unit: UNIT, daemonReload: 'ignore' });
    const task = onlyTask(operation);
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    assert.match(task.reason ?? '', /warning: .*'ignore': restart ran its old definition/);
    assert.doesNotMatch(await environment(host), /INTERLOCK=ignored/);
  });

  it("'auto' needs a token allowed to run daemon-reload on the hosts", async () => {
    const bounded = await api.client({
      name: `probe-only-${randomBytes(2).toString('hex')}`,
      scopes: ['operate'],
      unitGlob: 'drover-probe*',
    });
    const refused = await bounded.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: hosts[0]!.name } },
      body: { verb: 'restart', unit: UNIT, daemonReload: 'auto' },
    });
    assertProblem(refused, 403, 'forbidden');
    const plain = await bounded.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: hosts[0]!.name } },
      body: { verb: 'restart', unit: UNIT },
    });
    assert.equal(plain.response.status, 202, JSON.stringify(plain.error));
    assert.equal((await waitForOperation(client, plain.data!.id)).status, 'succeeded');
  });

  it('a rollout refuses a changed host by default and fails it; with auto it reloads and succeeds', async () => {
    await editWithoutReload(hosts[1]!, 'rollout');
    const refused = await startRollout(client, {
      unit: UNIT,
      selector: 'interlock=yes',
      batches: { size: 2 },
      healthGate: { minHealthyTimeMs: 200 },
    });
    const aborted = await waitForSettled(client, refused.id);
    assert.equal(aborted.status, 'aborted');
    const failed = aborted.hosts.find((host) => host.name === hosts[1]!.name)!;
    assert.equal(failed.state, 'failed');
    assert.match(failed.reason ?? '', /NeedDaemonReload=yes/);

    const auto = await startRollout(client, {
      unit: UNIT,
      selector: 'interlock=yes',
      batches: { size: 2 },
      healthGate: { minHealthyTimeMs: 200 },
      daemonReload: 'auto',
    });
    const done = await waitForSettled(client, auto.id);
    assert.equal(done.status, 'succeeded', done.reason ?? '');
    assert.match(await environment(hosts[1]!), /INTERLOCK=rollout/);
  });
});

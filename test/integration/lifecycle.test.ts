import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { FleetInventory, readFleetInventory, sshExec, unusedFleetAddress } from '../support/fleet';
import { setFrozen } from '../support/faults';
import { actOnHost, onlyTask, waitForOperation } from '../support/operations';
import { lastDownWindow, peakOverlap } from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

describe('lifecycle verbs on booted hosts (real systemd over SSH)', () => {
  let inventory: FleetInventory;
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let host: FleetInventory['hosts'][number];

  /** Runs a shell command on a fleet host as root (test tooling, not the product). */
  async function onHost(command: string, target = host): Promise<string> {
    const result = await sshExec(target, target.hostKeyFingerprint, command);
    assert.equal(result.code, 0, `${command}: ${result.stderr}`);
    return result.stdout.trim();
  }

  const mainPid = async (unit: string, target = host) =>
    Number(await onHost(`systemctl show -p MainPID --value ${unit}`, target));
  const lineCount = async (file: string, target = host) =>
    Number(await onHost(`cat ${file} 2>/dev/null | wc -l`, target));

  before(async () => {
    inventory = await readFleetInventory();
    host = inventory.hosts[0]!;
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    worker = await startTestWorker(workerEnv(api.database.url, prefix));
    client = await api.client({ scopes: ['operate'] });
    const admin = await api.client();
    const imported = await admin.POST('/v1/hosts/bulk-upsert', { body: { hosts: inventory.hosts } });
    assert.equal(imported.response.status, 200);
    await onHost('systemctl unmask drover-probe.service; systemctl enable --now drover-probe.service nginx.service');
  });

  after(async () => {
    await worker.close();
    await api.close();
  });

  it('restart gives drover-probe a new MainPID, starts it exactly once, and records before/after', async () => {
    const pidBefore = await mainPid('drover-probe.service');
    const startsBefore = await lineCount('/var/lib/drover-probe/starts');
    const task = onlyTask(await actOnHost(client, host.name, { verb: 'restart', unit: 'drover-probe.service' }));
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    const pidAfter = await mainPid('drover-probe.service');
    assert.notEqual(pidAfter, pidBefore);
    assert.equal(await lineCount('/var/lib/drover-probe/starts'), startsBefore + 1);
    assert.equal(task.before?.mainPid, pidBefore);
    assert.equal(task.after?.mainPid, pidAfter);
    assert.equal(task.after?.activeState, 'active');
  });

  for (const unit of ['nginx.service', 'drover-probe.service']) {
    it(`runs every verb on ${unit} and each reaches its state on the host`, async () => {
      const act = async (verb: Parameters<typeof actOnHost>[2]['verb']) => {
        const task = onlyTask(await actOnHost(client, host.name, { verb, unit }));
        assert.equal(task.state, 'succeeded', `${verb} ${unit}: ${task.reason ?? ''}`);
        return task;
      };
      const state = async () => onHost(`systemctl is-active ${unit} || true`);
      const enabled = async () => onHost(`systemctl is-enabled ${unit} || true`);

      await act('stop');
      assert.equal(await state(), 'inactive');
      await act('try-restart');
      assert.equal(await state(), 'inactive', 'try-restart leaves a stopped unit stopped');
      await act('start');
      assert.equal(await state(), 'active');
      let pid = await mainPid(unit);
      await act('restart');
      assert.notEqual(await mainPid(unit), pid, 'restart: new MainPID');
      pid = await mainPid(unit);
      await act('try-restart');
      assert.notEqual(await mainPid(unit), pid, 'try-restart restarts a running unit');
      pid = await mainPid(unit);
      await act('reload');
      assert.equal(await mainPid(unit), pid, 'reload: same MainPID');
      await act('reload-or-restart');
      assert.equal(await mainPid(unit), pid, 'reload-or-restart reloads a unit that can reload');
      await act('disable');
      assert.equal(await enabled(), 'disabled');
      await act('enable');
      assert.equal(await enabled(), 'enabled');
      await act('mask');
      assert.equal(await enabled(), 'masked');
      const refused = await sshExec(host, host.hostKeyFingerprint, `systemctl start ${unit}`);
      assert.notEqual(refused.code, 0, 'a masked unit refuses to start');
      await act('unmask');
      assert.equal(await enabled(), 'enabled');
      await act('start');
      assert.equal(await state(), 'active');
      const status = await act('status');
      assert.match(status.output ?? '', new RegExp(unit.replace('.', '\\.')));
      const reloaded = await act('daemon-reload');
      assert.equal(reloaded.after?.needDaemonReload, false);
    });
  }

  it('reload keeps the MainPID and runs ExecReload', async () => {
    const pidBefore = await mainPid('drover-probe.service');
    const reloadsBefore = await lineCount('/var/lib/drover-probe/reloads');
    const task = onlyTask(await actOnHost(client, host.name, { verb: 'reload', unit: 'drover-probe.service' }));
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    assert.equal(await mainPid('drover-probe.service'), pidBefore);
    assert.equal(await lineCount('/var/lib/drover-probe/reloads'), reloadsBefore + 1);
  });

  it('daemon-reload clears NeedDaemonReload after a unit file changed', async () => {
    await onHost("echo '# edited by a drover test' >> /lib/systemd/system/drover-probe.service");
    try {
      assert.equal(await onHost('systemctl show -p NeedDaemonReload --value drover-probe.service'), 'yes');
      const task = onlyTask(
        await actOnHost(client, host.name, { verb: 'daemon-reload', unit: 'drover-probe.service' }),
      );
      assert.equal(task.state, 'succeeded', task.reason ?? '');
      assert.equal(task.before?.needDaemonReload, true);
      assert.equal(task.after?.needDaemonReload, false);
      assert.equal(await onHost('systemctl show -p NeedDaemonReload --value drover-probe.service'), 'no');
    } finally {
      await onHost(
        "sed -i '/# edited by a drover test/d' /lib/systemd/system/drover-probe.service && systemctl daemon-reload",
      );
    }
  });

  it('fails a task whose command exits 0 but whose unit does not reach the promised state', async () => {
    await onHost(
      // systemctl start succeeds, but the unit's condition fails: it never becomes active.
      `printf '[Unit]\\nConditionPathExists=/nonexistent\\n[Service]\\nExecStart=/bin/sleep 60\\n' > /run/systemd/system/drover-crashy.service && systemctl daemon-reload`,
    );
    try {
      const task = onlyTask(await actOnHost(client, host.name, { verb: 'start', unit: 'drover-crashy.service' }));
      assert.equal(task.state, 'failed');
      assert.match(task.reason ?? '', /active/);
      assert.equal(task.exitCode, 0, 'systemctl itself said yes');
    } finally {
      await onHost(
        'rm -f /run/systemd/system/drover-crashy.service && systemctl daemon-reload && systemctl reset-failed',
      );
    }
  });

  it('acts across a selector, a limited number of hosts at a time, and records one audit event per host action', async () => {
    const created = await client.POST('/v1/operations', {
      body: { verb: 'restart', unit: 'drover-probe.service', selector: 'fleet=nspawn', concurrency: 2 },
    });
    assert.equal(created.response.status, 202, JSON.stringify(created.error));
    const operation = await waitForOperation(client, created.data!.id);
    assert.equal(operation.status, 'succeeded');
    assert.equal(operation.tasks.length, inventory.hosts.length);
    // The hosts' own clock (shared by the containers): never more than 2 units restarting at once.
    const downs = await Promise.all(inventory.hosts.map((target) => lastDownWindow(target, 'drover-probe.service')));
    const peak = peakOverlap(downs);
    assert.ok(peak <= 2, `${peak} hosts restarted at once`);
    const events = await query<{
      action: string;
      result: string;
      host_name: string;
      before: unknown;
      after: unknown;
      actor_name: string;
    }>(
      api.database.url,
      `SELECT action, result, host_name, before, after, actor_name FROM audit_events WHERE operation_id = $1 AND task_id IS NOT NULL`,
      [operation.id],
    );
    assert.equal(events.length, inventory.hosts.length);
    for (const event of events) {
      assert.equal(event.action, 'unit.restart');
      assert.equal(event.result, 'succeeded');
      assert.ok(event.before && event.after);
    }
  });

  it('serializes two concurrent requests on one unit, and rejects the second when asked to', async () => {
    const startsBefore = await lineCount('/var/lib/drover-probe/starts');
    const [first, second] = await Promise.all([
      client.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: host.name } },
        body: { verb: 'restart', unit: 'drover-probe.service' },
      }),
      client.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: host.name } },
        body: { verb: 'restart', unit: 'drover-probe.service' },
      }),
    ]);
    const [a, b] = await Promise.all([
      waitForOperation(client, first.data!.id),
      waitForOperation(client, second.data!.id),
    ]);
    const [taskA, taskB] = [onlyTask(a), onlyTask(b)];
    assert.equal(taskA.state, 'succeeded');
    assert.equal(taskB.state, 'succeeded');
    // Serialised as the host saw it: one task read the unit before acting only once the other's
    // restart was done (its "before" is the other's "after"), and systemd started it twice.
    const [earlier, later] = taskB.before?.mainPid === taskA.after?.mainPid ? [taskA, taskB] : [taskB, taskA];
    assert.equal(later.before?.mainPid, earlier.after?.mainPid, 'the second read the state the first left');
    assert.notEqual(earlier.before?.mainPid, earlier.after?.mainPid);
    assert.notEqual(later.before?.mainPid, later.after?.mainPid);
    assert.equal(await lineCount('/var/lib/drover-probe/starts'), startsBefore + 2);

    await onHost(
      'mkdir -p /run/systemd/system/drover-probe.service.d && printf "[Service]\\nExecStopPost=/bin/sleep 3\\n" > /run/systemd/system/drover-probe.service.d/slow.conf && systemctl daemon-reload',
    );
    try {
      const slow = await client.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: host.name } },
        body: { verb: 'restart', unit: 'drover-probe.service' },
      });
      // The slow restart holds the unit: systemd is running its stop.
      await waitUntil(
        async () =>
          (await onHost('systemctl show -p ActiveState --value drover-probe.service')).trim() === 'deactivating',
        'the slow restart began',
        20_000,
      );
      const rejected = onlyTask(
        await actOnHost(client, host.name, { verb: 'restart', unit: 'drover-probe.service', onConflict: 'reject' }),
      );
      assert.equal(rejected.state, 'failed');
      assert.match(rejected.reason ?? '', /another task/);
      assert.equal(onlyTask(await waitForOperation(client, slow.data!.id)).state, 'succeeded');
    } finally {
      await onHost('rm -rf /run/systemd/system/drover-probe.service.d && systemctl daemon-reload');
    }
  });

  it('refuses a host whose key does not match the pinned one, and runs nothing there', async () => {
    const admin = await api.client();
    const impostor = inventory.hosts[1]!;
    await admin.POST('/v1/hosts', {
      body: {
        name: 'impostor',
        address: impostor.address,
        port: 22,
        hostKeyFingerprint: host.hostKeyFingerprint,
        labels: {},
      },
    });
    const startsBefore = await lineCount('/var/lib/drover-probe/starts', impostor);
    const task = onlyTask(await actOnHost(client, 'impostor', { verb: 'restart', unit: 'drover-probe.service' }));
    assert.equal(task.state, 'failed');
    assert.match(task.reason ?? '', /host key/i);
    assert.equal(await lineCount('/var/lib/drover-probe/starts', impostor), startsBefore);
  });

  it('marks a host that does not answer unreachable within the connect timeout', async () => {
    const admin = await api.client();
    await admin.POST('/v1/hosts', {
      body: {
        name: 'ghost',
        address: await unusedFleetAddress(),
        hostKeyFingerprint: host.hostKeyFingerprint,
        labels: {},
      },
    });
    const started = Date.now();
    const task = onlyTask(await actOnHost(client, 'ghost', { verb: 'restart', unit: 'nginx.service' }));
    assert.equal(task.state, 'unreachable', task.reason ?? '');
    assert.ok(Date.now() - started < 15_000);
    const ghost = await admin.GET('/v1/hosts/{name}', { params: { path: { name: 'ghost' } } });
    assert.equal(ghost.data?.status, 'unreachable');
  });

  it('ends a task on a host that hangs mid-command as timed_out or unreachable, within the timeouts', async () => {
    const frozen = inventory.hosts[1]!;
    const started = Date.now();
    const created = await client.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: frozen.name } },
      body: { verb: 'restart', unit: 'drover-probe.service', timeoutMs: 4_000 },
    });
    assert.equal(created.response.status, 202);
    await setFrozen(frozen, true);
    try {
      const task = onlyTask(await waitForOperation(client, created.data!.id, 60_000));
      assert.ok(['timed_out', 'unreachable'].includes(task.state), `${task.state}: ${task.reason ?? ''}`);
      // Connect (3 s) + command timeout (4 s) + settle, with room for a busy machine.
      assert.ok(Date.now() - started < 30_000, `ended after ${Date.now() - started} ms`);
    } finally {
      await setFrozen(frozen, false);
    }
  });

  it('rejects unsafe unit names, unknown verbs and empty selectors with 4xx, queueing nothing', async () => {
    const before = await client.GET('/v1/operations', { params: { query: { limit: 1000 } } });
    for (const unit of ['nginx; reboot', '$(id)', '../x', '-H host', 'nginx.service\n']) {
      const result = await client.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: host.name } },
        body: { verb: 'restart', unit },
      });
      assert.equal(result.response.status, 400, unit);
      assert.ok(result.error?.errors.some((error) => error.field === 'unit'));
    }
    const verb = await client.POST('/v1/operations', {
      body: { verb: 'reboot' as 'restart', unit: 'nginx.service', selector: 'fleet=nspawn' },
    });
    assert.equal(verb.response.status, 400);
    assert.ok(verb.error?.errors.some((error) => error.field === 'verb'));
    const nothing = await client.POST('/v1/operations', {
      body: { verb: 'restart', unit: 'nginx.service', selector: 'role=nobody' },
    });
    assert.equal(nothing.response.status, 422);
    assert.equal(nothing.error?.code, 'selector_matches_nothing');
    const afterList = await client.GET('/v1/operations', { params: { query: { limit: 1000 } } });
    assert.equal(afterList.data?.items.length, before.data?.items.length);
  });

  it('discovers every unit of a host on demand', async () => {
    const queued = await client.POST('/v1/hosts/{name}/discover', { params: { path: { name: host.name } } });
    assert.equal(queued.response.status, 202);
    const deadline = Date.now() + 20_000;
    let names: string[] = [];
    while (Date.now() < deadline) {
      const units = await client.GET('/v1/hosts/{name}/units', {
        params: { path: { name: host.name }, query: { limit: 1000 } },
      });
      names = units.data?.items.map((unit) => unit.name) ?? [];
      if (names.includes('nginx.service') && names.length > 50) break;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    assert.ok(names.includes('nginx.service'));
    assert.ok(names.includes('drover-probe.service'));
    assert.ok(names.includes('systemd-journald.service'));
    const nginx = await client.GET('/v1/units', {
      params: { query: { name: 'nginx.service', selector: 'fleet=nspawn' } },
    });
    assert.ok(nginx.data!.items.some((unit) => unit.hostName === host.name && unit.activeState === 'active'));
  });

  it('reuses one SSH connection per host across many tasks', async () => {
    const accepted = async () =>
      Number(await onHost("journalctl -u ssh --no-pager -o cat | grep -c 'Accepted publickey for root' || true"));
    const before = await accepted();
    const opened = worker.ssh.stats().connectionsOpened;
    for (let index = 0; index < 5; index += 1) {
      assert.equal(
        onlyTask(await actOnHost(client, host.name, { verb: 'status', unit: 'nginx.service' })).state,
        'succeeded',
      );
    }
    assert.ok(worker.ssh.stats().connectionsOpened - opened <= 1, 'at most one new connection for five tasks');
    // The test's own inspection connections count too: one per accepted() call.
    assert.ok((await accepted()) - before <= 2, 'the host saw at most one connection from the worker');
  });
});

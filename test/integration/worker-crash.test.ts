import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, readFleetInventory, sshExec } from '../support/fleet';
import { onlyTask, waitForOperation } from '../support/operations';
import { startNodeProcess } from '../support/process';
import { startTestWorker, workerEnv } from '../support/worker';

const WORKER = path.resolve(__dirname, '../../src/worker.js');

describe('a worker killed with SIGKILL in the middle of a restart', () => {
  let api: TestApi;
  let host: FleetInventory['hosts'][number];
  let env: Record<string, string>;

  async function onHost(command: string): Promise<string> {
    const result = await sshExec(host, host.hostKeyFingerprint, command);
    assert.equal(result.code, 0, `${command}: ${result.stderr}`);
    return result.stdout.trim();
  }

  before(async () => {
    const inventory = await readFleetInventory();
    host = inventory.hosts[inventory.hosts.length - 1]!;
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    env = workerEnv(api.database.url, prefix);
    const admin = await api.client();
    await admin.POST('/v1/hosts/bulk-upsert', { body: { hosts: [host] } });
    // A slow stop, so the restart is still in progress on the host when the worker dies.
    await onHost(
      'systemctl unmask drover-probe.service; mkdir -p /run/systemd/system/drover-probe.service.d && printf "[Service]\\nExecStopPost=/bin/sleep 4\\n" > /run/systemd/system/drover-probe.service.d/slow.conf && systemctl daemon-reload && systemctl start drover-probe.service',
    );
  });

  after(async () => {
    await onHost('rm -rf /run/systemd/system/drover-probe.service.d && systemctl daemon-reload');
    await api.close();
  });

  it('is finished by another worker, and the host restarts the unit exactly once', async () => {
    const startsBefore = Number(await onHost('wc -l < /var/lib/drover-probe/starts'));
    const pidBefore = Number(await onHost('systemctl show -p MainPID --value drover-probe.service'));
    const doomed = startNodeProcess(WORKER, { ...env, LOG_LEVEL: 'info' });
    await doomed.waitForLine((line) => line.includes('drover worker connected'));

    const client = await api.client({ scopes: ['operate'] });
    const created = await client.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: host.name } },
      body: { verb: 'restart', unit: 'drover-probe.service' },
    });
    assert.equal(created.response.status, 202);
    const id = created.data!.id;

    // Wait until the restart is underway on the host (the unit is stopping), then kill the worker.
    const deadline = Date.now() + 20_000;
    while ((await onHost('systemctl show -p ActiveState --value drover-probe.service')) === 'active') {
      assert.ok(Date.now() < deadline, 'the restart never began');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const killed = await doomed.stop('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    const midway = await client.GET('/v1/operations/{id}', { params: { path: { id } } });
    assert.equal(onlyTask(midway.data!).state, 'running', 'the task was in flight when its worker died');

    const rescuer = await startTestWorker(env);
    try {
      const task = onlyTask(await waitForOperation(client, id, 60_000));
      assert.equal(task.state, 'succeeded', task.reason ?? '');
      assert.equal(task.attempts, 2, 'a second attempt finished the task');
      assert.match(task.reason ?? '', /earlier attempt/);
      assert.equal(
        Number(await onHost('wc -l < /var/lib/drover-probe/starts')),
        startsBefore + 1,
        'started exactly once',
      );
      assert.notEqual(Number(await onHost('systemctl show -p MainPID --value drover-probe.service')), pidBefore);
    } finally {
      await rescuer.close();
    }
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { QueueName } from '@drover/protocol';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { testEnv } from '../support/env';
import { FleetInventory, readFleetInventory, sshExec } from '../support/fleet';
import { actOnHost } from '../support/operations';
import { waitUntil } from '../support/wait';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

/** Bound to drover-probe: systemd stops it when drover-probe stops. */
const FOLLOWER = `[Unit]
Description=drover test: follows drover-probe
BindsTo=drover-probe.service
After=drover-probe.service
[Service]
ExecStart=/bin/sleep infinity
`;
/** Enabling it enables drover-also.service too (Also=): another unit's enablement changes. */
const EXTRA = `[Unit]
Description=drover test: a unit file added after the first discovery
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
Also=drover-also.service
`;
const ALSO = `[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
`;
const TEST_UNITS = ['drover-follower.service', 'drover-extra.service', 'drover-also.service', 'drover-late.service'];

describe('the look at a host after an action', () => {
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let host: FleetInventory['hosts'][number];
  let background: Queue;

  /** Runs a shell command on the host as root (test tooling, not the product). */
  async function onHost(command: string): Promise<void> {
    const result = await sshExec(host, host.hostKeyFingerprint, command);
    assert.equal(result.code, 0, `${command}: ${result.stderr}`);
  }

  const writeUnit = (name: string, text: string) => onHost(`cat > /etc/systemd/system/${name} <<'EOF'\n${text}EOF`);

  async function storedUnits(): Promise<Map<string, { activeState: string; unitFileState: string | null }>> {
    const units = await client.GET('/v1/hosts/{name}/units', {
      params: { path: { name: host.name }, query: { limit: 1000 } },
    });
    assert.equal(units.response.status, 200);
    return new Map(units.data!.items.map((unit) => [unit.name, unit]));
  }

  /** Until every discovery queued so far has run (one more than `completedBefore` did). */
  async function discoveriesRan(completedBefore: number): Promise<void> {
    await waitUntil(async () => {
      const counts = await background.getJobCounts('completed', 'active', 'waiting', 'delayed');
      return counts.completed! > completedBefore && counts.active! + counts.waiting! + counts.delayed! === 0;
    }, 'the discovery after the action ran');
  }

  async function actAndLook(verb: 'stop' | 'enable' | 'disable', unit: string): Promise<void> {
    const completed = (await background.getJobCounts('completed')).completed!;
    const operation = await actOnHost(client, host.name, { verb, unit });
    assert.equal(operation.status, 'succeeded', JSON.stringify(operation.tasks));
    await discoveriesRan(completed);
  }

  before(async () => {
    host = (await readFleetInventory()).hosts[0]!;
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    worker = await startTestWorker({
      ...workerEnv(api.database.url, prefix),
      DISCOVERY_INTERVAL_MS: '0',
      FULL_DISCOVERY_MIN_GAP_MS: '600000',
    });
    client = await api.client();
    background = new Queue(QueueName.Background, { connection: { url: testEnv.redisUrl }, prefix });
    const imported = await client.POST('/v1/hosts/bulk-upsert', { body: { hosts: [host] } });
    assert.equal(imported.response.status, 200);
    await writeUnit('drover-follower.service', FOLLOWER);
    await onHost('systemctl daemon-reload && systemctl start drover-probe.service drover-follower.service');
    const completed = (await background.getJobCounts('completed')).completed!;
    const queued = await client.POST('/v1/hosts/{name}/discover', { params: { path: { name: host.name } } });
    assert.equal(queued.response.status, 202);
    await discoveriesRan(completed);
    assert.equal((await storedUnits()).get('drover-follower.service')?.activeState, 'active');
  });

  after(async () => {
    await onHost(
      `systemctl disable --now ${TEST_UNITS.join(' ')} 2>/dev/null; ` +
        `rm -f ${TEST_UNITS.map((name) => `/etc/systemd/system/${name}`).join(' ')}; systemctl daemon-reload`,
    );
    await background.obliterate({ force: true });
    await background.close();
    await worker.close();
    await api.close();
  });

  it('records the units the action changed, without listing every unit file', async () => {
    await writeUnit('drover-extra.service', EXTRA);
    await writeUnit('drover-also.service', ALSO);
    await actAndLook('stop', 'drover-probe.service');
    const units = await storedUnits();
    assert.equal(units.get('drover-probe.service')?.activeState, 'inactive');
    assert.equal(units.get('drover-follower.service')?.activeState, 'inactive', 'the unit bound to the stopped one');
    // A full listing would have found the unit files written since the last one.
    assert.equal(units.has('drover-extra.service'), false);
  });

  it('lists every unit after enable (Also= enables another unit), but at most once per gap', async () => {
    await actAndLook('enable', 'drover-extra.service');
    let units = await storedUnits();
    assert.equal(units.get('drover-extra.service')?.unitFileState, 'enabled');
    assert.equal(units.get('drover-also.service')?.unitFileState, 'enabled');

    await writeUnit('drover-late.service', ALSO);
    await actAndLook('disable', 'drover-extra.service');
    units = await storedUnits();
    assert.equal(units.get('drover-extra.service')?.unitFileState, 'disabled');
    // Within FULL_DISCOVERY_MIN_GAP_MS of the last full listing: no other one.
    assert.equal(units.has('drover-late.service'), false);

    const completed = (await background.getJobCounts('completed')).completed!;
    const queued = await client.POST('/v1/hosts/{name}/discover', { params: { path: { name: host.name } } });
    assert.equal(queued.response.status, 202);
    await discoveriesRan(completed);
    units = await storedUnits();
    assert.equal(units.get('drover-late.service')?.unitFileState, 'disabled');
    assert.equal(units.get('drover-also.service')?.unitFileState, 'disabled');
  });
});

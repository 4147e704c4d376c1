import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { actOnHost, onlyTask, waitForOperation } from '../support/operations';
import { onHost } from '../support/rollouts';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

/** A second sshd on a fleet host, with host keys of its own that a test may replace at will. */
const PORT = 2222;
const DIR = '/run/drover-rekey';

/** Starts (or restarts) the spare sshd with a fresh host key; returns that key's fingerprint. */
async function spareSshdWithNewKey(host: FleetHost): Promise<string> {
  return onHost(
    host,
    [
      `mkdir -p ${DIR}`,
      `[ -f ${DIR}/pid ] && kill "$(cat ${DIR}/pid)" 2>/dev/null; rm -f ${DIR}/pid ${DIR}/key ${DIR}/key.pub`,
      `ssh-keygen -q -t ed25519 -N '' -f ${DIR}/key`,
      `/usr/sbin/sshd -p ${PORT} -h ${DIR}/key -o PidFile=${DIR}/pid`,
      `ssh-keygen -lf ${DIR}/key.pub | cut -d' ' -f2`,
    ].join(' && '),
  );
}

/** Host keys: pinned keys that change under an open connection, and the first key trusted once. */
describe('host keys through the API on booted hosts', () => {
  let api: TestApi;
  let worker: TestWorker;
  let admin: DroverClient;
  let host: FleetHost;

  before(async () => {
    host = (await readFleetInventory()).hosts[0]!;
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    worker = await startTestWorker(workerEnv(api.database.url, prefix));
    admin = await api.client();
  });

  after(async () => {
    await onHost(host, `[ -f ${DIR}/pid ] && kill "$(cat ${DIR}/pid)"; rm -rf ${DIR}`);
    await worker.close();
    await api.close();
  });

  it('refuses a host whose key changed under a pooled connection once it reconnects, running nothing', async () => {
    const fingerprint = await spareSshdWithNewKey(host);
    const created = await admin.POST('/v1/hosts', {
      body: { name: 'rekeyed', address: host.address, port: PORT, hostKeyFingerprint: fingerprint, labels: {} },
    });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    // The worker connects with the pinned key and keeps the connection.
    const first = onlyTask(await actOnHost(admin, 'rekeyed', { verb: 'status', unit: 'nginx.service' }));
    assert.equal(first.state, 'succeeded', first.reason ?? '');

    // The open session drops and the host comes back with another key (a reinstall, or someone in
    // the middle): the sessions are the spare daemon's children, which outlive the daemon itself.
    await onHost(host, `pkill -KILL -P "$(cat ${DIR}/pid)"`);
    const replaced = await spareSshdWithNewKey(host);
    assert.notEqual(replaced, fingerprint);

    const second = onlyTask(await actOnHost(admin, 'rekeyed', { verb: 'stop', unit: 'drover-probe.service' }));
    assert.equal(second.state, 'failed');
    assert.match(second.reason ?? '', /host key/i);
    assert.match(second.reason ?? '', new RegExp(replaced.replace(/[+/]/g, '\\$&')), 'names the key it was shown');
    assert.equal(await onHost(host, 'systemctl is-active drover-probe.service'), 'active', 'nothing ran');
    const stored = await admin.GET('/v1/hosts/{name}', { params: { path: { name: 'rekeyed' } } });
    assert.equal(stored.data?.hostKeyFingerprint, fingerprint, 'the pinned key stays as it was');
  });

  it('pins a first key once when two trust-on-first-use operations race', async () => {
    const created = await admin.POST('/v1/hosts', {
      body: { name: 'unpinned', address: host.address, port: 22, labels: { tofu: 'race' } },
    });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    const body = { verb: 'status' as const, unit: 'nginx.service', selector: 'tofu=race', trustOnFirstUse: true };
    const [a, b] = await Promise.all([admin.POST('/v1/operations', { body }), admin.POST('/v1/operations', { body })]);
    assert.equal(a.response.status, 202, JSON.stringify(a.error));
    assert.equal(b.response.status, 202, JSON.stringify(b.error));
    const finished = await Promise.all([waitForOperation(admin, a.data!.id), waitForOperation(admin, b.data!.id)]);
    for (const operation of finished)
      assert.equal(onlyTask(operation).state, 'succeeded', onlyTask(operation).reason ?? '');

    const stored = await admin.GET('/v1/hosts/{name}', { params: { path: { name: 'unpinned' } } });
    assert.equal(stored.data?.hostKeyFingerprint, host.hostKeyFingerprint, 'the key the host really has');
    const events = await query<{ count: string }>(
      api.database.url,
      `SELECT count(*) FROM audit_events WHERE action = 'host.trust_first_key' AND host_name = 'unpinned'`,
    );
    assert.equal(Number(events[0]?.count), 1, 'one pin, one event');
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestApi, TestApi } from '../support/api';
import { readFleetInventory } from '../support/fleet';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

describe('periodic discovery', () => {
  let api: TestApi;
  let worker: TestWorker;

  before(async () => {
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    const inventory = await readFleetInventory();
    await (await api.client()).POST('/v1/hosts/bulk-upsert', { body: { hosts: inventory.hosts } });
    worker = await startTestWorker({ ...workerEnv(api.database.url, prefix), DISCOVERY_INTERVAL_MS: '1000' });
  });

  after(async () => {
    await worker.close();
    await api.close();
  });

  it("lists every host's units on its own, with nobody asking", async () => {
    const client = await api.client({ scopes: ['read'] });
    const inventory = await readFleetInventory();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const nginx = await client.GET('/v1/units', {
        params: { query: { name: 'nginx.service', selector: 'fleet=nspawn' } },
      });
      const hosts = new Set(nginx.data?.items.map((unit) => unit.hostName));
      if (inventory.hosts.every((host) => hosts.has(host.name))) break;
      assert.ok(Date.now() < deadline, `discovered so far: ${[...hosts].join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const hosts = await client.GET('/v1/hosts', { params: { query: { selector: 'fleet=nspawn' } } });
    assert.ok(hosts.data!.items.every((host) => host.status === 'reachable' && host.lastSeenAt !== null));
  });
});

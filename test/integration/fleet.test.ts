import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Schemas } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, fleetInventoryPath, readFleetInventory, sshExec } from '../support/fleet';

const run = promisify(execFile);
const CLI = path.resolve(__dirname, '../../src/cli/main.js');

describe('the booted nspawn fleet', () => {
  let inventory: FleetInventory;
  let api: TestApi;

  before(async () => {
    inventory = await readFleetInventory();
    api = await startTestApi();
  });
  after(() => api.close());

  it('has booted hosts with real systemd that answer SSH with their own pinned host keys', async () => {
    assert.ok(inventory.hosts.length >= 3, 'the suite boots at least 3 hosts');
    const fingerprints = new Set(inventory.hosts.map((host) => host.hostKeyFingerprint));
    assert.equal(fingerprints.size, inventory.hosts.length, 'every host has its own host key');
    await Promise.all(
      inventory.hosts.map(async (host) => {
        const result = await sshExec(
          host,
          host.hostKeyFingerprint,
          'hostname; systemctl is-system-running; systemctl show -p MainPID --value drover-probe.service; ps -p 1 -o comm=',
        );
        const [hostname, systemState, probePid, pid1] = result.stdout.trim().split('\n');
        assert.equal(result.code, 0, result.stderr);
        assert.equal(hostname, host.name);
        assert.equal(systemState, 'running');
        assert.ok(Number(probePid) > 0, 'the probe unit runs');
        assert.equal(pid1, 'systemd');
      }),
    );
  });

  it('refuses a host whose key does not match the pinned fingerprint, running nothing', async () => {
    const [first, second] = inventory.hosts;
    assert.ok(first && second);
    await assert.rejects(
      sshExec(first, second.hostKeyFingerprint, 'touch /tmp/should-not-exist'),
      (error: Error & { presentedFingerprint?: string }) => {
        assert.equal(error.presentedFingerprint, first.hostKeyFingerprint);
        return true;
      },
    );
    const check = await sshExec(first, first.hostKeyFingerprint, 'test -e /tmp/should-not-exist; echo $?');
    assert.equal(check.stdout.trim(), '1');
  });

  it('round-trips the fleet inventory through the CLI and the bulk API, idempotently', async () => {
    const env = { ...process.env, DROVER_URL: api.baseUrl, DROVER_TOKEN: await api.token() };
    const first = await run(process.execPath, [CLI, 'hosts', 'import', fleetInventoryPath()], { env });
    const count = inventory.hosts.length;
    assert.match(first.stdout, new RegExp(`imported ${count} host\\(s\\): ${count} created, 0 updated, 0 unchanged`));
    const again = await run(process.execPath, [CLI, 'hosts', 'import', fleetInventoryPath()], { env });
    assert.match(again.stdout, new RegExp(`0 created, 0 updated, ${count} unchanged`));

    const listed = await run(process.execPath, [CLI, 'hosts', 'list', '-l', 'fleet=nspawn', '--json'], { env });
    const hosts = JSON.parse(listed.stdout) as Schemas['Host'][];
    const byName = new Map(hosts.map((host) => [host.name, host]));
    assert.equal(hosts.length, count);
    for (const expected of inventory.hosts) {
      const host = byName.get(expected.name);
      assert.ok(host, `${expected.name} listed`);
      assert.equal(host.address, expected.address);
      assert.equal(host.port, expected.port);
      assert.equal(host.sshUser, expected.sshUser);
      assert.equal(host.hostKeyFingerprint, expected.hostKeyFingerprint);
      assert.deepEqual(host.labels, expected.labels);
    }

    const table = await run(process.execPath, [CLI, 'hosts', 'list', '-l', 'fleet=nspawn'], { env });
    assert.match(table.stdout, /^NAME\s+ADDRESS\s+PORT/);
    assert.match(table.stdout, new RegExp(`${count} host\\(s\\)`));
  });

  it('exits 1 with the problem text when the API refuses, and 64 on a usage error', async () => {
    const env = { ...process.env, DROVER_URL: api.baseUrl, DROVER_TOKEN: '' };
    await assert.rejects(
      run(process.execPath, [CLI, 'hosts', 'list'], { env }),
      (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 1);
        assert.match(error.stderr, /Authentication required \(401\)/);
        return true;
      },
    );
    await assert.rejects(run(process.execPath, [CLI, 'hosts', 'frobnicate'], { env }), (error: { code: number }) => {
      assert.equal(error.code, 64);
      return true;
    });
  });
});

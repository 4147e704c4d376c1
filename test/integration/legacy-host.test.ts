import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { testEnv } from '../support/env';
import type { FleetInventory } from '../support/fleet';
import { actOnHost, onlyTask } from '../support/operations';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

const run = promisify(execFile);
const FLEET = path.resolve(__dirname, '../../../test/fleet/fleet.sh');
const SCRIPT = '/etc/init.d/drover-legacy-test';
const MARKER = '/run/drover-legacy-test.running';

/**
 * Hosts without systemd: the scale fleet's hosts are plain sshd processes on this machine, whose
 * PID 1 is not systemd, so drover must fall back to service(8) and an init script.
 */
describe('a host without systemd', () => {
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let host: string;

  before(async () => {
    await run('bash', [FLEET, 'scale-up', '--hosts', '1']);
    const inventory = JSON.parse(
      await readFile(path.join(testEnv.fleetState, 'scale-inventory.json'), 'utf8'),
    ) as FleetInventory;
    host = inventory.hosts[0]!.name;
    await writeFile(
      SCRIPT,
      `#!/bin/sh\ncase "$1" in\n  start) touch ${MARKER} ;;\n  stop) rm -f ${MARKER} ;;\n  restart|reload) touch ${MARKER} ;;\n  status) test -e ${MARKER} || exit 3 ;;\n  *) exit 2 ;;\nesac\n`,
    );
    await chmod(SCRIPT, 0o755);
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    worker = await startTestWorker(workerEnv(api.database.url, prefix));
    await (await api.client()).POST('/v1/hosts/bulk-upsert', { body: { hosts: inventory.hosts } });
    client = await api.client({ scopes: ['operate'] });
  });

  after(async () => {
    await worker.close();
    await api.close();
    await rm(SCRIPT, { force: true });
    await rm(MARKER, { force: true });
    await run('bash', [FLEET, 'scale-down']);
  });

  it('starts, checks and stops a service through its init script', async () => {
    const started = onlyTask(await actOnHost(client, host, { verb: 'start', unit: 'drover-legacy-test.service' }));
    assert.equal(started.state, 'succeeded', started.reason ?? '');
    assert.match(started.reason ?? '', /without systemd/);
    assert.ok(existsSync(MARKER));
    assert.equal(
      onlyTask(await actOnHost(client, host, { verb: 'status', unit: 'drover-legacy-test.service' })).state,
      'succeeded',
    );
    assert.equal(
      onlyTask(await actOnHost(client, host, { verb: 'stop', unit: 'drover-legacy-test.service' })).state,
      'succeeded',
    );
    assert.ok(!existsSync(MARKER));
  });

  it('says clearly which verbs need systemd', async () => {
    for (const verb of ['enable', 'mask'] as const) {
      const task = onlyTask(await actOnHost(client, host, { verb, unit: 'drover-legacy-test.service' }));
      assert.equal(task.state, 'failed');
      assert.match(task.reason ?? '', new RegExp(`${verb}.*systemd`));
    }
  });
});

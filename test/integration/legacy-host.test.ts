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
import { actOnHost, onlyTask, waitForOperation } from '../support/operations';
import { startNodeProcess } from '../support/process';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

const run = promisify(execFile);
const FLEET = path.resolve(__dirname, '../../../test/fleet/fleet.sh');
const SCRIPT = '/etc/init.d/drover-legacy-test';
const MARKER = '/run/drover-legacy-test.running';
/** One line per restart the init script was asked for. */
const RESTARTS = '/run/drover-legacy-test.restarts';
/** While it exists, a restart takes long enough to lose its worker in the middle. */
const SLOW = '/run/drover-legacy-test.slow';
const WORKER = path.resolve(__dirname, '../../src/worker.js');

/**
 * Hosts without systemd: the scale fleet's hosts are plain sshd processes on this machine, whose
 * PID 1 is not systemd, so drover must fall back to service(8) and an init script.
 */
describe('a host without systemd', () => {
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let host: string;
  let env: Record<string, string>;

  before(async () => {
    await run('bash', [FLEET, 'scale-up', '--hosts', '1']);
    const inventory = JSON.parse(
      await readFile(path.join(testEnv.fleetState, 'scale-inventory.json'), 'utf8'),
    ) as FleetInventory;
    host = inventory.hosts[0]!.name;
    await writeFile(
      SCRIPT,
      `#!/bin/sh\ncase "$1" in\n  start) touch ${MARKER} ;;\n  stop) rm -f ${MARKER} ;;\n` +
        `  restart) echo restart >> ${RESTARTS}; if [ -e ${SLOW} ]; then sleep 8; fi; touch ${MARKER} ;;\n` +
        `  reload) printf 'reloaded\\000with a NUL\\n'; touch ${MARKER} ;;\n` +
        `  status) test -e ${MARKER} || exit 3 ;;\n  *) exit 2 ;;\nesac\n`,
    );
    await chmod(SCRIPT, 0o755);
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    env = workerEnv(api.database.url, prefix);
    worker = await startTestWorker(env);
    await (await api.client()).POST('/v1/hosts/bulk-upsert', { body: { hosts: inventory.hosts } });
    client = await api.client({ scopes: ['operate'] });
  });

  after(async () => {
    await worker.close();
    await api.close();
    await rm(SCRIPT, { force: true });
    await rm(MARKER, { force: true });
    await rm(RESTARTS, { force: true });
    await rm(SLOW, { force: true });
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

  it('stores output with a NUL byte in it (as U+FFFD) and does not fail the task for it', async () => {
    const task = onlyTask(await actOnHost(client, host, { verb: 'reload', unit: 'drover-legacy-test.service' }));
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    assert.equal(task.attempts, 1);
    assert.match(task.output ?? '', /reloaded\uFFFDwith a NUL/);
  });

  it('sends an init script command once, even when its worker dies and the job is delivered again', async () => {
    await rm(RESTARTS, { force: true });
    await writeFile(SLOW, '');
    await worker.close();
    const doomed = startNodeProcess(WORKER, { ...env, LOG_LEVEL: 'info' });
    try {
      await doomed.waitForLine((line) => line.includes('drover worker connected'));
      const created = await client.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: host } },
        body: { verb: 'restart', unit: 'drover-legacy-test.service' },
      });
      assert.equal(created.response.status, 202);
      const deadline = Date.now() + 20_000;
      while (!existsSync(RESTARTS)) {
        assert.ok(Date.now() < deadline, 'the restart never reached the host');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal((await doomed.stop('SIGKILL')).signal, 'SIGKILL');

      worker = await startTestWorker(env);
      const task = onlyTask(await waitForOperation(client, created.data!.id, 60_000));
      assert.equal(task.state, 'failed');
      assert.equal(task.attempts, 2, 'a second attempt ended the task');
      assert.match(
        task.reason ?? '',
        /an earlier attempt sent `service drover-legacy-test restart` and its result was lost; not repeated/,
      );
      assert.equal((await readFile(RESTARTS, 'utf8')).split('\n').filter(Boolean).length, 1, 'sent exactly once');
    } finally {
      await doomed.stop('SIGKILL');
      await rm(SLOW, { force: true });
    }
  });
});

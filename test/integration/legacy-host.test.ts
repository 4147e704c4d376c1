import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { testEnv } from '../support/env';
import type { FleetInventory } from '../support/fleet';
import { actOnHost, onlyTask, waitForOperation } from '../support/operations';
import { startNodeProcess } from '../support/process';
import { onHost } from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

const run = promisify(execFile);
const FLEET = path.resolve(__dirname, '../../../test/fleet/fleet.sh');
/**
 * On the scale host, never on this machine: a scale host is an sshd on this machine, but with its
 * own /etc/init.d and /root (fleet.sh binds them over the machine's in the host's mount namespace).
 */
const SCRIPT = '/etc/init.d/drover-legacy-test';
const DIR = '/root/drover-legacy-test';
const MARKER = `${DIR}/running`;
/** One line per restart the init script was asked for. */
const RESTARTS = `${DIR}/restarts`;
/** While it exists, a restart takes long enough to lose its worker in the middle. */
const SLOW = `${DIR}/slow`;
const WORKER = path.resolve(__dirname, '../../src/worker.js');

const INIT_SCRIPT =
  `#!/bin/sh\ncase "$1" in\n  start) touch ${MARKER} ;;\n  stop) rm -f ${MARKER} ;;\n` +
  `  restart) echo restart >> ${RESTARTS}; if [ -e ${SLOW} ]; then sleep 8; fi; touch ${MARKER} ;;\n` +
  `  reload) printf 'reloaded\\000with a NUL\\n'; touch ${MARKER} ;;\n` +
  `  status) test -e ${MARKER} || exit 3 ;;\n  *) exit 2 ;;\nesac\n`;

/**
 * Hosts without systemd: the scale fleet's hosts are plain sshd processes on this machine, whose
 * PID 1 is not systemd, so drover must fall back to service(8) and an init script.
 */
describe('a host without systemd', () => {
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let scaleHost: FleetInventory['hosts'][number];
  let host: string;
  let env: Record<string, string>;
  const onScaleHost = (command: string) => onHost(scaleHost, command);
  const existsOnHost = async (file: string) => (await onScaleHost(`test -e ${file} && echo yes || echo no`)) === 'yes';

  before(async () => {
    await run('bash', [FLEET, 'scale-up', '--hosts', '1']);
    const inventory = JSON.parse(
      await readFile(path.join(testEnv.fleetState, 'scale-inventory.json'), 'utf8'),
    ) as FleetInventory;
    scaleHost = inventory.hosts[0]!;
    host = scaleHost.name;
    const encoded = Buffer.from(INIT_SCRIPT).toString('base64');
    await onScaleHost(`mkdir -p ${DIR} && echo ${encoded} | base64 -d > ${SCRIPT} && chmod 755 ${SCRIPT}`);
    assert.ok(await existsOnHost(SCRIPT), 'the init script is installed on the scale host');
    assert.ok(!existsSync(SCRIPT), "and not in this machine's /etc/init.d");
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
    // The scale host's /etc/init.d and /root go with it.
    await run('bash', [FLEET, 'scale-down']);
  });

  it('starts, checks and stops a service through its init script', async () => {
    const started = onlyTask(await actOnHost(client, host, { verb: 'start', unit: 'drover-legacy-test.service' }));
    assert.equal(started.state, 'succeeded', started.reason ?? '');
    assert.match(started.reason ?? '', /without systemd/);
    assert.ok(await existsOnHost(MARKER));
    assert.equal(
      onlyTask(await actOnHost(client, host, { verb: 'status', unit: 'drover-legacy-test.service' })).state,
      'succeeded',
    );
    assert.equal(
      onlyTask(await actOnHost(client, host, { verb: 'stop', unit: 'drover-legacy-test.service' })).state,
      'succeeded',
    );
    assert.ok(!(await existsOnHost(MARKER)));
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
    await onScaleHost(`rm -f ${RESTARTS} && touch ${SLOW}`);
    await worker.close();
    const doomed = startNodeProcess(WORKER, { ...env, LOG_LEVEL: 'info' });
    try {
      await doomed.waitForLine((line) => line.includes('drover worker connected'));
      const created = await client.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: host } },
        body: { verb: 'restart', unit: 'drover-legacy-test.service' },
      });
      assert.equal(created.response.status, 202);
      await waitUntil(() => existsOnHost(RESTARTS), 'the restart reached the host', 20_000);
      assert.equal((await doomed.stop('SIGKILL')).signal, 'SIGKILL');

      worker = await startTestWorker(env);
      const task = onlyTask(await waitForOperation(client, created.data!.id, 60_000));
      assert.equal(task.state, 'failed');
      assert.equal(task.attempts, 2, 'a second attempt ended the task');
      assert.match(
        task.reason ?? '',
        /an earlier attempt sent `service drover-legacy-test restart` and its result was lost; not repeated/,
      );
      assert.equal(await onScaleHost(`wc -l < ${RESTARTS}`), '1', 'sent exactly once');
    } finally {
      await doomed.stop('SIGKILL');
      await onScaleHost(`rm -f ${SLOW}`);
    }
  });
});

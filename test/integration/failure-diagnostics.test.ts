import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { DroverClient } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { actOnHost, onlyTask } from '../support/operations';
import { onHost, probeDropIn, resetProbe, startRollout, waitForSettled } from '../support/rollouts';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const run = promisify(execFile);
const CLI = path.resolve(__dirname, '../../src/cli/main.js');
const UNIT = 'nginx.service';
/** A directive nginx does not know: `nginx -t` (its ExecStartPre) refuses the whole config. */
const BROKEN = 'drover_test_broken_directive on;';
const NGINX_SAYS = /\[emerg\].*unknown directive "drover_test_broken_directive"/;

async function breakNginx(host: FleetHost): Promise<void> {
  await onHost(
    host,
    `cp -n /etc/nginx/nginx.conf /etc/nginx/nginx.conf.drover-test && echo '${BROKEN}' >> /etc/nginx/nginx.conf`,
  );
}

async function repairNginx(host: FleetHost): Promise<void> {
  await onHost(
    host,
    'if [ -e /etc/nginx/nginx.conf.drover-test ]; then mv /etc/nginx/nginx.conf.drover-test /etc/nginx/nginx.conf; fi; ' +
      'systemctl reset-failed nginx.service; systemctl start nginx.service',
  );
}

/**
 * A failure explains itself: nginx broken by a bad config file on real hosts, restarted through
 * drover, and the operator reads nginx's own error in the task's reason, its stored status and
 * journal, the CLI's output and the rollout's events, without logging in to the host.
 */
describe('failure diagnostics on booted hosts', () => {
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let token: string;
  let hosts: FleetHost[];

  before(async () => {
    hosts = (await readFleetInventory()).hosts.slice(-2);
    const queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
    worker = await startTestWorker(workerEnv(api.database.url, queuePrefix));
    token = await api.token();
    client = await api.client();
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, diagnostics: 'yes' } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
  });

  /** Every event of a finished rollout, from its event stream (which ends with the rollout). */
  async function eventsOf(id: string): Promise<{ type: string; data: Record<string, unknown> }[]> {
    const events = await client.GET('/v1/rollouts/{id}/events', { params: { path: { id } }, parseAs: 'text' });
    return (events.data as unknown as string)
      .split('\n\n')
      .filter((block) => block.includes('event: '))
      .map((block) => {
        const lines = block.split('\n');
        return {
          type: lines.find((line) => line.startsWith('event: '))!.slice(7),
          data: JSON.parse(lines.find((line) => line.startsWith('data: '))!.slice(6)) as Record<string, unknown>,
        };
      });
  }

  after(async () => {
    for (const host of hosts ?? []) await repairNginx(host);
    await worker?.close();
    await api?.close();
  });

  it('stores the unit’s status and journal with a failed restart, and names nginx’s own error in the reason', async () => {
    const host = hosts[0]!;
    await breakNginx(host);
    try {
      const task = onlyTask(await actOnHost(client, host.name, { verb: 'restart', unit: UNIT }));
      assert.equal(task.state, 'failed');
      assert.match(task.reason ?? '', /^systemctl restart exited 1: .*; the unit said: /);
      assert.match(task.reason ?? '', NGINX_SAYS);
      assert.match(task.diagnostics ?? '', /\$ systemctl status[\s\S]*nginx\.service[\s\S]*Active: failed/);
      assert.match(task.diagnostics ?? '', NGINX_SAYS);
      // Only this action's lines: the journal's window begins when it did.
      assert.ok((task.diagnostics ?? '').split('\n').length <= 80, 'bounded');

      // The CLI shows it on failure (exit 2: a task failed).
      const cli = await run(process.execPath, [CLI, 'restart', UNIT, '--host', host.name], {
        env: { ...process.env, DROVER_URL: api.baseUrl, DROVER_TOKEN: token },
      }).catch((error: { code: number; stdout: string }) => error);
      assert.equal('code' in cli ? cli.code : 0, 2);
      assert.match(cli.stdout, new RegExp(`${host.name}: ${UNIT} failed: what the unit said`));
      assert.match(cli.stdout, NGINX_SAYS);
    } finally {
      await repairNginx(host);
    }
  });

  it('reads nothing more when the task succeeds', async () => {
    const task = onlyTask(await actOnHost(client, hosts[0]!.name, { verb: 'restart', unit: UNIT }));
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    assert.equal(task.diagnostics, null);
  });

  it('reads the unit when it fails its health gate after a clean restart, for the host.failed event', async () => {
    const host = hosts[0]!;
    // Starts cleanly (a new main process: the restart succeeds), then dies saying why.
    await probeDropIn(host, 'crash', [
      'ExecStartPost=',
      'ExecStart=',
      'ExecStart=/bin/sh -c "echo drover-test: cannot open /etc/drover-test/app.conf >&2; sleep 2; exit 3"',
      'Restart=no',
    ]);
    try {
      const created = await startRollout(client, {
        verb: 'restart',
        unit: 'drover-probe.service',
        selector: `diagnostics=yes`,
        batches: { size: 1 },
        maxFailures: 0,
        healthGate: { minHealthyTimeMs: 6_000 },
      });
      const rollout = await waitForSettled(client, created.id);
      assert.equal(rollout.status, 'aborted');
      const failed = (await eventsOf(created.id)).find((event) => event.type === 'host.failed');
      assert.ok(failed, 'a host failed');
      assert.match(String(failed.data.reason), /^health gate: /);
      assert.match(String(failed.data.diagnostics), /drover-test: cannot open \/etc\/drover-test\/app\.conf/);
    } finally {
      await Promise.all(hosts.map(resetProbe));
    }
  });

  it('puts what the unit said in the rollout’s task.finished event', async () => {
    const host = hosts[1]!;
    await breakNginx(host);
    try {
      const created = await startRollout(client, {
        verb: 'restart',
        unit: UNIT,
        selector: `diagnostics=yes`,
        batches: { size: 2 },
        maxFailures: 1,
      });
      const rollout = await waitForSettled(client, created.id);
      assert.equal(rollout.counts.failed, 1);
      const finished = (await eventsOf(created.id))
        .filter((event) => event.type === 'task.finished')
        .map((event) => event.data);
      const failed = finished.find((data) => data.host === host.name);
      assert.equal(failed?.state, 'failed');
      assert.match(String(failed?.diagnostics), NGINX_SAYS);
      assert.equal(finished.find((data) => data.host === hosts[0]!.name)?.diagnostics, undefined);
    } finally {
      await repairNginx(host);
    }
  });
});

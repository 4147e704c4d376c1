import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDroverClient, type DroverClient } from '../../src/client';
import { sudoersCommands } from '../../src/access/sudoers';
import { snapshotArgv, SYSTEMD_PROBE_ARGV, verbArgv } from '@drover/systemd';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { Operation, waitForOperation } from '../support/operations';
import { onHost, Rollout, startRollout, waitForSettled } from '../support/rollouts';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

/** A unit of this file's own, so that no other test's unit is restarted or limited. */
const UNIT = 'drover-sl.service';
const BURST = 3;
const INTERVAL_S = 20;
/** Each start of the unit appends the host's clock (µs) here: starts counted by the unit itself. */
const STARTS_FILE = '/run/drover-sl/starts';
const SUDOERS = '/etc/sudoers.d/drover-sl-test';
/** Long enough for a wait of an interval: the wait is bounded by the task's timeout. */
const TASK_TIMEOUT_MS = 60_000;

/**
 * The test unit with a low start limit, Type=simple on one host and Type=notify on the other
 * (systemd logs a start of each differently). `%%` because systemd expands `%` specifiers.
 */
function unitFile(type: 'simple' | 'notify'): string {
  const record = `date +%%s%%6N >> ${STARTS_FILE}`;
  const run =
    type === 'notify' ? `${record}; systemd-notify --ready; exec sleep infinity` : `${record}; exec sleep infinity`;
  return [
    '[Unit]',
    'Description=drover start-limit test',
    `StartLimitBurst=${BURST}`,
    `StartLimitIntervalSec=${INTERVAL_S}s`,
    '[Service]',
    `Type=${type}`,
    ...(type === 'notify' ? ['NotifyAccess=all'] : []),
    `ExecStart=/bin/sh -c "${run}"`,
    '',
  ].join('\n');
}

async function install(host: FleetHost, type: 'simple' | 'notify'): Promise<void> {
  const encoded = Buffer.from(unitFile(type)).toString('base64');
  await onHost(
    host,
    `mkdir -p /run/drover-sl && : > ${STARTS_FILE} && echo ${encoded} | base64 -d > /run/systemd/system/${UNIT} && ` +
      `systemctl daemon-reload && systemctl reset-failed ${UNIT}; systemctl restart ${UNIT}`,
  );
}

/** The host's clock in µs (the unit's start records and the journal use it). */
async function hostClock(host: FleetHost): Promise<number> {
  return Number(await onHost(host, 'date +%s%6N'));
}

/** When the unit started on the host (µs, its own records), oldest first. */
async function startsOn(host: FleetHost, since = 0): Promise<number[]> {
  const text = await onHost(host, `cat ${STARTS_FILE}`);
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map(Number)
    .filter((at) => at >= since);
}

/** Starts systemd refused because of the limit since `since` (µs), as its journal says. */
async function refusalsOn(host: FleetHost, since: number): Promise<number> {
  const text = await onHost(
    host,
    `journalctl --no-pager -o json --output-fields=MESSAGE _PID=1 UNIT=${UNIT} --since=@${Math.floor(since / 1e6)}`,
  );
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { MESSAGE?: string; __REALTIME_TIMESTAMP: string })
    .filter((entry) => Number(entry.__REALTIME_TIMESTAMP) >= since)
    .filter((entry) => entry.MESSAGE === `${UNIT}: Start request repeated too quickly.`).length;
}

/** Restarts the unit by hand until systemd refuses it; returns how many restarts went through. */
async function tripByHand(host: FleetHost): Promise<number> {
  const text = await onHost(
    host,
    `n=0; while systemctl restart ${UNIT} 2>/dev/null; do n=$((n+1)); [ $n -gt 10 ] && break; done; echo $n; systemctl show -p Result --value ${UNIT}`,
  );
  const [count, result] = text.split('\n');
  assert.equal(result, 'start-limit-hit', `${host.name}: the limit was tripped by hand`);
  return Number(count);
}

/** Any BURST + 1 starts in a row span more than the interval: systemd's limit was never at stake. */
function assertWithinLimit(host: FleetHost, starts: readonly number[]): void {
  for (let index = BURST; index < starts.length; index += 1) {
    const span = starts[index]! - starts[index - BURST]!;
    assert.ok(
      span > INTERVAL_S * 1e6,
      `${host.name}: starts ${index - BURST + 1}..${index + 1} within ${span / 1e6}s, more than ${BURST} in ${INTERVAL_S}s`,
    );
  }
}

interface RolloutEvent {
  type: string;
  data: Record<string, unknown>;
}

/** Every event of a finished rollout, read from its server-sent event stream (which then ends). */
async function rolloutEvents(api: TestApi, token: string, id: string): Promise<RolloutEvent[]> {
  const response = await fetch(`${api.baseUrl}/v1/rollouts/${id}/events`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(response.status, 200);
  return (await response.text())
    .split('\n\n')
    .map((frame) => ({ type: /^event: (.*)$/m.exec(frame)?.[1], data: /^data: (.*)$/m.exec(frame)?.[1] }))
    .filter((frame): frame is { type: string; data: string } => frame.type !== undefined && frame.data !== undefined)
    .map((frame) => ({ type: frame.type, data: JSON.parse(frame.data) as Record<string, unknown> }));
}

describe("systemd's start limit on a booted fleet", () => {
  let api: TestApi;
  let worker: TestWorker;
  let token: string;
  let client: DroverClient;
  let simple: FleetHost;
  let notify: FleetHost;
  /** The simple host again, logging in as the unprivileged `drover` user. */
  let leastPrivileged: string;
  /** The hosts' clock (µs) just before the unit was installed (its first start). */
  let installedSince: number;

  before(async () => {
    const inventory = await readFleetInventory();
    assert.ok(inventory.hosts.length >= 4, 'these tests need a fleet of at least 4 hosts');
    // Not the first hosts (most test files act there) nor the last (least-privilege's).
    [simple, notify] = inventory.hosts.slice(-3, -1) as [FleetHost, FleetHost];
    const queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
    worker = await startTestWorker(workerEnv(api.database.url, queuePrefix));
    token = await api.token();
    client = createDroverClient(api.baseUrl, token);
    leastPrivileged = `${simple.name}-sl`;
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: {
        hosts: [
          ...[simple, notify].map((host) => ({ ...host, labels: { ...host.labels, suite: 'start-limit' } })),
          { ...simple, name: leastPrivileged, sshUser: 'drover', labels: { suite: 'start-limit-lp' } },
        ],
      },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    installedSince = Math.min(await hostClock(simple), await hostClock(notify));
    await install(simple, 'simple');
    await install(notify, 'notify');
  });

  after(async () => {
    for (const host of [simple, notify]) {
      await onHost(
        host,
        `rm -f ${SUDOERS}; systemctl stop ${UNIT}; rm -rf /run/systemd/system/${UNIT} /run/systemd/system/${UNIT}.d /run/drover-sl; systemctl daemon-reload; systemctl reset-failed ${UNIT} 2>/dev/null; true`,
      );
    }
    await worker.close();
    await api.close();
  });

  it('rollouts one after another restart the unit more often than its limit allows: they wait, systemd never refuses', async () => {
    const since = installedSince;
    const rollouts: Rollout[] = [];
    for (let run = 0; run < 4; run += 1) {
      const created = await startRollout(client, {
        verb: 'restart',
        unit: UNIT,
        selector: 'suite=start-limit',
        batches: { size: 2 },
        healthGate: { minHealthyTimeMs: 0 },
        taskTimeoutMs: TASK_TIMEOUT_MS,
      });
      const done = await waitForSettled(client, created.id, 120_000);
      assert.equal(done.status, 'succeeded', `rollout ${run + 1}: ${done.reason ?? ''}`);
      rollouts.push(done);
    }

    for (const host of [simple, notify]) {
      const starts = await startsOn(host, since);
      // The start at installation and one per rollout: every restart happened, none twice.
      assert.equal(starts.length, 5, `${host.name}: ${starts.length} starts`);
      assertWithinLimit(host, starts);
      assert.equal(await refusalsOn(host, since), 0, `${host.name}: systemd refused no start`);
      assert.equal(await onHost(host, `systemctl show -p Result --value ${UNIT}`), 'success');
      assert.equal(await onHost(host, `systemctl is-active ${UNIT}`), 'active');
    }

    // The installation and the first two rollouts used up the burst: the third had to wait on
    // both hosts, and said so in its events and its tasks' reasons.
    const waits = (await rolloutEvents(api, token, rollouts[2]!.id)).filter((event) => event.type === 'task.waiting');
    assert.deepEqual([...new Set(waits.map((event) => event.data.host))].sort(), [simple.name, notify.name].sort());
    for (const event of waits) {
      assert.match(
        String(event.data.waitingFor),
        new RegExp(
          `^systemd's start limit: drover-sl\\.service started 3 time\\(s\\) in the last 20s, and systemd allows ` +
            `StartLimitBurst=3 within StartLimitIntervalSec=20s; waiting \\d+\\.\\ds so that this restart is not refused$`,
        ),
      );
      assert.equal(event.data.heldByRolloutId, null);
    }
    const third = await client.GET('/v1/operations/{id}', {
      params: { path: { id: rollouts[2]!.batches[0]!.operationId } },
    });
    for (const task of third.data!.tasks) {
      assert.equal(task.state, 'succeeded');
      assert.match(
        task.reason ?? '',
        /restarted .*; waited \d+\.\ds for systemd's start limit \(StartLimitBurst=3 within StartLimitIntervalSec=20s\)$/,
      );
      assert.notEqual(task.after?.invocationId, task.before?.invocationId, `${task.hostName}: a new run`);
      assert.deepEqual([task.before?.startLimitBurst, task.before?.startLimitIntervalUSec], [3, '20000000']);
      assert.equal(task.waitingFor, null, 'no longer waiting once it acted');
    }
  });

  it('makes a plain restart wait too, showing why on the task while it waits', async () => {
    const since = await hostClock(notify);
    // Three starts by hand fill the limit without tripping it.
    await onHost(notify, `systemctl reset-failed ${UNIT}; for i in 1 2 3; do systemctl restart ${UNIT}; done`);
    const created = await client.POST('/v1/hosts/{name}/actions', {
      params: { path: { name: notify.name } },
      body: { verb: 'restart', unit: UNIT, timeoutMs: TASK_TIMEOUT_MS },
    });
    assert.equal(created.response.status, 202, JSON.stringify(created.error));
    let waiting: Operation['tasks'][number]['waitingFor'] = null;
    let operation: Operation = created.data!;
    const deadline = Date.now() + 90_000;
    while (!['succeeded', 'failed'].includes(operation.status) && Date.now() < deadline) {
      await sleep(200);
      operation = (await client.GET('/v1/operations/{id}', { params: { path: { id: operation.id } } })).data!;
      waiting ??= operation.tasks[0]!.waitingFor;
    }
    const task = operation.tasks[0]!;
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    assert.match(
      waiting?.reason ?? '(never waited)',
      /^systemd's start limit: drover-sl\.service started [3-9] time\(s\)/,
    );
    assert.equal(waiting?.rolloutId, null);
    const starts = await startsOn(notify, since);
    assert.equal(starts.length, 4, 'three by hand, then drover’s');
    assertWithinLimit(notify, starts);
    assert.equal(await refusalsOn(notify, since), 0);
  });

  it('reports a restart systemd refuses for its start limit, with the burst, the interval and what to do', async () => {
    // A sudoers drop-in from before drover counted starts: it allows the restart but not the reads
    // that count them, so drover cannot see the starts made by hand and acts anyway.
    const allowed = [SYSTEMD_PROBE_ARGV, snapshotArgv(UNIT), verbArgv('restart', UNIT)].flatMap(sudoersCommands);
    const dropIn = `Defaults:drover !requiretty\ndrover ALL = (root) NOPASSWD: ${allowed.join(', ')}\n`;
    await onHost(
      simple,
      `echo ${Buffer.from(dropIn).toString('base64')} | base64 -d > ${SUDOERS}.new && visudo -cf ${SUDOERS}.new && ` +
        `chmod 0440 ${SUDOERS}.new && mv ${SUDOERS}.new ${SUDOERS}`,
    );
    try {
      await onHost(simple, `systemctl reset-failed ${UNIT}; systemctl start ${UNIT}`);
      const byHand = await tripByHand(simple);
      assert.ok(byHand >= 1 && byHand <= BURST, `${byHand} restarts by hand before systemd refused`);
      const since = await hostClock(simple);

      const created = await client.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: leastPrivileged } },
        body: { verb: 'restart', unit: UNIT, timeoutMs: TASK_TIMEOUT_MS },
      });
      assert.equal(created.response.status, 202, JSON.stringify(created.error));
      const task = (await waitForOperation(client, created.data!.id, 60_000)).tasks[0]!;
      assert.equal(task.state, 'failed');
      assert.equal(task.exitCode, 1);
      assert.match(
        task.reason ?? '',
        /^systemctl restart exited 1: systemd refused to start drover-sl\.service: its start limit was hit \(more starts than StartLimitBurst=3 within StartLimitIntervalSec=20s\)/,
      );
      assert.match(
        task.reason ?? '',
        /wait until 20s have passed .* or run `systemctl reset-failed drover-sl\.service`/,
      );
      // …and why drover did not prevent it: it could not count, and says so.
      assert.match(
        task.reason ?? '',
        /drover-sl\.service's recent starts could not be counted \(date exited 1: sudo: a password is required \(regenerate the host's sudoers drop-in/,
      );
      assert.equal(task.after?.result, 'start-limit-hit');
      assert.equal(await refusalsOn(simple, since), 1, 'the host refused drover’s restart');
    } finally {
      await onHost(simple, `rm -f ${SUDOERS}; systemctl reset-failed ${UNIT}; systemctl start ${UNIT}`);
    }
  });

  it('fails without acting when staying within the limit would take longer than the task may wait', async () => {
    await onHost(
      notify,
      `mkdir -p /run/systemd/system/${UNIT}.d && printf '[Unit]\\nStartLimitIntervalSec=1h\\n' > /run/systemd/system/${UNIT}.d/hour.conf && ` +
        `systemctl daemon-reload && systemctl reset-failed ${UNIT}; for i in 1 2 3; do systemctl restart ${UNIT}; done`,
    );
    try {
      const before = await startsOn(notify);
      const pid = await onHost(notify, `systemctl show -p MainPID --value ${UNIT}`);
      const created = await client.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: notify.name } },
        body: { verb: 'restart', unit: UNIT, timeoutMs: TASK_TIMEOUT_MS },
      });
      assert.equal(created.response.status, 202, JSON.stringify(created.error));
      const task = (await waitForOperation(client, created.data!.id, 60_000)).tasks[0]!;
      assert.equal(task.state, 'failed');
      assert.match(
        task.reason ?? '',
        /^not acted: drover-sl\.service started \d+ time\(s\) in the last 1h, and systemd allows StartLimitBurst=3 within StartLimitIntervalSec=1h; staying within it needs another \d+\.\ds, more than this task may wait \(its timeout, 60\.0s\)/,
      );
      assert.match(task.reason ?? '', /run `systemctl reset-failed drover-sl\.service` on the host/);
      assert.equal(task.exitCode, null);
      // Untouched: the same process, no new start, nothing refused.
      assert.deepEqual(await startsOn(notify), before);
      assert.equal(await onHost(notify, `systemctl show -p MainPID --value ${UNIT}`), pid);
      assert.equal(await onHost(notify, `systemctl show -p Result --value ${UNIT}`), 'success');
    } finally {
      await onHost(notify, `rm -rf /run/systemd/system/${UNIT}.d && systemctl daemon-reload`);
    }
  });
});

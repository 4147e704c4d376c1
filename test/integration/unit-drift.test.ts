import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DroverClient, Schemas } from '../../src/client';
import { startTestApi, TestApi } from '../support/api';
import { CliResult, runCli } from '../support/cli';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { discoverAndWait } from '../support/discovery';
import { assertProblem } from '../support/problems';
import { onHost, resetProbe } from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const UNIT = 'drover-probe.service';
const DROP_IN_DIR = `/etc/systemd/system/${UNIT}.d`;
const DROP_IN = `${DROP_IN_DIR}/drift.conf`;
const RUNTIME_DROP_IN_DIR = `/run/systemd/system/${UNIT}.d`;
const FLAPPING = 'drift-flap.service';
const LONG = 120_000;

describe('drift of a unit across booted hosts', () => {
  let api: TestApi;
  let worker: TestWorker;
  let client: DroverClient;
  let token: string;
  let hosts: FleetHost[];
  const label = `drift-${randomBytes(3).toString('hex')}`;
  const selector = `drift=${label}`;

  const discoverAll = () =>
    discoverAndWait(
      client,
      hosts.map((host) => host.name),
      UNIT,
      LONG,
    );

  async function drift(query: { from?: string; to?: string } = {}, unit = UNIT): Promise<Schemas['UnitDrift']> {
    const answer = await client.GET('/v1/units/{name}/drift', {
      params: { path: { name: unit }, query: { selector, ...query } },
    });
    assert.equal(answer.response.status, 200, JSON.stringify(answer.error));
    return answer.data!;
  }

  function drover(args: string[]): Promise<CliResult> {
    return runCli({ baseUrl: api.baseUrl, token }, args);
  }

  async function cleanUp(): Promise<void> {
    await Promise.all(
      hosts.map(async (host) => {
        await onHost(
          host,
          `systemctl stop ${FLAPPING} 2>/dev/null; rm -f /run/systemd/system/${FLAPPING}; rm -rf ${DROP_IN_DIR}; systemctl daemon-reload; systemctl reset-failed ${FLAPPING} 2>/dev/null; true`,
        );
        await resetProbe(host);
      }),
    );
  }

  before(async () => {
    hosts = (await readFleetInventory()).hosts.slice(0, 3);
    assert.equal(hosts.length, 3, 'the fleet has at least three hosts');
    const queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: queuePrefix });
    worker = await startTestWorker(workerEnv(api.database.url, queuePrefix));
    token = await api.token({ name: `drift-${label}` });
    client = await api.client({ name: `drift-client-${label}` });
    await cleanUp();
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, drift: label } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
  });

  after(async () => {
    await cleanUp();
    await worker.close();
    await api.close();
  });

  it('records what each unit is built from, and finds one definition where hosts agree', async () => {
    await discoverAll();
    const units = await client.GET('/v1/units', { params: { query: { name: UNIT, selector } } });
    for (const unit of units.data!.items) {
      assert.equal(unit.fragmentPath, `/lib/systemd/system/${UNIT}`, JSON.stringify(unit));
      assert.deepEqual(unit.dropInPaths, []);
      assert.match(unit.definitionHash ?? '', /^[0-9a-f]{64}$/);
      assert.equal(unit.needDaemonReload, false);
      assert.equal(typeof unit.restart, 'string');
    }
    const agreed = await drift();
    assert.equal(agreed.hosts, 3);
    assert.equal(agreed.groups.length, 1, JSON.stringify(agreed.groups));
    assert.deepEqual(agreed.groups[0]!.hostNames, hosts.map((host) => host.name).sort());
    assert.equal(agreed.diff, null);
    assert.match(agreed.diffUnavailable ?? '', /one definition/);
  });

  it('groups hosts by definition after a drop-in on one host and an edit on another, and shows the difference', async () => {
    const [plain, overridden, edited] = hosts as [FleetHost, FleetHost, FleetHost];
    await onHost(
      overridden,
      `mkdir -p ${DROP_IN_DIR} && printf '[Service]\\nRestart=always\\nRestartSec=2\\n' > ${DROP_IN} && systemctl daemon-reload`,
    );
    // Loaded first, then changed on disk without a daemon-reload: systemd runs the old one.
    await onHost(
      edited,
      `mkdir -p ${RUNTIME_DROP_IN_DIR} && printf '[Service]\\nEnvironment=DRIFT=loaded\\n' > ${RUNTIME_DROP_IN_DIR}/drift.conf && systemctl daemon-reload && sleep 0.1 && printf '[Service]\\nEnvironment=DRIFT=edited\\n' > ${RUNTIME_DROP_IN_DIR}/drift.conf`,
    );
    await discoverAll();

    const drifted = await drift();
    assert.equal(drifted.groups.length, 3, JSON.stringify(drifted.groups));
    assert.ok(drifted.groups.every((group) => group.hosts === 1 && group.definitionHash !== null));
    const groupOf = (host: FleetHost) => drifted.groups.find((group) => group.hostNames.includes(host.name))!;
    assert.deepEqual(groupOf(overridden).dropInPaths, [DROP_IN]);
    assert.equal(groupOf(overridden).restart, 'always');
    assert.deepEqual(groupOf(edited).dropInPaths, [`${RUNTIME_DROP_IN_DIR}/drift.conf`]);
    assert.deepEqual(drifted.needDaemonReload.hostNames, [edited.name]);

    const plainHash = groupOf(plain).definitionHash!;
    const overriddenHash = groupOf(overridden).definitionHash!;
    const compared = await drift({ from: plainHash.slice(0, 10), to: overriddenHash });
    assert.equal(compared.diff?.from, plainHash, compared.diffUnavailable ?? '');
    assert.equal(compared.diff?.to, overriddenHash);
    const lines = compared.diff.text.split('\n');
    assert.ok(lines.includes(`+# ${DROP_IN}`), compared.diff.text);
    assert.ok(lines.includes('+Restart=always'), compared.diff.text);
    assert.ok(!lines.some((line) => line.startsWith('-') && !line.startsWith('---')), 'nothing was removed');
    // The edited host's text is what is on disk now (the file's content), not what systemd runs.
    const toEdited = await drift({ from: plainHash, to: groupOf(edited).definitionHash! });
    assert.ok(toEdited.diff!.text.split('\n').includes('+Environment=DRIFT=edited'), toEdited.diff!.text);

    const cli = await drover([
      'units',
      'drift',
      UNIT,
      '-l',
      selector,
      '--from',
      plainHash.slice(0, 12),
      '--to',
      overriddenHash.slice(0, 12),
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(
      cli.stdout,
      new RegExp(`^${UNIT.replace('.', '\\.')} on 3 host\\(s\\) matching ${selector}: 3 definition\\(s\\)`),
    );
    assert.match(cli.stdout, /DEFINITION\s+HOSTS\s+TYPE\s+RESTART\s+FILES/);
    assert.match(cli.stdout, new RegExp(`needs daemon-reload .*: ${edited.name}`));
    assert.ok(cli.stdout.split('\n').includes('+Restart=always'), cli.stdout);
  });

  it("lists in a rollout's plan the hosts needing daemon-reload and what the policy will do there", async () => {
    const edited = hosts[2]!;
    const planned = await client.POST('/v1/rollouts/plan', {
      body: { verb: 'restart', unit: UNIT, selector, daemonReload: 'refuse' },
    });
    assert.equal(planned.response.status, 200, JSON.stringify(planned.error));
    assert.deepEqual(planned.data!.daemonReload.hosts, [edited.name]);
    assert.match(planned.data!.daemonReload.effect, /^the tasks on 1 host\(s\) .* will fail before acting/);
    assert.deepEqual(
      planned.data!.hosts.filter((host) => host.needsDaemonReload).map((host) => host.name),
      [edited.name],
    );
    const cli = await drover(['rollout', 'restart', UNIT, '-l', selector, '--daemon-reload', 'auto', '--dry-run']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(
      cli.stdout,
      new RegExp(`needs daemon-reload: ${edited.name} — daemon-reload runs first on 1 host\\(s\\)`),
    );
  });

  it('flags a unit that restarts on its own between two discoveries as flapping', async () => {
    const host = hosts[0]!;
    await onHost(
      host,
      `printf '[Unit]\\nStartLimitIntervalSec=0\\n[Service]\\nExecStart=/bin/sh -c "sleep 0.3; exit 1"\\nRestart=always\\nRestartSec=100ms\\n' > /run/systemd/system/${FLAPPING} && systemctl daemon-reload && systemctl start ${FLAPPING}`,
    );
    await discoverAll();
    const restartsAt = async () => Number(await onHost(host, `systemctl show -p NRestarts --value ${FLAPPING}`));
    const first = await restartsAt();
    await waitUntil(async () => (await restartsAt()) > first + 1, `${FLAPPING} restarted on its own`, LONG);
    await discoverAll();

    const flapping = await drift({}, FLAPPING);
    assert.equal(flapping.flapping.length, 1, JSON.stringify(flapping));
    assert.equal(flapping.flapping[0]!.hostName, host.name);
    assert.ok(flapping.flapping[0]!.restartsGrewBy >= 1, JSON.stringify(flapping.flapping[0]));
    assert.equal(flapping.absent.hosts, 2, 'the other hosts do not have the unit');
    assert.equal((await drift()).flapping.length, 0, `${UNIT} is not flapping`);
  });

  it('refuses bad input with a problem naming the field', async () => {
    const unknownGroup = await client.GET('/v1/units/{name}/drift', {
      params: { path: { name: UNIT }, query: { selector, from: 'fffffff' } },
    });
    assert.match(assertProblem(unknownGroup, 400, 'validation_failed', 'from').detail ?? '', /no group/);
    const notHex = await client.GET('/v1/units/{name}/drift', {
      params: { path: { name: UNIT }, query: { to: 'HEAD~1' } },
    });
    assertProblem(notHex, 400, 'validation_failed', 'to');
    const badUnit = await client.GET('/v1/units/{name}/drift', { params: { path: { name: 'a;b.service' } } });
    assertProblem(badUnit, 400, 'validation_failed', 'name');
    const badSelector = await client.GET('/v1/units/{name}/drift', {
      params: { path: { name: UNIT }, query: { selector: 'role in (' } },
    });
    assert.equal(badSelector.response.status, 400);
  });
});

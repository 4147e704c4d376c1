import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { snapshotArgv, verbArgv } from '@drover/systemd';
import { shellQuote } from '../../src/infra/ssh/shell-quote';
import { startTestApi, TestApi } from '../support/api';
import { FleetInventory, readFleetInventory, sshExec } from '../support/fleet';
import { actOnHost, onlyTask } from '../support/operations';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

/** Drop-ins this test installs; the finally of every test that installs one removes them all. */
const DROP_IN = '/etc/sudoers.d/drover-test';
const NAMES_DROP_IN = '/etc/sudoers.d/drover-test-names';
const ALLOWED_VERBS = ['restart', 'reload', 'status', 'stop', 'start'];
const SUDO_REFUSED = /^sudo on host \S+ refused to run a command as root for user drover: /;

interface SudoersAnswer {
  status: number;
  body: { path?: string; content?: string; hosts?: string[]; code?: string; errors?: { field: string }[] };
}

describe('least-privilege SSH: drover under a generated sudoers drop-in, as a non-root user', () => {
  let inventory: FleetInventory;
  let host: FleetInventory['hosts'][number];
  let api: TestApi;
  let worker: TestWorker;
  let operator: DroverClient;
  let adminToken: string;
  /** The same machine imported a second time, logging in as the unprivileged `drover` user. */
  let lpName: string;

  /** Runs a shell command on the host as root (test tooling, not the product). */
  async function asRoot(command: string): Promise<string> {
    const result = await sshExec(host, host.hostKeyFingerprint, command);
    assert.equal(result.code, 0, `${command}: ${result.stderr}`);
    return result.stdout.trim();
  }

  async function asDrover(command: string) {
    return sshExec({ ...host, sshUser: 'drover' }, host.hostKeyFingerprint, command);
  }

  const mainPid = async (unit: string) => Number(await asRoot(`systemctl show -p MainPID --value ${unit}`));

  async function generate(body: Record<string, unknown>, token = adminToken): Promise<SudoersAnswer> {
    const response = await fetch(`${api.baseUrl}/v1/access/sudoers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as SudoersAnswer['body'] };
  }

  /** Checks a file with visudo on the host, then installs it as root with mode 0440. */
  async function install(path: string, content: string): Promise<void> {
    const encoded = Buffer.from(content).toString('base64');
    const staged = `/tmp/drover-sudoers-${randomBytes(4).toString('hex')}`;
    await asRoot(
      `echo ${encoded} | base64 -d > ${staged} && visudo -cf ${staged} && install -m 0440 -o root -g root ${staged} ${path}; status=$?; rm -f ${staged}; exit $status`,
    );
    assert.equal(await asRoot(`stat -c %a:%U ${path}`), '440:root');
    assert.match(await asRoot('visudo -c'), /parsed OK/);
  }

  async function uninstall(): Promise<void> {
    await asRoot(`rm -f ${DROP_IN} ${NAMES_DROP_IN}`);
  }

  before(async () => {
    inventory = await readFleetInventory();
    // The last host: other test files mostly act on the first ones.
    host = inventory.hosts.at(-1)!;
    lpName = `${host.name}-lp`;
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix });
    worker = await startTestWorker(workerEnv(api.database.url, prefix));
    adminToken = await api.token();
    operator = await api.client({ scopes: ['operate'] });
    const admin = await api.client();
    const created = await admin.POST('/v1/hosts', {
      body: {
        name: lpName,
        address: host.address,
        port: host.port,
        sshUser: 'drover',
        hostKeyFingerprint: host.hostKeyFingerprint,
        labels: { suite: 'least-privilege' },
      },
    });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    await uninstall();
    await asRoot('systemctl unmask drover-probe.service; systemctl enable --now drover-probe.service nginx.service');
  });

  after(async () => {
    await uninstall();
    await worker.close();
    await api.close();
  });

  it('generates the drop-in through the API (admin only), refusing what it cannot express', async () => {
    const answer = await generate({
      user: 'drover',
      verbs: ALLOWED_VERBS,
      units: ['drover-probe.service'],
      group: 'test',
      selector: 'suite=least-privilege',
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.path, DROP_IN);
    assert.deepEqual(answer.body.hosts, [lpName]);
    assert.match(answer.body.content!, /^drover ALL = \(root\) NOPASSWD: DROVER_TEST__READ, /m);

    const operatorToken = await api.token({ scopes: ['operate'] });
    assert.equal(
      (await generate({ user: 'drover', verbs: ['restart'], units: ['a.service'] }, operatorToken)).status,
      403,
    );
    const nowhere = await generate({ user: 'drover', verbs: ['restart'], units: ['a.service'], selector: 'no=such' });
    assert.equal(nowhere.status, 422);
    assert.equal(nowhere.body.code, 'selector_matches_nothing');
    const bad = await generate({ user: 'root', verbs: ['mask'], units: ['nginx.service', 'web-*.service'] });
    assert.equal(bad.status, 400);
    assert.deepEqual(
      bad.body.errors?.map((error) => error.field),
      ['user', 'verbs', 'units[1]'],
    );
  });

  it('lets drover restart and read the allowed unit, verified on the host', async () => {
    // Without the drop-in the drover user has no sudo rights at all: it is what grants them.
    const unprivileged = onlyTask(await actOnHost(operator, lpName, { verb: 'status', unit: 'drover-probe.service' }));
    assert.equal(unprivileged.state, 'failed');
    assert.match(unprivileged.reason ?? '', SUDO_REFUSED);

    const { body } = await generate({ user: 'drover', verbs: ALLOWED_VERBS, units: ['drover-probe.service'] });
    try {
      await install(DROP_IN, body.content!);

      const pidBefore = await mainPid('drover-probe.service');
      const restarted = onlyTask(await actOnHost(operator, lpName, { verb: 'restart', unit: 'drover-probe.service' }));
      assert.equal(restarted.state, 'succeeded', restarted.reason ?? '');
      // The drop-in also allows what drover reads to keep within systemd's start limit.
      assert.doesNotMatch(restarted.reason ?? '', /could not be counted/);
      const pidAfter = await mainPid('drover-probe.service');
      assert.notEqual(pidAfter, pidBefore, 'a new MainPID on the host');
      assert.equal(restarted.before?.mainPid, pidBefore);
      assert.equal(restarted.after?.mainPid, pidAfter);

      const status = onlyTask(await actOnHost(operator, lpName, { verb: 'status', unit: 'drover-probe.service' }));
      assert.equal(status.state, 'succeeded', status.reason ?? '');
      assert.match(status.output ?? '', /drover-probe\.service/);

      const reloaded = onlyTask(await actOnHost(operator, lpName, { verb: 'reload', unit: 'drover-probe.service' }));
      assert.equal(reloaded.state, 'succeeded', reloaded.reason ?? '');
      assert.equal(await mainPid('drover-probe.service'), pidAfter, 'reload keeps the MainPID');

      // Discovery (after every action) runs its listings under the same drop-in.
      const deadline = Date.now() + 20_000;
      let listed: { name: string; definitionHash: string | null }[] = [];
      while (Date.now() < deadline && !listed.some((unit) => unit.name === 'nginx.service')) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        const page = await operator.GET('/v1/hosts/{name}/units', { params: { path: { name: lpName }, query: {} } });
        listed = page.data?.items ?? [];
      }
      const units = listed.map((unit) => unit.name);
      assert.ok(units.includes('drover-probe.service') && units.includes('nginx.service'), units.join(' '));
      // Unit definitions (drift) are read as the login user: no sudoers line is needed for them.
      assert.match(listed.find((unit) => unit.name === 'nginx.service')?.definitionHash ?? '', /^[0-9a-f]{64}$/);
    } finally {
      await uninstall();
    }
  });

  it('fails a verb or a unit the drop-in does not allow, saying sudo refused, and changes nothing', async () => {
    const { body } = await generate({ user: 'drover', verbs: ALLOWED_VERBS, units: ['drover-probe.service'] });
    try {
      await install(DROP_IN, body.content!);
      const probePid = await mainPid('drover-probe.service');
      const nginxPid = await mainPid('nginx.service');

      const masked = onlyTask(await actOnHost(operator, lpName, { verb: 'mask', unit: 'drover-probe.service' }));
      assert.equal(masked.state, 'failed');
      assert.match(masked.reason ?? '', SUDO_REFUSED);
      assert.match(masked.reason ?? '', /'mask' '--' 'drover-probe\.service'/);
      assert.equal(await asRoot('systemctl is-enabled drover-probe.service || true'), 'enabled');

      const nginx = onlyTask(await actOnHost(operator, lpName, { verb: 'restart', unit: 'nginx.service' }));
      assert.equal(nginx.state, 'failed');
      assert.match(nginx.reason ?? '', SUDO_REFUSED);

      const reloadDaemon = onlyTask(await actOnHost(operator, lpName, { verb: 'daemon-reload' }));
      assert.equal(reloadDaemon.state, 'failed');
      assert.match(reloadDaemon.reason ?? '', SUDO_REFUSED);

      assert.equal(await mainPid('nginx.service'), nginxPid, 'nginx untouched');
      assert.equal(await mainPid('drover-probe.service'), probePid, 'the probe untouched');
    } finally {
      await uninstall();
    }
  });

  it('refuses anything else the drover user asks sudo for directly over SSH', async () => {
    const { body } = await generate({ user: 'drover', verbs: ALLOWED_VERBS, units: ['drover-probe.service'] });
    try {
      await install(DROP_IN, body.content!);
      const allowed = verbArgv('restart', 'drover-probe.service');
      const refused = [
        ['/bin/sh', '-c', 'id'],
        ['systemctl', 'restart', 'nginx.service'],
        verbArgv('restart', 'nginx.service'),
        ['systemctl', 'restart', 'drover-probe.service'],
        // The allowed line with one more argument: a second unit, or an option after it.
        [...allowed, 'nginx.service'],
        [...allowed, '--now'],
        ['systemctl', 'edit', 'drover-probe.service'],
        ['test', '-d', '/root'],
      ];
      for (const argv of refused) {
        const result = await asDrover(`sudo -n ${shellQuote(argv)}`);
        assert.equal(result.code, 1, `${argv.join(' ')}: ${result.stdout}${result.stderr}`);
        assert.match(result.stderr, /^sudo: a password is required/, argv.join(' '));
      }
      const listed = await asDrover(`sudo -n -l ${shellQuote(allowed)}`);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(listed.stdout.trim(), `/usr/bin/systemctl ${allowed.slice(1).join(' ')}`);
    } finally {
      await uninstall();
    }
  });

  it('matches unit names with backslashes and colons exactly, under the real sudo of the host', async () => {
    const units = [
      'sys-devices-platform-serial8250-tty-ttyS\\x2d1.device',
      'dev-disk-by\\x2dlabel-a\\x3ab.device',
      'a:b.service',
      'getty@tty1.service',
      'x_y-z.mount',
      'run-user-1000.mount',
    ];
    const { body } = await generate({ user: 'drover', verbs: ['restart', 'status'], units, group: 'test-names' });
    assert.equal(body.path, NAMES_DROP_IN);
    try {
      await install(NAMES_DROP_IN, body.content!);
      // sudo -l COMMAND prints the command when the policy allows it and exits 1 otherwise,
      // without running anything.
      const check = async (argv: string[]) => (await asDrover(`sudo -n -l ${shellQuote(argv)}`)).code;
      for (const unit of units) {
        for (const argv of [snapshotArgv(unit), verbArgv('restart', unit), verbArgv('status', unit)]) {
          assert.equal(await check(argv), 0, `allowed: ${argv.join(' ')}`);
        }
        // What a naive escaping would allow instead: the backslash lost, or read as a wildcard.
        // Built by hand: verbArgv itself would refuse these names.
        for (const nearMiss of [unit.replaceAll('\\', ''), unit.replace(/[\\:]/, '?'), `${unit}x`]) {
          if (nearMiss === unit) continue;
          const argv = [...verbArgv('restart', unit).slice(0, -1), nearMiss];
          assert.equal(await check(argv), 1, `refused: ${argv.join(' ')}`);
        }
      }
      assert.equal(await check(verbArgv('stop', 'a:b.service')), 1, 'a verb not in the file');
    } finally {
      await uninstall();
    }
  });
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { DroverClient } from '../../src/client';
import { installCommandLine } from '../../src/cli/agents';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { FleetInventory, inHost, pathInHost, readFleetInstance, readFleetInventory } from '../support/fleet';
import { actOnHost, onlyTask } from '../support/operations';
import { startNodeProcess } from '../support/process';
import { workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const run = promisify(execFile);
const WORKER = path.resolve(__dirname, '../../src/worker.js');
const UNIT = 'drover-probe.service';
const AGENT_USER = 'drover-agent';
const RULES_FILE = '/etc/polkit-1/rules.d/40-drover-agent.rules';
const SETTLE_MS = 120_000;
/**
 * polkitd and what it needs that the fleet's base image (Debian 12 minbase) lacks. They come from
 * this machine's apt (as the base image itself does) and go onto one host only, for this file: the
 * image, shared by every fleet, stays as it is. polkitd's dependency on logind's PAM module is left
 * out: systemd-logind is part of systemd, and polkit asks it nothing about a system service.
 */
const POLKIT_PACKAGES = [
  'polkitd',
  'libpolkit-gobject-1-0',
  'libpolkit-agent-1-0',
  'libduktape207',
  'libglib2.0-0',
  'xml-core',
  'sgml-base',
];
const DENIED = /interactive authentication required|access denied/i;

async function onAgentHost(host: FleetHost, command: string): Promise<string> {
  const result = await inHost(host, command, 120_000);
  assert.equal(result.code, 0, `${host.name}: ${command}: ${result.stdout}\n${result.stderr}`);
  return result.stdout.trim();
}

async function installPolkit(host: FleetHost): Promise<void> {
  const downloads = await mkdtemp(path.join(tmpdir(), 'drover-polkit-debs-'));
  try {
    const download = () =>
      run('apt-get', ['download', '-o', 'APT::Sandbox::User=root', ...POLKIT_PACKAGES], { cwd: downloads });
    // A machine whose package lists were never fetched (or are stale) knows no such packages yet.
    await download().catch(async () => {
      await run('apt-get', ['update', '-qq'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      await download();
    });
    const inside = `/tmp/drover-polkit-debs-${randomBytes(4).toString('hex')}`;
    await mkdir(await pathInHost(host, inside));
    const debs = await readdir(downloads);
    for (const deb of debs) await copyFile(path.join(downloads, deb), await pathInHost(host, `${inside}/${deb}`));
    await onAgentHost(
      host,
      `dpkg --ignore-depends=default-logind,logind -i ${debs.map((deb) => `${inside}/${deb}`).join(' ')} && rm -rf ${inside}`,
    );
  } finally {
    await rm(downloads, { recursive: true, force: true });
  }
}

/** The host as the fleet had it: no agent, no agent user, no polkit, sshd and the probe running. */
async function restoreHost(host: FleetHost): Promise<void> {
  await inHost(
    host,
    'systemctl disable --now drover-agent.service 2>/dev/null; ' +
      'rm -rf /opt/drover-agent /etc/drover-agent /var/lib/drover-agent /etc/systemd/system/drover-agent.service ' +
      `/etc/systemd/system/drover-agent.service.d ${RULES_FILE}; userdel ${AGENT_USER} 2>/dev/null; ` +
      `systemctl stop polkit.service 2>/dev/null; dpkg --purge ${POLKIT_PACKAGES.join(' ')} >/dev/null 2>&1; ` +
      'userdel polkitd 2>/dev/null; systemctl daemon-reload; ' +
      'systemctl start ssh.service nginx.service drover-probe.service',
    120_000,
  );
}

/**
 * The agent as an unprivileged user on a booted host, allowed by a generated polkit rule to restart
 * and reload drover-probe.service and nothing else; sshd stopped, so only the agent acts there. What
 * the rule allows works; what it does not is refused by polkit, and nothing changes on the host.
 */
describe('the agent as an unprivileged user under a generated polkit rule', () => {
  let api: TestApi;
  let admin: DroverClient;
  let host: FleetHost;
  let worker: ReturnType<typeof startNodeProcess> | undefined;

  const show = (unit: string, property: string) => onAgentHost(host, `systemctl show -p ${property} --value ${unit}`);
  const act = async (verb: 'restart' | 'reload' | 'stop' | 'disable', unit: string) =>
    onlyTask(await actOnHost(admin, host.name, { verb, unit }, SETTLE_MS));

  before(async () => {
    const inventory = await readFleetInventory();
    host = inventory.hosts.at(-1)!;
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi(
      { QUEUE_PREFIX: prefix, AGENT_BUNDLE_DIR: path.resolve(__dirname, '../../agent'), AGENT_TASK_LEASE_MS: '5000' },
      (await readFleetInstance()).gateway,
    );
    admin = await api.client();
    worker = startNodeProcess(WORKER, { ...workerEnv(api.database.url, prefix), LOG_LEVEL: 'info' });
    await worker.waitForLine((line) => line.includes('drover worker connected'));

    await restoreHost(host);
    await installPolkit(host);
    const rules = await admin.POST('/v1/access/polkit', {
      body: { user: AGENT_USER, verbs: ['restart', 'reload'], units: [UNIT] },
    });
    assert.equal(rules.response.status, 200, JSON.stringify(rules.error));
    assert.equal(rules.data!.path, RULES_FILE);
    await writeFile(await pathInHost(host, RULES_FILE), rules.data!.content, { mode: 0o644 });

    const token = await admin.POST('/v1/agent-join-tokens', { body: { hostName: host.name } });
    assert.equal(token.response.status, 201, JSON.stringify(token.error));
    const installed = await inHost(host, installCommandLine(api.baseUrl, token.data!.joinToken, AGENT_USER), 120_000);
    assert.equal(installed.code, 0, `install on ${host.name}: ${installed.stdout}\n${installed.stderr}`);
    await onAgentHost(host, 'systemctl stop ssh.service ssh.socket 2>/dev/null || systemctl stop ssh.service');
  });

  after(async () => {
    await worker?.stop('SIGTERM');
    if (host) await restoreHost(host);
    await api?.close();
  });

  it('runs as its own user, reports so, and owns its state; its config it can read, not change', async () => {
    assert.equal(await show('drover-agent.service', 'ActiveState'), 'active');
    const pid = await show('drover-agent.service', 'MainPID');
    assert.equal(await onAgentHost(host, `ps -o user= -p ${pid}`), AGENT_USER);
    assert.equal((await inHost(host, 'systemctl is-active ssh.service')).stdout.trim(), 'inactive');
    const agents = (await admin.GET('/v1/agents')).data!.items;
    const agent = agents.find((candidate) => candidate.hostName === host.name);
    assert.equal(agent?.online, true);
    assert.equal(agent?.facts?.runsAsRoot, false);
    const modes = await onAgentHost(
      host,
      'stat -c "%n %U:%G %a" /var/lib/drover-agent /var/lib/drover-agent/agent.key /var/lib/drover-agent/agent.json /etc/drover-agent /etc/drover-agent/config.json',
    );
    assert.deepEqual(modes.split('\n'), [
      `/var/lib/drover-agent ${AGENT_USER}:${AGENT_USER} 700`,
      `/var/lib/drover-agent/agent.key ${AGENT_USER}:${AGENT_USER} 600`,
      `/var/lib/drover-agent/agent.json ${AGENT_USER}:${AGENT_USER} 600`,
      `/etc/drover-agent root:${AGENT_USER} 750`,
      `/etc/drover-agent/config.json root:${AGENT_USER} 640`,
    ]);
  });

  it('restarts and reloads the allowed unit', async () => {
    const before = await show(UNIT, 'MainPID');
    const restarted = await act('restart', UNIT);
    assert.equal(restarted.state, 'succeeded', restarted.reason ?? '');
    const after = await show(UNIT, 'MainPID');
    assert.notEqual(after, before, 'a new main process');
    assert.equal(await show(UNIT, 'ActiveState'), 'active');
    const reloaded = await act('reload', UNIT);
    assert.equal(reloaded.state, 'succeeded', reloaded.reason ?? '');
    assert.equal(await show(UNIT, 'MainPID'), after, 'a reload keeps the main process');
  });

  it('stop of the allowed unit is refused by polkit: the task fails and the unit runs on', async () => {
    const before = await show(UNIT, 'MainPID');
    const stopped = await act('stop', UNIT);
    assert.equal(stopped.state, 'failed');
    assert.match(stopped.reason ?? '', DENIED);
    assert.equal(await show(UNIT, 'ActiveState'), 'active');
    assert.equal(await show(UNIT, 'MainPID'), before, 'the same main process');
  });

  it('disable of the allowed unit is refused (no unit-file verbs in the rule): still enabled', async () => {
    const disabled = await act('disable', UNIT);
    assert.equal(disabled.state, 'failed');
    assert.match(disabled.reason ?? '', DENIED);
    assert.equal(await show(UNIT, 'UnitFileState'), 'enabled');
  });

  it('restart of another unit is refused: nginx keeps its main process', async () => {
    const before = await show('nginx.service', 'MainPID');
    const restarted = await act('restart', 'nginx.service');
    assert.equal(restarted.state, 'failed');
    assert.match(restarted.reason ?? '', DENIED);
    assert.equal(await show('nginx.service', 'ActiveState'), 'active');
    assert.equal(await show('nginx.service', 'MainPID'), before);
  });

  it('the rule generation was audited once, with the rule it handed out', async () => {
    const events = await query<{ parameters: { user: string; units: string[]; path: string } }>(
      api.database.url,
      `SELECT parameters FROM audit_events WHERE action = 'access.polkit_generate'`,
    );
    assert.equal(events.length, 1);
    assert.deepEqual(
      { user: events[0]!.parameters.user, units: events[0]!.parameters.units, path: events[0]!.parameters.path },
      { user: AGENT_USER, units: [UNIT], path: RULES_FILE },
    );
  });
});

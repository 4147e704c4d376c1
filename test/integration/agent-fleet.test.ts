import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DroverClient } from '../../src/client';
import { AgentReads } from '../../src/agents/agent-reads';
import { installCommandLine } from '../../src/cli/agents';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { FleetInventory, inHost, readFleetInstance, readFleetInventory } from '../support/fleet';
import { setPartitioned } from '../support/faults';
import { actOnHost, onlyTask, waitForOperation } from '../support/operations';
import { startNodeProcess } from '../support/process';
import { freePort } from '../support/redis-servers';
import { resetProbe, startRollout, waitForSettled } from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];

const WORKER = path.resolve(__dirname, '../../src/worker.js');
const API = path.resolve(__dirname, '../../src/main.js');
const UNIT = 'drover-probe.service';
const SETTLE_MS = 120_000;

/** Runs a command inside an agent host (no SSH there); fails the test when it exits non-zero. */
async function onAgentHost(host: FleetHost, command: string): Promise<string> {
  const result = await inHost(host, command);
  assert.equal(result.code, 0, `${host.name}: ${command}: ${result.stderr}`);
  return result.stdout.trim();
}

async function show(host: FleetHost, property: string): Promise<string> {
  return onAgentHost(host, `systemctl show -p ${property} --value ${UNIT}`);
}

/** Lines drover-probe.service appended to its record of starts or reloads (one per start/reload). */
async function recorded(host: FleetHost, file: 'starts' | 'reloads'): Promise<number> {
  const text = await onAgentHost(host, `cat /var/lib/drover-probe/${file} 2>/dev/null || true`);
  return text === '' ? 0 : text.split('\n').length;
}

/** A restart that takes 2 s to stop: long enough to break something in the middle of it. */
async function slowStop(hosts: FleetHost[]): Promise<void> {
  for (const host of hosts) {
    await onAgentHost(
      host,
      `mkdir -p /run/systemd/system/${UNIT}.d && printf '[Service]\\nExecStopPost=/bin/sleep 2\\n' > /run/systemd/system/${UNIT}.d/slow.conf && systemctl daemon-reload`,
    );
  }
}

async function fastStop(hosts: FleetHost[]): Promise<void> {
  for (const host of hosts) await inHost(host, `rm -rf /run/systemd/system/${UNIT}.d && systemctl daemon-reload`);
}

/** Puts an agent host back as the fleet had it: no agent, sshd running, the probe unit as shipped. */
async function uninstallAgent(host: FleetHost): Promise<void> {
  await inHost(
    host,
    'systemctl disable --now drover-agent.service 2>/dev/null; ' +
      'rm -rf /opt/drover-agent /etc/drover-agent /var/lib/drover-agent /etc/systemd/system/drover-agent.service; ' +
      'systemctl daemon-reload; systemctl unmask --quiet drover-probe.service; systemctl enable --quiet drover-probe.service; ' +
      'systemctl start ssh.service drover-probe.service',
  );
}

/**
 * The per-host agent on booted hosts: installed by its own install script (fetched from the API)
 * as a real systemd service, with sshd stopped so nothing can reach the host but the agent calling
 * out. Every verb through it; a rolling restart across SSH and agent hosts as one fleet; an agent
 * and a worker killed mid-rollout.
 */
describe('agents on real hosts', () => {
  let api: TestApi;
  let admin: DroverClient;
  let sshHosts: FleetHost[];
  let agentHosts: FleetHost[];
  let prefix: string;
  const workers: ReturnType<typeof startNodeProcess>[] = [];
  /** The API replica the agents call (a process of its own, so it can be killed); the test's own serves the operator. */
  let agentsApi: ReturnType<typeof startNodeProcess> | undefined;
  let agentsApiUrl: string;
  let agentsApiEnv: Record<string, string>;

  async function startAgentsApi(): Promise<void> {
    const started = startNodeProcess(API, agentsApiEnv);
    try {
      await started.waitForLine((line) => line.includes('drover API listening'));
    } catch (error) {
      // An API left running would keep this file's process alive until its time limit.
      await started.stop('SIGKILL');
      throw error;
    }
    agentsApi = started;
  }

  async function startWorker(): Promise<void> {
    const worker = startNodeProcess(WORKER, {
      ...workerEnv(api.database.url, prefix),
      AGENT_OFFLINE_AFTER_MS: '20000',
      LOG_LEVEL: 'info',
    });
    await worker.waitForLine((line) => line.includes('drover worker connected'));
    workers.push(worker);
  }

  before(async () => {
    const inventory = await readFleetInventory();
    assert.ok(inventory.hosts.length >= 4, 'the fleet has at least 4 hosts');
    sshHosts = inventory.hosts.slice(0, 2);
    agentHosts = inventory.hosts.slice(-2);
    prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    const agentSettings = {
      AGENT_BUNDLE_DIR: path.resolve(__dirname, '../../agent'),
      AGENT_TASK_LEASE_MS: '5000',
      // Tasks here take a second or two: a lost one ends (and says why) well within a test's wait.
      SSH_COMMAND_TIMEOUT_MS: '30000',
    };
    api = await startTestApi({ QUEUE_PREFIX: prefix, ...agentSettings });
    admin = await api.client();
    // Listening on the fleet bridge: the hosts call this replica there, on one port across its restarts.
    const gateway = (await readFleetInstance()).gateway;
    const port = await freePort();
    agentsApiUrl = `http://${gateway}:${port}`;
    agentsApiEnv = {
      ...workerEnv(api.database.url, prefix),
      ...agentSettings,
      HOST: gateway,
      PORT: String(port),
      MIGRATE_ON_START: 'false',
      TOKEN_RATE_LIMIT_PER_MINUTE: '0',
      LOG_LEVEL: 'info',
    };
    await startAgentsApi();
    await startWorker();
    const imported = await admin.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: sshHosts.map((host) => ({ ...host, labels: { ...host.labels, mixed: 'yes' } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    await Promise.all(sshHosts.map(resetProbe));
    for (const host of agentHosts) {
      await uninstallAgent(host);
      const token = await admin.POST('/v1/agent-join-tokens', {
        body: { hostName: host.name, labels: { mixed: 'yes', transport: 'agent' } },
      });
      assert.equal(token.response.status, 201, JSON.stringify(token.error));
      const installed = await inHost(host, installCommandLine(agentsApiUrl, token.data!.joinToken), 120_000);
      assert.equal(installed.code, 0, `install on ${host.name}: ${installed.stdout}\n${installed.stderr}`);
      // From here on nothing reaches the host from outside: only the agent calls out.
      await onAgentHost(host, 'systemctl stop ssh.service ssh.socket 2>/dev/null || systemctl stop ssh.service');
    }
  });

  after(async () => {
    // What went wrong is often the worker's story: its warnings and errors, for the run's log.
    for (const worker of workers) {
      const told = worker.lines().filter((line) => /"level":(4|5|6)0/.test(line) || !line.startsWith('{'));
      const exited = worker.child.exitCode ?? worker.child.signalCode;
      if (exited !== null) process.stdout.write(`the worker had exited (${exited})\n`);
      if (told.length > 0) process.stdout.write(`worker warnings and errors:\n${told.slice(-60).join('\n')}\n`);
    }
    await Promise.all(workers.map((worker) => worker.stop('SIGTERM')));
    for (const host of agentHosts ?? []) await uninstallAgent(host);
    await agentsApi?.stop('SIGTERM');
    await api?.close();
  });

  it('runs as a systemd service installed by its install script, ready once it reached the server, sshd stopped', async () => {
    for (const host of agentHosts) {
      assert.equal(await onAgentHost(host, 'systemctl is-active drover-agent.service'), 'active');
      assert.equal(await onAgentHost(host, 'systemctl show -p Type --value drover-agent.service'), 'notify');
      assert.equal((await inHost(host, 'systemctl is-active ssh.service')).stdout.trim(), 'inactive');
    }
    const agents = (await admin.GET('/v1/agents')).data!.items;
    for (const host of agentHosts) {
      const agent = agents.find((candidate) => candidate.hostName === host.name);
      assert.equal(agent?.online, true, `${host.name} is online`);
      assert.match(agent?.facts?.systemdVersion ?? '', /^systemd \d+/);
      assert.equal(agent?.facts?.runsAsRoot, true);
    }
  });

  it('keeps the host’s units live: a change made on the host outside drover shows in the API at once (D-Bus)', async () => {
    const host = agentHosts[0]!;
    const stateOf = async (): Promise<string | undefined> => {
      const listed = await admin.GET('/v1/hosts/{name}/units', {
        params: { path: { name: host.name }, query: { limit: 1000 } },
      });
      assert.equal(listed.response.status, 200, JSON.stringify(listed.error));
      return listed.data!.items.find((unit) => unit.name === UNIT)?.activeState;
    };
    // The full listing at start: every unit of the host, ssh.service among them.
    await waitUntil(async () => (await stateOf()) === 'active', `${UNIT} is listed active`, SETTLE_MS);
    await onAgentHost(host, `systemctl stop ${UNIT}`);
    // No discovery runs for agent hosts: only systemd's signal tells the agent, which tells the API.
    await waitUntil(async () => (await stateOf()) === 'inactive', `${UNIT} shows inactive`, 15_000);
    await onAgentHost(host, `systemctl start ${UNIT}`);
    await waitUntil(async () => (await stateOf()) === 'active', `${UNIT} shows active again`, 15_000);

    // A unit that comes and goes (a transient one) is added, then forgotten once systemd unloads it.
    const transient = 'drover-live-transient.service';
    const listed = async (): Promise<boolean> => {
      const units = await admin.GET('/v1/hosts/{name}/units', {
        params: { path: { name: host.name }, query: { limit: 1000 } },
      });
      return units.data!.items.some((unit) => unit.name === transient);
    };
    try {
      await onAgentHost(host, `systemd-run --unit=${transient} sleep 600`);
      await waitUntil(listed, `${transient} is listed`, 15_000);
      await onAgentHost(host, `systemctl stop ${transient}`);
      await waitUntil(async () => !(await listed()), `${transient} is no longer listed`, 15_000);
    } finally {
      await onAgentHost(host, `systemctl stop ${transient} 2>/dev/null || true`);
    }
  });

  it('reports what units are built from, so drift groups agent hosts and diffs them (texts checked by the server)', async () => {
    const drift = async () => {
      const answer = await admin.GET('/v1/units/{name}/drift', {
        params: { path: { name: UNIT }, query: { selector: 'transport=agent' } },
      });
      assert.equal(answer.response.status, 200, JSON.stringify(answer.error));
      return answer.data!;
    };
    await waitUntil(
      async () => {
        const groups = (await drift()).groups;
        return groups.length === 1 && groups[0]!.definitionHash !== null && groups[0]!.hosts === agentHosts.length;
      },
      'both agent hosts reported one definition',
      SETTLE_MS,
    );
    const host = agentHosts[0]!;
    const dropIn = `/run/systemd/system/${UNIT}.d/agent-drift.conf`;
    try {
      // daemon-reload: systemd's Reloading signal makes the agent list and report everything again.
      await onAgentHost(
        host,
        `mkdir -p /run/systemd/system/${UNIT}.d && printf '[Service]\\nEnvironment=AGENT_DRIFT=1\\n' > ${dropIn} && systemctl daemon-reload`,
      );
      await waitUntil(
        async () => (await drift()).diff !== null,
        'the drift shows two definitions and their diff',
        SETTLE_MS,
      );
      const drifted = await drift();
      assert.deepEqual(drifted.groups.find((group) => group.hostNames.includes(host.name))?.dropInPaths, [dropIn]);
      const lines = drifted.diff!.text.split('\n');
      assert.ok(lines.includes(`+# ${dropIn}`) || lines.includes(`-# ${dropIn}`), drifted.diff!.text);
      assert.ok(lines.includes('+Environment=AGENT_DRIFT=1') || lines.includes('-Environment=AGENT_DRIFT=1'));
    } finally {
      await onAgentHost(host, `rm -rf /run/systemd/system/${UNIT}.d && systemctl daemon-reload`);
    }
  });

  it('answers the reads a health gate asks for: a unit, a probe, and a failed unit’s status and journal', async () => {
    const host = agentHosts[0]!;
    const hostId = (await admin.GET('/v1/hosts/{name}', { params: { path: { name: host.name } } })).data!.id;
    const answers = await api.app.get(AgentReads).read(
      hostId,
      host.name,
      [
        { kind: 'unit', unit: UNIT },
        { kind: 'probe', name: 'is-active', argv: ['/bin/systemctl', 'is-active', UNIT], timeoutMs: 5_000 },
        { kind: 'diagnostics', unit: UNIT, secondsAgo: 3_600 },
      ],
      20_000,
    );
    assert.deepEqual(
      answers.map((answer) => answer.kind),
      ['unit', 'probe', 'diagnostics'],
    );
    const [unit, probe, diagnostics] = answers;
    assert.equal(unit?.kind === 'unit' && unit.snapshot.activeState, 'active');
    assert.equal(probe?.kind === 'probe' && probe.exitCode, 0);
    assert.match(diagnostics?.kind === 'diagnostics' ? diagnostics.text : '', /\$ systemctl status[\s\S]*drover-probe/);
  });

  it('rotates its key (audited) and works on with the new one after a restart', async () => {
    const host = agentHosts[1]!;
    const rotated = await onAgentHost(
      host,
      'node /opt/drover-agent/drover-agent.js rotate-key --config /etc/drover-agent/config.json',
    );
    assert.match(rotated, /rotated the agent key/);
    await onAgentHost(host, 'systemctl restart drover-agent.service');
    const task = onlyTask(await actOnHost(admin, host.name, { verb: 'status', unit: UNIT }, SETTLE_MS));
    assert.equal(task.state, 'succeeded', task.reason ?? '');
    const [event] = await query<{ n: number }>(
      api.database.url,
      `SELECT count(*)::int AS n FROM audit_events WHERE action = 'agent.rotate_key' AND host_name = $1`,
      [host.name],
    );
    assert.equal(event?.n, 1);
  });

  it('carries out every verb on an agent host, each checked on the host and audited once', async () => {
    const host = agentHosts[0]!;
    const act = async (verb: string) => {
      const operation = await actOnHost(admin, host.name, { verb: verb as 'restart', unit: UNIT }, SETTLE_MS);
      const task = onlyTask(operation);
      assert.equal(task.state, 'succeeded', `${verb}: ${task.reason}`);
      return task;
    };
    const pid = () => show(host, 'MainPID');
    await act('status');
    const [startsBefore, pidBefore] = [await recorded(host, 'starts'), await pid()];
    await act('restart');
    assert.notEqual(await pid(), pidBefore);
    assert.equal(await recorded(host, 'starts'), startsBefore + 1);
    const [reloadsBefore, pidAfterRestart] = [await recorded(host, 'reloads'), await pid()];
    await act('reload');
    assert.equal(await pid(), pidAfterRestart, 'a reload keeps the main process');
    assert.equal(await recorded(host, 'reloads'), reloadsBefore + 1);
    await act('stop');
    assert.equal(await show(host, 'ActiveState'), 'inactive');
    await act('try-restart');
    assert.equal(await show(host, 'ActiveState'), 'inactive', 'try-restart leaves a stopped unit alone');
    await act('start');
    assert.equal(await show(host, 'ActiveState'), 'active');
    await act('reload-or-restart');
    await act('disable');
    assert.equal(await show(host, 'UnitFileState'), 'disabled');
    await act('enable');
    assert.equal(await show(host, 'UnitFileState'), 'enabled');
    await act('mask');
    assert.equal(await show(host, 'UnitFileState'), 'masked');
    await act('unmask');
    assert.notEqual(await show(host, 'UnitFileState'), 'masked');
    const reload = onlyTask(await actOnHost(admin, host.name, { verb: 'daemon-reload' }, SETTLE_MS));
    assert.equal(reload.state, 'succeeded', reload.reason ?? '');
    const audited = await query<{ action: string; n: number }>(
      api.database.url,
      `SELECT action, count(*)::int AS n FROM audit_events WHERE host_name = $1 AND action LIKE 'unit.%' GROUP BY action`,
      [host.name],
    );
    const counts = Object.fromEntries(audited.map((row) => [row.action, row.n]));
    assert.deepEqual(counts, {
      'unit.status': 1,
      'unit.restart': 1,
      'unit.reload': 1,
      'unit.stop': 1,
      'unit.try-restart': 1,
      'unit.start': 1,
      'unit.reload-or-restart': 1,
      'unit.disable': 1,
      'unit.enable': 1,
      'unit.mask': 1,
      'unit.unmask': 1,
      'unit.daemon-reload': 1,
    });
  });

  it('rolls a restart across SSH and agent hosts as one fleet, its health gate judged on agent reads and probes', async () => {
    const probe = await admin.PUT('/v1/probes/{name}', {
      params: { path: { name: 'probe-active' } },
      body: { argv: ['/bin/systemctl', 'is-active', '--quiet', UNIT], description: 'the probe unit is active' },
    });
    assert.ok([200, 201].includes(probe.response.status), JSON.stringify(probe.error));
    const startsBefore = await Promise.all(agentHosts.map((host) => recorded(host, 'starts')));
    const created = await startRollout(admin, {
      verb: 'restart',
      unit: UNIT,
      selector: 'mixed=yes',
      batches: { size: 2 },
      healthGate: { minHealthyTimeMs: 1_500, probes: [{ type: 'command', name: 'probe-active' }] },
    });
    const rollout = await waitForSettled(admin, created.id, SETTLE_MS);
    assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
    assert.equal(rollout.counts.succeeded, 4);
    assert.deepEqual(
      await Promise.all(agentHosts.map((host) => recorded(host, 'starts'))),
      startsBefore.map((count) => count + 1),
      'each agent host restarted exactly once',
    );
    const transports = await query<{ transport: string; n: number }>(
      api.database.url,
      `SELECT h.transport::text AS transport, count(*)::int AS n FROM rollout_hosts r JOIN hosts h ON h.id = r.host_id
        WHERE r.rollout_id = $1 AND r.state = 'succeeded' GROUP BY h.transport ORDER BY 1`,
      [created.id],
    );
    assert.deepEqual(transports, [
      { transport: 'agent', n: 2 },
      { transport: 'ssh', n: 2 },
    ]);
  });

  it('an agent cut off from the server mid-restart and reconnected: the task ends once, the unit restarted once', async () => {
    const host = agentHosts[1]!;
    await slowStop([host]);
    try {
      const startsBefore = await recorded(host, 'starts');
      const created = await admin.POST('/v1/hosts/{name}/actions', {
        params: { path: { name: host.name } },
        body: { verb: 'restart', unit: UNIT },
      });
      assert.equal(created.response.status, 202, JSON.stringify(created.error));
      await waitUntil(
        async () => (await show(host, 'ActiveState')) !== 'active',
        `${UNIT} on ${host.name} is being restarted`,
        SETTLE_MS,
      );
      // The host acts on while it cannot report; its claim lapses meanwhile (lease 5 s).
      await setPartitioned(host, true);
      try {
        await new Promise((resolve) => setTimeout(resolve, 8_000));
      } finally {
        await setPartitioned(host, false);
      }
      const operation = await waitForOperation(admin, created.data!.id, SETTLE_MS);
      const task = onlyTask(operation);
      assert.equal(task.state, 'succeeded', task.reason ?? '');
      assert.equal(await recorded(host, 'starts'), startsBefore + 1, 'restarted exactly once');
      const [audited] = await query<{ n: number }>(
        api.database.url,
        `SELECT count(*)::int AS n FROM audit_events WHERE task_id = $1`,
        [task.id],
      );
      assert.equal(audited?.n, 1, 'one outcome recorded');
    } finally {
      await fastStop([host]);
    }
  });

  it('SIGKILL of an agent, of the API it calls and of the worker mid-rollout: it completes, each agent host restarted once', async () => {
    await slowStop(agentHosts);
    try {
      const startsBefore = await Promise.all(agentHosts.map((host) => recorded(host, 'starts')));
      const created = await startRollout(admin, {
        verb: 'restart',
        unit: UNIT,
        selector: 'transport=agent',
        batches: { size: 1 },
        healthGate: { minHealthyTimeMs: 500 },
      });
      const victim = agentHosts[0]!;
      await waitUntil(
        async () => (await onAgentHost(victim, `systemctl show -p ActiveState --value ${UNIT}`)) !== 'active',
        `${UNIT} on ${victim.name} is being restarted`,
        SETTLE_MS,
      );
      // The agent dies in the middle of its restart (systemd restarts it: Restart=on-failure), and
      // so do the API replica the agents call and the worker watching the task; fresh ones take over.
      await onAgentHost(victim, 'systemctl kill --signal=SIGKILL drover-agent.service');
      await agentsApi!.stop('SIGKILL');
      const dying = workers.splice(0);
      for (const worker of dying) await worker.stop('SIGKILL');
      await startWorker();
      await startAgentsApi();
      const rollout = await waitForSettled(admin, created.id, SETTLE_MS);
      assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
      assert.deepEqual(
        await Promise.all(agentHosts.map((host) => recorded(host, 'starts'))),
        startsBefore.map((count) => count + 1),
        'each agent host restarted exactly once',
      );
    } finally {
      await fastStop(agentHosts);
    }
  });
});

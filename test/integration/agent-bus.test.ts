import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sessionBus } from '@particle/dbus-next';
import type { Verb } from '@drover/protocol';
import { HOST_CLOCK_ARGV, parseSnapshot, snapshotArgv, verbArgv } from '@drover/systemd';
import { SystemdBus } from '@drover/agent/dist/systemd-bus';
import { FleetInventory, inHost, pathInHost, readFleetInventory } from '../support/fleet';

type FleetHost = FleetInventory['hosts'][number];

const FAILED = 'drover-bus-read-failed.service';
const MASKED = 'getty@tty1.service';
/**
 * Units of every kind a snapshot describes differently: running, exited, inactive and failed
 * services, an instance, a masked unit, one with a drop-in, one systemd does not know, and units
 * of other types (some with a Result, some without, none with a MainPID).
 */
const UNITS = [
  'nginx.service',
  'drover-probe.service',
  'systemd-journal-flush.service',
  'systemd-firstboot.service',
  FAILED,
  MASKED,
  'drover-no-such-unit.service',
  'dbus.socket',
  'multi-user.target',
  'system.slice',
  'tmp.mount',
  'systemd-ask-password-wall.path',
  'init.scope',
];

/** The agent's calls to systemd, over the host's own system bus (reached through its root, as root). */
async function hostBus(host: FleetHost): Promise<SystemdBus> {
  const socket = await pathInHost(host, '/run/dbus/system_bus_socket');
  return new SystemdBus({ connect: () => sessionBus({ busAddress: `unix:path=${socket}` }) });
}

async function onHost(host: FleetHost, command: string): Promise<string> {
  const result = await inHost(host, command);
  assert.equal(result.code, 0, `${host.name}: ${command}: ${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/**
 * The agent answers a unit's state over D-Bus instead of running `systemctl show` (SystemdBus):
 * on a booted host, both must describe every kind of unit as the same snapshot. The reads connect
 * to the host's own system bus through its root, as root, as an agent on the host does.
 */
describe('the agent reads units over D-Bus as systemctl show does', () => {
  let host: FleetHost;
  let reads: SystemdBus;

  before(async () => {
    host = (await readFleetInventory()).hosts[0]!;
    // A service that failed, a masked instance and a runtime drop-in (undone after).
    await onHost(host, `systemd-run --unit=${FAILED} --property=Description=drover-bus-read /bin/false || true`);
    await onHost(host, `systemctl mask --runtime ${MASKED}`);
    await onHost(host, 'systemctl set-property --runtime nginx.service CPUWeight=50');
    reads = await hostBus(host);
  });

  after(async () => {
    reads?.close();
    if (!host) return;
    await inHost(host, `systemctl reset-failed ${FAILED}; systemctl unmask --runtime ${MASKED}`);
    await inHost(host, 'rm -rf /run/systemd/system.control/nginx.service.d && systemctl daemon-reload');
  });

  it('gives the same snapshot of each unit', async () => {
    for (const unit of UNITS) {
      const argv = snapshotArgv(unit);
      const shown = parseSnapshot(await onHost(host, argv.map((part) => `'${part}'`).join(' ')));
      const answered = await reads.answer(argv, 10_000);
      assert.ok(answered, `${unit}: answered over D-Bus, not left to systemctl`);
      assert.equal(answered.exitCode, 0);
      assert.deepEqual(parseSnapshot(answered.stdout), shown, unit);
    }
  });

  it('sees what the test set up: the failure, the mask and the drop-in', async () => {
    const read = async (unit: string) => parseSnapshot((await reads.answer(snapshotArgv(unit), 10_000))!.stdout);
    assert.equal((await read(FAILED)).activeState, 'failed');
    assert.equal((await read(MASKED)).loadState, 'masked');
    assert.equal((await read('drover-no-such-unit.service')).loadState, 'not-found');
    assert.ok((await read('nginx.service')).dropInPaths?.some((path) => path.includes('nginx.service.d')));
  });

  it("tells the running systemd's version as systemctl --version does", async () => {
    const printed = (await onHost(host, 'systemctl --version')).split('\n')[0];
    assert.equal(await reads.managerVersion(), printed);
  });

  it("answers the host clock's read with the host's clock", async () => {
    const hostClock = Number((await onHost(host, HOST_CLOCK_ARGV.join(' '))).trim());
    const answered = Number((await reads.answer(HOST_CLOCK_ARGV, 10_000))!.stdout.trim());
    assert.ok(Math.abs(answered - hostClock) < 2_000_000, `${answered} against the host's ${hostClock}`);
  });
});

const FAILING = 'drover-bus-fail.service';
const LIMITED = 'drover-bus-limit.service';
const SOCKET_ACTIVATED = 'drover-bus-sock.service';
const CHANGED = 'drover-bus-changed.service';
const MASKED_JOB = 'drover-bus-masked.service';
/** Runtime units for the job cases: a failing oneshot, one with a start limit of 1, a socket's service, one whose file changes. */
const JOB_UNIT_FILES: Record<string, string> = {
  [FAILING]: '[Service]\nType=oneshot\nExecStart=/bin/false\n',
  [LIMITED]: '[Unit]\nStartLimitIntervalSec=600\nStartLimitBurst=1\n[Service]\nExecStart=/bin/sleep infinity\n',
  'drover-bus-sock.socket': '[Socket]\nListenStream=/run/drover-bus-sock.sock\n',
  [SOCKET_ACTIVATED]: '[Service]\nExecStart=/bin/sleep infinity\n',
  [CHANGED]: '[Service]\nExecStart=/bin/sleep infinity\n',
};

interface JobCase {
  verb: Verb;
  unit: string;
  /** Shell run before each way, to bring the unit to the state the verb meets. */
  arrange: string;
  /** False where systemd refuses before queueing a job: the agent then runs systemctl, which says why. */
  answered: boolean;
  what: string;
  /** What systemctl must have said: the case met what it is about. */
  said?: RegExp;
}

const JOB_CASES: JobCase[] = [
  {
    what: 'a restart',
    verb: 'restart',
    unit: 'nginx.service',
    arrange: 'systemctl start nginx.service',
    answered: true,
  },
  { what: 'a reload', verb: 'reload', unit: 'nginx.service', arrange: 'systemctl start nginx.service', answered: true },
  {
    what: 'reload-or-restart',
    verb: 'reload-or-restart',
    unit: 'nginx.service',
    arrange: 'systemctl start nginx.service',
    answered: true,
  },
  { what: 'a stop', verb: 'stop', unit: 'nginx.service', arrange: 'systemctl start nginx.service', answered: true },
  {
    what: 'try-restart of a stopped unit',
    verb: 'try-restart',
    unit: 'nginx.service',
    arrange: 'systemctl stop nginx.service',
    answered: true,
  },
  {
    what: 'a reload of a stopped unit',
    verb: 'reload',
    unit: 'nginx.service',
    arrange: 'systemctl stop nginx.service',
    answered: true,
    said: /^nginx.service is not active, cannot reload\.\n$/,
  },
  {
    what: 'a failing start',
    verb: 'start',
    unit: FAILING,
    arrange: `systemctl reset-failed ${FAILING} || true`,
    answered: true,
    said: /^Job for drover-bus-fail.service failed because the control process exited with error code\./,
  },
  {
    what: 'a restart the start limit refuses',
    verb: 'restart',
    unit: LIMITED,
    arrange: `systemctl reset-failed ${LIMITED} || true; systemctl restart ${LIMITED}`,
    answered: true,
    said: /start of the service was attempted too often\.\n.*\nTo force a start use/,
  },
  {
    what: 'a stop while its socket is listening',
    verb: 'stop',
    unit: SOCKET_ACTIVATED,
    arrange: `systemctl start drover-bus-sock.socket ${SOCKET_ACTIVATED}`,
    answered: true,
    said: /^Warning: Stopping drover-bus-sock.service, but it can still be activated by:\n {2}drover-bus-sock.socket\n$/,
  },
  {
    what: 'a restart of a unit whose file changed on disk',
    verb: 'restart',
    unit: CHANGED,
    arrange: `systemctl daemon-reload && systemctl start ${CHANGED} && sleep 1 && echo "# changed $(date +%N)" >> /run/systemd/system/${CHANGED}`,
    answered: true,
    said: /^Warning: The unit file, source configuration file or drop-ins of drover-bus-changed.service changed on disk/,
  },
  {
    what: 'a reload the unit cannot do',
    verb: 'reload',
    unit: SOCKET_ACTIVATED,
    arrange: `systemctl start ${SOCKET_ACTIVATED}`,
    answered: false,
  },
  {
    what: 'a restart of a masked unit',
    verb: 'restart',
    unit: MASKED_JOB,
    arrange: `systemctl mask --runtime ${MASKED_JOB}`,
    answered: false,
  },
  { what: 'a start of no unit', verb: 'start', unit: 'drover-no-such-unit.service', arrange: 'true', answered: false },
];

/**
 * The agent runs the verbs that queue a job over D-Bus instead of running systemctl (SystemdBus):
 * on a booted host, each case is run both ways from the same state and must end the same, with
 * systemctl's exit code and words (warnings included); what systemd refuses before any job exists
 * is left to systemctl.
 */
describe('the agent runs unit jobs over D-Bus as systemctl does', () => {
  let host: FleetHost;
  let systemd: SystemdBus;
  const state = async (unit: string) =>
    onHost(host, `systemctl show --property=ActiveState,SubState,LoadState -- '${unit}'`);

  before(async () => {
    host = (await readFleetInventory()).hosts[0]!;
    for (const [unit, text] of Object.entries(JOB_UNIT_FILES)) {
      await onHost(host, `printf '%s' '${text}' > /run/systemd/system/${unit}`);
    }
    await onHost(host, 'systemctl daemon-reload');
    systemd = await hostBus(host);
  });

  after(async () => {
    systemd?.close();
    if (!host) return;
    await inHost(
      host,
      `systemctl stop drover-bus-sock.socket ${SOCKET_ACTIVATED} ${CHANGED} ${LIMITED}; systemctl unmask --runtime ${MASKED_JOB}; ` +
        `rm -f ${Object.keys(JOB_UNIT_FILES)
          .map((unit) => `/run/systemd/system/${unit}`)
          .join(' ')}; systemctl daemon-reload; systemctl reset-failed; systemctl start nginx.service`,
    );
  });

  for (const job of JOB_CASES) {
    it(`${job.what}: ${job.verb} ${job.unit}`, async () => {
      const argv = verbArgv(job.verb, job.unit);
      await onHost(host, job.arrange);
      const run = await inHost(host, argv.map((part) => `'${part}'`).join(' '));
      const byCommand = { exitCode: run.code, stdout: run.stdout, stderr: run.stderr };
      const afterCommand = await state(job.unit);
      if (job.said) assert.match(run.stderr, job.said, `${job.verb} ${job.unit}: the case as meant`);

      await onHost(host, job.arrange);
      const answered = await systemd.answer(argv, 60_000);
      if (!job.answered) {
        assert.equal(answered, null, `${job.unit}: left to systemctl (${run.stderr.trim()})`);
        return;
      }
      assert.deepEqual(answered, byCommand, `${job.verb} ${job.unit}: the same exit and words as systemctl`);
      assert.equal(await state(job.unit), afterCommand, `${job.verb} ${job.unit}: the same state after`);
    });
  }
});

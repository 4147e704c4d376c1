import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sessionBus } from '@particle/dbus-next';
import { HOST_CLOCK_ARGV, parseSnapshot, snapshotArgv } from '@drover/systemd';
import { SystemdReads } from '@drover/agent/dist/systemd-bus';
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

async function onHost(host: FleetHost, command: string): Promise<string> {
  const result = await inHost(host, command);
  assert.equal(result.code, 0, `${host.name}: ${command}: ${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/**
 * The agent answers a unit's state over D-Bus instead of running `systemctl show` (SystemdReads):
 * on a booted host, both must describe every kind of unit as the same snapshot. The reads connect
 * to the host's own system bus through its root, as root, as an agent on the host does.
 */
describe('the agent reads units over D-Bus as systemctl show does', () => {
  let host: FleetHost;
  let reads: SystemdReads;

  before(async () => {
    host = (await readFleetInventory()).hosts[0]!;
    // A service that failed, a masked instance and a runtime drop-in (undone after).
    await onHost(host, `systemd-run --unit=${FAILED} --property=Description=drover-bus-read /bin/false || true`);
    await onHost(host, `systemctl mask --runtime ${MASKED}`);
    await onHost(host, 'systemctl set-property --runtime nginx.service CPUWeight=50');
    const socket = await pathInHost(host, '/run/dbus/system_bus_socket');
    reads = new SystemdReads({ connect: () => sessionBus({ busAddress: `unix:path=${socket}` }) });
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
      const answered = await reads.answer(argv);
      assert.ok(answered, `${unit}: answered over D-Bus, not left to systemctl`);
      assert.equal(answered.exitCode, 0);
      assert.deepEqual(parseSnapshot(answered.stdout), shown, unit);
    }
  });

  it('sees what the test set up: the failure, the mask and the drop-in', async () => {
    const read = async (unit: string) => parseSnapshot((await reads.answer(snapshotArgv(unit)))!.stdout);
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
    const answered = Number((await reads.answer(HOST_CLOCK_ARGV))!.stdout.trim());
    assert.ok(Math.abs(answered - hostClock) < 2_000_000, `${answered} against the host's ${hostClock}`);
  });
});

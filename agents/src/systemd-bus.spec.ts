import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { type MessageBus, Variant } from '@particle/dbus-next';
import { HOST_CLOCK_ARGV, parseSnapshot, snapshotArgv } from '@drover/systemd';
import {
  managerVersionLine,
  showValue,
  snapshotShowText,
  SystemdReads,
  typeInterfaceOf,
  unitNameOfPath,
  unitPathOf,
} from './systemd-bus';

describe('unitNameOfPath', () => {
  it('reads the unit name systemd escaped into its object path', () => {
    assert.equal(unitNameOfPath('/org/freedesktop/systemd1/unit/nginx_2eservice'), 'nginx.service');
    assert.equal(unitNameOfPath('/org/freedesktop/systemd1/unit/getty_40tty1_2eservice'), 'getty@tty1.service');
    assert.equal(unitNameOfPath('/org/freedesktop/systemd1/unit/drover_2dprobe_2eservice'), 'drover-probe.service');
  });

  it('refuses paths that are not units, or not valid unit names', () => {
    assert.equal(unitNameOfPath('/org/freedesktop/systemd1/job/42'), null);
    assert.equal(unitNameOfPath('/org/freedesktop/systemd1/unit/'), null);
    assert.equal(unitNameOfPath('/org/freedesktop/systemd1/unit/no_2dsuffix'), null);
    assert.equal(unitNameOfPath('/org/freedesktop/systemd1/unit/bad_zzname_2eservice'), null);
    assert.equal(unitNameOfPath('/org/freedesktop/systemd1/unit/a_2fb_2eservice'), null, 'a slash is no unit name');
  });
});

describe('unitPathOf', () => {
  it('escapes every byte outside [A-Za-z0-9] as systemd does, and unitNameOfPath reads it back', () => {
    assert.equal(unitPathOf('nginx.service'), '/org/freedesktop/systemd1/unit/nginx_2eservice');
    assert.equal(unitPathOf('getty@tty1.service'), '/org/freedesktop/systemd1/unit/getty_40tty1_2eservice');
    for (const unit of ['drover-probe.service', 'sys-kernel-debug.mount', 'dev-disk-by\\x2duuid-1.device']) {
      assert.equal(unitNameOfPath(unitPathOf(unit)), unit);
    }
  });
});

describe('typeInterfaceOf', () => {
  it("names the interface of the unit's type", () => {
    assert.equal(typeInterfaceOf('nginx.service'), 'org.freedesktop.systemd1.Service');
    assert.equal(typeInterfaceOf('multi-user.target'), 'org.freedesktop.systemd1.Target');
    assert.equal(typeInterfaceOf('apt-daily.timer'), 'org.freedesktop.systemd1.Timer');
  });
});

describe('showValue', () => {
  it("prints each D-Bus type as systemctl show does, 64-bit numbers by the property's name", () => {
    assert.equal(showValue('Id', new Variant('s', 'nginx.service')), 'nginx.service');
    assert.equal(showValue('CanReload', new Variant('b', true)), 'yes');
    assert.equal(showValue('NeedDaemonReload', new Variant('b', false)), 'no');
    assert.equal(showValue('MainPID', new Variant('u', 47)), '47');
    assert.equal(showValue('ActiveEnterTimestamp', new Variant('t', 1796417780207088n)), 'Fri 2026-12-04 20:56:20 UTC');
    assert.equal(showValue('ActiveEnterTimestamp', new Variant('t', 0n)), '');
    assert.equal(showValue('ActiveEnterTimestampMonotonic', new Variant('t', 384860098n)), '384860098');
    assert.equal(showValue('StartLimitIntervalUSec', new Variant('t', 10000000n)), '10000000us');
    assert.equal(showValue('StartLimitIntervalUSec', new Variant('t', 0n)), '0');
    assert.equal(showValue('StartLimitIntervalUSec', new Variant('t', 2n ** 64n - 1n)), 'infinity');
    const invocation = Buffer.from('dea7aa5cd1884a7392aff4582382b496', 'hex');
    assert.equal(showValue('InvocationID', new Variant('ay', invocation)), 'dea7aa5cd1884a7392aff4582382b496');
    assert.equal(showValue('InvocationID', new Variant('ay', Buffer.alloc(0))), '');
    assert.equal(showValue('DropInPaths', new Variant('as', ['/a.conf', '/b.conf'])), '/a.conf /b.conf');
    assert.equal(showValue('Conditions', new Variant('a(sbbsi)', [])), null);
  });
});

describe('snapshotShowText', () => {
  it('reads as the same snapshot as systemctl show printed for the same unit (captured on a booted host)', () => {
    // Both read from nginx.service on a fleet host at the same moment: the properties over D-Bus
    // (GetAll of the Unit and the Service interface, the snapshot's part) and systemctl's output.
    const unitProperties = {
      Id: new Variant('s', 'nginx.service'),
      LoadState: new Variant('s', 'loaded'),
      ActiveState: new Variant('s', 'active'),
      SubState: new Variant('s', 'running'),
      UnitFileState: new Variant('s', 'enabled'),
      NeedDaemonReload: new Variant('b', false),
      ActiveEnterTimestamp: new Variant('t', 1796417780207088n),
      ActiveEnterTimestampMonotonic: new Variant('t', 384860098n),
      InvocationID: new Variant('ay', Buffer.from('dea7aa5cd1884a7392aff4582382b496', 'hex')),
      CanReload: new Variant('b', true),
      CanStart: new Variant('b', true),
      CanStop: new Variant('b', true),
      Description: new Variant('s', 'A high performance web server and a reverse proxy server'),
      FragmentPath: new Variant('s', '/lib/systemd/system/nginx.service'),
      DropInPaths: new Variant('as', []),
      StartLimitBurst: new Variant('u', 5),
      StartLimitIntervalUSec: new Variant('t', 10000000n),
      Names: new Variant('as', ['nginx.service']),
    };
    const serviceProperties = {
      MainPID: new Variant('u', 47),
      NRestarts: new Variant('u', 0),
      Result: new Variant('s', 'success'),
      ExecMainPID: new Variant('u', 47),
    };
    const printed = [
      'MainPID=47',
      'Result=success',
      'NRestarts=0',
      'Id=nginx.service',
      'Description=A high performance web server and a reverse proxy server',
      'LoadState=loaded',
      'ActiveState=active',
      'SubState=running',
      'FragmentPath=/lib/systemd/system/nginx.service',
      'DropInPaths=',
      'UnitFileState=enabled',
      'ActiveEnterTimestamp=Fri 2026-12-04 20:56:20 UTC',
      'ActiveEnterTimestampMonotonic=384860098',
      'CanStart=yes',
      'CanStop=yes',
      'CanReload=yes',
      'NeedDaemonReload=no',
      'StartLimitIntervalUSec=10s',
      'StartLimitBurst=5',
      'InvocationID=dea7aa5cd1884a7392aff4582382b496',
    ].join('\n');
    assert.deepEqual(parseSnapshot(snapshotShowText(unitProperties, serviceProperties)), parseSnapshot(printed));
  });

  it("leaves out what neither interface has, as systemctl does for a target's MainPID", () => {
    const text = snapshotShowText({ Id: new Variant('s', 'multi-user.target') }, {});
    assert.equal(text, 'Id=multi-user.target\n');
  });
});

describe('managerVersionLine', () => {
  it("prints the manager's Version as systemctl --version's first line does", () => {
    // systemctl --version on the fleet's Debian 12: "systemd 252 (252.39-1~deb12u1)".
    assert.equal(managerVersionLine('252.39-1~deb12u1'), 'systemd 252 (252.39-1~deb12u1)');
    assert.equal(managerVersionLine('256'), 'systemd 256 (256)');
    assert.equal(managerVersionLine('v257-rc1'), 'systemd v257-rc1');
  });
});

/** A bus whose calls fail as a lost connection's do. */
function brokenBus(): MessageBus {
  const bus = new EventEmitter() as unknown as MessageBus & { disconnected: boolean };
  bus.call = () => Promise.reject(new Error('connection closed'));
  bus.disconnect = () => {
    bus.disconnected = true;
  };
  return bus;
}

describe('SystemdReads.answer', () => {
  it("answers the host clock's read with this clock, in microseconds", async () => {
    const reads = new SystemdReads({ connect: brokenBus });
    const before = Date.now() * 1000;
    const answer = await reads.answer(HOST_CLOCK_ARGV);
    assert.equal(answer?.exitCode, 0);
    const microseconds = Number(answer.stdout.trim());
    assert.ok(microseconds >= before && microseconds <= Date.now() * 1000, answer.stdout);
  });

  it('leaves every other command to run (null)', async () => {
    const reads = new SystemdReads({ connect: brokenBus });
    for (const argv of [['systemctl', 'restart', '--', 'nginx.service'], ['date'], [...HOST_CLOCK_ARGV, 'x']]) {
      assert.equal(await reads.answer(argv), null, argv.join(' '));
    }
  });

  it('has no manager version when D-Bus fails (the facts then ask systemctl)', async () => {
    assert.equal(await new SystemdReads({ connect: brokenBus }).managerVersion(), null);
  });

  it('leaves the unit read to systemctl when D-Bus fails, and connects again for the next one', async () => {
    let connections = 0;
    const reads = new SystemdReads({
      connect: () => {
        connections += 1;
        return brokenBus();
      },
    });
    assert.equal(await reads.answer(snapshotArgv('nginx.service')), null);
    assert.equal(await reads.answer(snapshotArgv('nginx.service')), null);
    assert.equal(connections, 2);
  });
});

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DBusError, Message, MessageType, type MessageBus, Variant } from '@particle/dbus-next';
import { HOST_CLOCK_ARGV, parseSnapshot, snapshotArgv, verbArgv } from '@drover/systemd';
import { CommandTimeoutError } from './local-host';
import {
  jobEndText,
  MANAGER,
  managerVersionLine,
  refusedBeforeQueueing,
  showValue,
  snapshotShowText,
  SystemdBus,
  SYSTEMD_PATH,
  triggeringWarning,
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

describe('SystemdBus.answer: reads', () => {
  it("answers the host clock's read with this clock, in microseconds", async () => {
    const reads = new SystemdBus({ connect: brokenBus });
    const before = Date.now() * 1000;
    const answer = await reads.answer(HOST_CLOCK_ARGV, 1_000);
    assert.equal(answer?.exitCode, 0);
    const microseconds = Number(answer.stdout.trim());
    assert.ok(microseconds >= before && microseconds <= Date.now() * 1000, answer.stdout);
  });

  it('leaves every other command to run (null)', async () => {
    const reads = new SystemdBus({ connect: brokenBus });
    for (const argv of [
      ['systemctl', 'restart', '--', 'nginx.service'],
      ['date'],
      [...HOST_CLOCK_ARGV, 'x'],
      verbArgv('enable', 'nginx.service'),
      verbArgv('status', 'nginx.service'),
      verbArgv('daemon-reload', null),
    ]) {
      assert.equal(await reads.answer(argv, 1_000), null, argv.join(' '));
    }
  });

  it('has no manager version when D-Bus fails (the facts then ask systemctl)', async () => {
    assert.equal(await new SystemdBus({ connect: brokenBus }).managerVersion(), null);
  });

  it("reads the Unit interface whole and, beside it, only the snapshot's properties of the type's, leaving out what it lacks", async () => {
    let mainPidAsked: () => void = () => undefined;
    const askedForMainPid = new Promise<void>((resolve) => (mainPidAsked = resolve));
    const fake = new FakeSystemd(async (message) => {
      const [iface, name] = message.body as [string, string | undefined];
      if (message.member === 'GetAll' && iface === 'org.freedesktop.systemd1.Unit') {
        // Answered only once the type's properties were asked too: the reads go out together.
        const together = await Promise.race([askedForMainPid.then(() => true), sleep(500).then(() => false)]);
        if (!together) throw new Error("the Unit's GetAll was not answered: MainPID was not asked beside it");
        return [{ Id: new Variant('s', 'nginx.service'), ActiveState: new Variant('s', 'active') }];
      }
      if (message.member === 'Get' && iface === 'org.freedesktop.systemd1.Service') {
        if (name === 'MainPID') {
          mainPidAsked();
          return [new Variant('u', 4242)];
        }
        if (name === 'Result') return [new Variant('s', 'success')];
        throw new DBusError('org.freedesktop.DBus.Error.UnknownProperty', `no ${name}`);
      }
      throw new DBusError('org.freedesktop.DBus.Error.UnknownMethod', `${message.member} ${iface}`);
    });
    const answer = await new SystemdBus(busOf(fake)).answer(snapshotArgv('nginx.service'), 1_000);
    assert.deepEqual(answer, {
      exitCode: 0,
      stdout: 'Id=nginx.service\nActiveState=active\nMainPID=4242\nResult=success\n',
      stderr: '',
    });
    const asked = fake.calls.map((call) => `${call.member} ${(call.body as string[]).join(' ')}`);
    assert.ok(!asked.includes('GetAll org.freedesktop.systemd1.Service'), asked.join(', '));
    // The Unit interface lacked the rest of the snapshot: each asked of the type's once, then left out.
    const typeGets = asked.filter((call) => call.startsWith('Get org.freedesktop.systemd1.Service '));
    assert.equal(new Set(typeGets).size, typeGets.length, typeGets.join(', '));
    assert.ok(typeGets.includes('Get org.freedesktop.systemd1.Service StartLimitBurst'), typeGets.join(', '));
  });

  it('leaves the unit read to systemctl when a property read fails for another reason than its absence', async () => {
    const fake = new FakeSystemd((message) => {
      if (message.member === 'GetAll') return [{ Id: new Variant('s', 'nginx.service') }];
      throw new DBusError('org.freedesktop.DBus.Error.AccessDenied', 'not allowed');
    });
    assert.equal(await new SystemdBus(busOf(fake)).answer(snapshotArgv('nginx.service'), 1_000), null);
  });

  it('leaves the unit read to systemctl when D-Bus fails, and connects again for the next one', async () => {
    let connections = 0;
    const reads = new SystemdBus({
      connect: () => {
        connections += 1;
        return brokenBus();
      },
    });
    assert.equal(await reads.answer(snapshotArgv('nginx.service'), 1_000), null);
    assert.equal(await reads.answer(snapshotArgv('nginx.service'), 1_000), null);
    assert.equal(connections, 2);
  });
});

describe('jobEndText', () => {
  it('is nothing for a job done or skipped', () => {
    assert.equal(jobEndText('nginx.service', 'done', null), null);
    assert.equal(jobEndText('nginx.service', 'skipped', null), null);
  });

  it("says why a service's job failed by the service's Result, as systemctl 252 does", () => {
    assert.equal(
      jobEndText('nginx.service', 'failed', 'exit-code'),
      'Job for nginx.service failed because the control process exited with error code.\n' +
        'See "systemctl status nginx.service" and "journalctl -xeu nginx.service" for details.\n',
    );
    assert.equal(
      jobEndText('a\\x2db.service', 'failed', null),
      'Job for a\\x2db.service failed.\n' +
        'See "systemctl status "a\\\\x2db.service"" and "journalctl -xeu "a\\\\x2db.service"" for details.\n',
    );
    assert.match(
      jobEndText('nginx.service', 'failed', 'start-limit-hit')!,
      /attempted too often\.\n.*\nTo force a start use "systemctl reset-failed nginx.service"\nfollowed by "systemctl start nginx.service" again\.\n$/,
    );
  });

  it('names the other results in their own words', () => {
    assert.equal(jobEndText('nginx.service', 'invalid', null), 'nginx.service is not active, cannot reload.\n');
    assert.equal(jobEndText('nginx.service', 'canceled', null), 'Job for nginx.service canceled.\n');
    assert.equal(jobEndText('tmp.mount', 'failed', null), 'Job failed. See "journalctl -xe" for details.\n');
  });
});

describe('triggeringWarning', () => {
  it('lists the active units that can start the stopped one again, as systemctl stop does', () => {
    assert.equal(triggeringWarning('foo.service', []), '');
    assert.equal(
      triggeringWarning('foo.service', ['foo.socket', 'foo.path']),
      'Warning: Stopping foo.service, but it can still be activated by:\n  foo.socket\n  foo.path\n',
    );
  });
});

describe('refusedBeforeQueueing', () => {
  it("is systemd's or polkit's refusal, never a missing answer", () => {
    assert.equal(refusedBeforeQueueing(new DBusError('org.freedesktop.systemd1.UnitMasked', 'masked')), true);
    assert.equal(refusedBeforeQueueing(new DBusError('org.freedesktop.DBus.Error.AccessDenied', 'no')), true);
    assert.equal(refusedBeforeQueueing(new DBusError('org.freedesktop.DBus.Error.NoReply', 'late')), false);
    assert.equal(refusedBeforeQueueing(new Error('connection closed')), false);
  });
});

/**
 * systemd as the job calls see it: each method call is answered by `handle` (a body, or a thrown
 * DBusError); jobs end when the test says so, with JobRemoved as systemd broadcasts it.
 */
class FakeSystemd extends EventEmitter {
  readonly calls: Message[] = [];
  disconnected = false;
  constructor(private readonly handle: (message: Message) => unknown[] | Promise<unknown[]>) {
    super();
  }

  async call(message: Message): Promise<Message> {
    this.calls.push(message);
    await Promise.resolve();
    return { body: await this.handle(message) } as Message;
  }

  disconnect(): void {
    this.disconnected = true;
  }

  jobRemoved(job: string, unit: string, result: string): void {
    this.emit(
      'message',
      new Message({
        type: MessageType.SIGNAL,
        path: SYSTEMD_PATH,
        interface: MANAGER,
        member: 'JobRemoved',
        signature: 'uoss',
        body: [7, job, unit, result],
      }),
    );
  }

  methods(): string[] {
    return this.calls.map((call) => (call.member === 'Get' ? `Get ${String(call.body[1])}` : call.member));
  }
}

const JOB = '/org/freedesktop/systemd1/job/7';

/** A systemd whose job methods queue JOB and whose properties are `properties` (by name). */
function systemdWith(properties: Record<string, Variant>, onQueued?: (bus: FakeSystemd) => void): FakeSystemd {
  const bus: FakeSystemd = new FakeSystemd((message) => {
    if (message.member === 'AddMatch') return [];
    if (message.member === 'Get') {
      const value = properties[String(message.body[1])];
      if (!value) throw new DBusError('org.freedesktop.DBus.Error.UnknownProperty', 'no such property');
      return [value];
    }
    onQueued?.(bus);
    return [JOB];
  });
  return bus;
}

function busOf(fake: FakeSystemd): { connect: () => MessageBus } {
  return { connect: () => fake as unknown as MessageBus };
}

describe('SystemdBus.answer: jobs', () => {
  it("restarts through the Manager's RestartUnit and answers once systemd removed the job, done", async () => {
    const fake = systemdWith({ NeedDaemonReload: new Variant('b', false) });
    const answering = new SystemdBus(busOf(fake)).answer(verbArgv('restart', 'nginx.service'), 5_000);
    setTimeout(() => fake.jobRemoved(JOB, 'nginx.service', 'done'), 20);
    assert.deepEqual(await answering, { exitCode: 0, stdout: '', stderr: '' });
    const queued = fake.calls.find((call) => call.member === 'RestartUnit')!;
    assert.deepEqual(queued.body, ['nginx.service', 'replace']);
    assert.equal(fake.methods()[0], 'AddMatch', 'JobRemoved is matched before any job is queued');
  });

  it('takes a JobRemoved that came before the reply was read', async () => {
    const fake = systemdWith({}, (bus) => bus.jobRemoved(JOB, 'nginx.service', 'done'));
    assert.equal((await new SystemdBus(busOf(fake)).answer(verbArgv('start', 'nginx.service'), 5_000))?.exitCode, 0);
  });

  it("fails as systemctl does when the job failed, saying why from the service's Result", async () => {
    const fake = systemdWith({ Result: new Variant('s', 'exit-code'), NeedDaemonReload: new Variant('b', true) });
    const answering = new SystemdBus(busOf(fake)).answer(verbArgv('start', 'nginx.service'), 5_000);
    setTimeout(() => fake.jobRemoved(JOB, 'nginx.service', 'failed'), 20);
    const answer = await answering;
    assert.equal(answer?.exitCode, 1);
    assert.match(
      answer.stderr,
      /^Warning: The unit file.*nginx.service changed on disk.*\nJob for nginx.service failed because the control process exited with error code\.\n/,
    );
  });

  it('warns after a stop when an active unit can start it again', async () => {
    const fake = systemdWith({
      LoadState: new Variant('s', 'loaded'),
      TriggeredBy: new Variant('as', ['foo.socket']),
      ActiveState: new Variant('s', 'active'),
    });
    const answering = new SystemdBus(busOf(fake)).answer(verbArgv('stop', 'foo.service'), 5_000);
    setTimeout(() => fake.jobRemoved(JOB, 'foo.service', 'done'), 20);
    const answer = await answering;
    assert.equal(answer?.exitCode, 0);
    assert.equal(answer.stderr, 'Warning: Stopping foo.service, but it can still be activated by:\n  foo.socket\n');
  });

  it('leaves a job systemd refused before queueing it to systemctl (null), which says why', async () => {
    const fake = new FakeSystemd((message) => {
      if (message.member === 'AddMatch') return [];
      throw new DBusError('org.freedesktop.systemd1.UnitMasked', 'Unit nginx.service is masked.');
    });
    assert.equal(await new SystemdBus(busOf(fake)).answer(verbArgv('restart', 'nginx.service'), 5_000), null);
  });

  it('never runs a job twice: a call without a reply fails instead of falling back to systemctl', async () => {
    const fake = new FakeSystemd((message) => {
      if (message.member === 'AddMatch') return [];
      throw new DBusError('org.freedesktop.DBus.Error.NoReply', 'Did not receive a reply.');
    });
    const answer = await new SystemdBus(busOf(fake)).answer(verbArgv('restart', 'nginx.service'), 5_000);
    assert.deepEqual(answer, {
      exitCode: 1,
      stdout: '',
      stderr: 'Failed to restart nginx.service: Did not receive a reply.\n',
    });
  });

  it('fails as a command past its time when the job outlasts the timeout', async () => {
    const fake = systemdWith({});
    await assert.rejects(
      new SystemdBus(busOf(fake)).answer(verbArgv('reload', 'nginx.service'), 50),
      (error: unknown) => error instanceof CommandTimeoutError && error.timeoutMs === 50,
    );
  });

  it('fails the job it awaited when the connection is lost, and connects anew for the next call', async () => {
    let connections = 0;
    let fake = systemdWith({});
    const systemd = new SystemdBus({
      connect: () => {
        connections += 1;
        fake = systemdWith({});
        return fake as unknown as MessageBus;
      },
    });
    const answering = systemd.answer(verbArgv('restart', 'nginx.service'), 5_000);
    const first = fake;
    setTimeout(() => first.emit('error', new Error('Connection reset by peer')), 20);
    const answer = await answering;
    assert.equal(answer?.exitCode, 1);
    assert.match(answer.stderr, /^Failed to wait for response: Connection reset by peer\n$/);
    assert.equal(first.disconnected, true);
    const next = systemd.answer(verbArgv('restart', 'nginx.service'), 5_000);
    setTimeout(() => fake.jobRemoved(JOB, 'nginx.service', 'done'), 20);
    assert.equal((await next)?.exitCode, 0);
    assert.equal(connections, 2);
  });
});

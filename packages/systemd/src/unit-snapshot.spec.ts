import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TRANSITIONAL_STATES, type UnitSnapshot, unitSnapshotSchema } from '@drover/protocol';
import { parseSnapshot, SNAPSHOT_PROPERTIES, snapshotArgv, snapshotArgvUnit } from './unit-snapshot';
import { ACTIVATING, MASKED_TIMER, NOT_FOUND, STATIC } from './fixtures/systemctl-show';

// `systemctl show --property=…` output captured on the nspawn test fleet (Debian 12, systemd 252.39),
// byte for byte: systemd prints the properties in its own order, not the requested one.
const NGINX = `MainPID=45
Result=success
NRestarts=0
Id=nginx.service
Description=A high performance web server and a reverse proxy server
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ActiveEnterTimestamp=Sat 2026-11-21 06:29:25 UTC
ActiveEnterTimestampMonotonic=2153285050
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
StartLimitIntervalUSec=10s
StartLimitBurst=5
InvocationID=3d3848ee0a924ea09c41e7752d9844ef
FragmentPath=/lib/systemd/system/nginx.service
DropInPaths=
`;
const MASKED_INSTANCE = `MainPID=0
Result=success
NRestarts=0
Id=getty@tty1.service
Description=getty@tty1.service
LoadState=masked
ActiveState=inactive
SubState=dead
UnitFileState=masked
ActiveEnterTimestamp=
ActiveEnterTimestampMonotonic=0
CanStart=no
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=
FragmentPath=
DropInPaths=
`;
const INSTANCE = `MainPID=0
Result=success
NRestarts=0
Id=getty@tty2.service
Description=Getty on tty2
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=disabled
ActiveEnterTimestamp=
ActiveEnterTimestampMonotonic=0
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=
FragmentPath=
DropInPaths=
`;
const TARGET = `Id=multi-user.target
Description=Multi-User System
LoadState=loaded
ActiveState=active
SubState=active
UnitFileState=static
ActiveEnterTimestamp=Sat 2026-11-21 06:29:25 UTC
ActiveEnterTimestampMonotonic=2153374866
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=297a209aa36d4a7798d3d3fe94dbe194
FragmentPath=
DropInPaths=
`;
const SOCKET = `Result=success
Id=dbus.socket
Description=D-Bus System Message Bus Socket
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=static
ActiveEnterTimestamp=Sat 2026-11-21 06:29:25 UTC
ActiveEnterTimestampMonotonic=2153198174
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=4b14e96c452647baaab0bf74a1b4de6c
FragmentPath=
DropInPaths=
`;
const SLICE = `Id=system.slice
Description=System Slice
LoadState=loaded
ActiveState=active
SubState=active
UnitFileState=
ActiveEnterTimestamp=Sat 2026-11-21 06:29:24 UTC
ActiveEnterTimestampMonotonic=2153040597
CanStart=yes
CanStop=no
CanReload=no
NeedDaemonReload=no
InvocationID=
FragmentPath=
DropInPaths=
`;
const DEVICE = `Id=dev-host0.device
Description=/dev/host0
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=
ActiveEnterTimestamp=
ActiveEnterTimestampMonotonic=0
CanStart=no
CanStop=no
CanReload=no
NeedDaemonReload=no
InvocationID=
FragmentPath=
DropInPaths=
`;
const FAILED = `MainPID=0
Result=exit-code
NRestarts=0
Id=drover-fail.service
Description=/bin/false
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=transient
ActiveEnterTimestamp=Sat 2026-11-21 06:31:48 UTC
ActiveEnterTimestampMonotonic=2296324841
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=f226ae1b4f66486cb5f73603a67b9f12
FragmentPath=
DropInPaths=
`;

/** systemd's format_timespan(…, accuracy 0), as `systemctl show` prints a *USec property. */
function formatTimespan(microseconds: string): string {
  if (microseconds === 'infinity' || microseconds === '0') return microseconds;
  const units: [string, bigint][] = [
    ['y', 31_557_600_000_000n],
    ['month', 2_629_800_000_000n],
    ['w', 604_800_000_000n],
    ['d', 86_400_000_000n],
    ['h', 3_600_000_000n],
    ['min', 60_000_000n],
    ['s', 1_000_000n],
    ['ms', 1_000n],
    ['us', 1n],
  ];
  const parts: string[] = [];
  let rest = BigInt(microseconds);
  for (const [suffix, size] of units) {
    if (rest <= 0n) break;
    if (rest < size) continue;
    const whole = rest / size;
    const fraction = rest % size;
    // Below a minute, what is left goes after a dot: "1.500000s", "2.250ms".
    if (rest < 60_000_000n && fraction > 0n && size > 1n) {
      const digits = String(size).length - 1;
      parts.push(`${whole}.${String(fraction).padStart(digits, '0')}${suffix}`);
      rest = 0n;
    } else {
      parts.push(`${whole}${suffix}`);
      rest = fraction;
    }
  }
  return parts.join(' ');
}

/** Formats a snapshot the way systemd 252 does, so parsing can be checked against any value. */
function format(s: UnitSnapshot, order: readonly string[]): string {
  const type = s.id.slice(s.id.lastIndexOf('.') + 1);
  const lines: Record<string, string> = {
    Id: s.id,
    LoadState: s.loadState,
    ActiveState: s.activeState,
    SubState: s.subState,
    UnitFileState: s.unitFileState ?? '',
    NeedDaemonReload: s.needDaemonReload ? 'yes' : 'no',
    ActiveEnterTimestamp: s.activeEnterTimestamp ?? '',
    ActiveEnterTimestampMonotonic: s.activeEnterTimestampMonotonic,
    InvocationID: s.invocationId ?? '',
    CanReload: s.canReload ? 'yes' : 'no',
    CanStart: s.canStart ? 'yes' : 'no',
    CanStop: s.canStop ? 'yes' : 'no',
    Description: s.description ?? s.id,
    FragmentPath: s.fragmentPath ?? '',
    DropInPaths: (s.dropInPaths ?? []).join(' '),
  };
  if (s.startLimitBurst != null) lines.StartLimitBurst = String(s.startLimitBurst);
  if (s.startLimitIntervalUSec != null) lines.StartLimitIntervalUSec = formatTimespan(s.startLimitIntervalUSec);
  if (type === 'service') {
    lines.MainPID = String(s.mainPid ?? 0);
    lines.NRestarts = String(s.nRestarts);
  }
  if (s.result !== null || ['service', 'socket', 'mount', 'timer'].includes(type)) lines.Result = s.result ?? '';
  return order
    .filter((name) => name in lines)
    .map((name) => `${name}=${lines[name]}\n`)
    .join('');
}

describe('snapshotArgv', () => {
  it('asks systemctl show for exactly the snapshot properties, the unit after "--"', () => {
    assert.deepEqual(snapshotArgv('nginx.service'), [
      'systemctl',
      'show',
      '--no-pager',
      '--property=Id,LoadState,ActiveState,SubState,MainPID,NRestarts,UnitFileState,NeedDaemonReload,ActiveEnterTimestamp,ActiveEnterTimestampMonotonic,InvocationID,CanReload,CanStart,CanStop,Result,Description,FragmentPath,DropInPaths,StartLimitBurst,StartLimitIntervalUSec',
      '--',
      'nginx.service',
    ]);
    assert.deepEqual(snapshotArgv('getty@tty1.service').slice(-2), ['--', 'getty@tty1.service']);
  });

  it('refuses names that are not unit names, naming the problem', () => {
    for (const name of ['', '--all', '-.mount', 'nginx', 'nginx.service; reboot', 'a b.service', 'x\n.service']) {
      assert.throws(() => snapshotArgv(name), /refusing unit name/, JSON.stringify(name));
    }
  });

  it('refuses a template, which systemd has no state for, and says what to name instead', () => {
    // On the fleet: "Failed to get properties: Unit name getty@.service is neither a valid invocation ID nor unit name."
    assert.throws(() => snapshotArgv('getty@.service'), /getty@\.service is a template.*getty@NAME\.service/);
  });
});

describe('snapshotArgvUnit', () => {
  it("names the unit of snapshotArgv's own argv", () => {
    assert.equal(snapshotArgvUnit(snapshotArgv('nginx.service')), 'nginx.service');
    assert.equal(snapshotArgvUnit(snapshotArgv('getty@tty1.service')), 'getty@tty1.service');
  });

  it('is null for any other argv: other properties, more units, another command, a template', () => {
    const argv = snapshotArgv('nginx.service');
    for (const other of [
      [],
      ['systemctl', 'show', '--no-pager', '--property=Id', '--', 'nginx.service'],
      [...argv.slice(0, -1), 'nginx.service', 'ssh.service'],
      ['systemctl', 'restart', '--', 'nginx.service'],
      ['sudo', '-n', ...argv],
      [...argv.slice(0, -1), 'getty@.service'],
      [...argv.slice(0, -1), '--all'],
    ]) {
      assert.equal(snapshotArgvUnit(other), null, JSON.stringify(other));
    }
  });
});

describe('parseSnapshot', () => {
  it('gives exactly what unitSnapshotSchema (the API and openapi.json) describes, for every unit type captured', () => {
    const captured = { NGINX, MASKED_INSTANCE, INSTANCE, TARGET, SOCKET, SLICE, DEVICE, FAILED };
    const fixtures = { NOT_FOUND, STATIC, MASKED_TIMER, ACTIVATING };
    for (const [name, output] of Object.entries({ ...captured, ...fixtures })) {
      const parsed = unitSnapshotSchema.safeParse(parseSnapshot(output));
      assert.ok(parsed.success, `${name}: ${JSON.stringify(parsed.error?.issues)}`);
    }
  });

  it('reads an active service', () => {
    assert.deepEqual(parseSnapshot(NGINX), {
      id: 'nginx.service',
      loadState: 'loaded',
      activeState: 'active',
      subState: 'running',
      mainPid: 45,
      nRestarts: 0,
      unitFileState: 'enabled',
      needDaemonReload: false,
      activeEnterTimestamp: 'Sat 2026-11-21 06:29:25 UTC',
      activeEnterTimestampMonotonic: '2153285050',
      invocationId: '3d3848ee0a924ea09c41e7752d9844ef',
      canReload: true,
      canStart: true,
      canStop: true,
      result: 'success',
      description: 'A high performance web server and a reverse proxy server',
      fragmentPath: '/lib/systemd/system/nginx.service',
      dropInPaths: [],
      startLimitBurst: 5,
      startLimitIntervalUSec: '10000000',
    } satisfies UnitSnapshot);
  });

  it('reads a unit systemd does not know: no pid, no unit file, no invocation, no description of its own', () => {
    assert.deepEqual(parseSnapshot(NOT_FOUND), {
      id: 'nope.service',
      loadState: 'not-found',
      activeState: 'inactive',
      subState: 'dead',
      mainPid: null,
      nRestarts: 0,
      unitFileState: null,
      needDaemonReload: false,
      activeEnterTimestamp: null,
      activeEnterTimestampMonotonic: '0',
      invocationId: null,
      canReload: false,
      canStart: false,
      canStop: true,
      result: 'success',
      description: null,
      fragmentPath: null,
      dropInPaths: [],
      startLimitBurst: 5,
      startLimitIntervalUSec: '10000000',
    } satisfies UnitSnapshot);
  });

  it('reads static, masked, disabled-instance and failed services', () => {
    const journald = parseSnapshot(STATIC);
    assert.equal(journald.unitFileState, 'static');
    assert.equal(journald.canReload, false);
    assert.equal(journald.mainPid, 17);

    const masked = parseSnapshot(MASKED_INSTANCE);
    assert.deepEqual([masked.id, masked.loadState, masked.unitFileState], ['getty@tty1.service', 'masked', 'masked']);
    assert.equal(masked.description, null, 'a masked unit shows its name as description');

    const instance = parseSnapshot(INSTANCE);
    assert.deepEqual(
      [instance.id, instance.unitFileState, instance.description],
      ['getty@tty2.service', 'disabled', 'Getty on tty2'],
    );

    const failed = parseSnapshot(FAILED);
    assert.deepEqual(
      [failed.activeState, failed.subState, failed.result, failed.unitFileState],
      ['failed', 'failed', 'exit-code', 'transient'],
    );
    assert.equal(failed.mainPid, null);
  });

  it('reads a unit on its way up: pid set, no activation time yet', () => {
    const slow = parseSnapshot(ACTIVATING);
    assert.equal(slow.activeState, 'activating');
    assert.ok(TRANSITIONAL_STATES.includes(slow.activeState));
    assert.equal(slow.mainPid, 750);
    assert.equal(slow.activeEnterTimestamp, null);
    assert.equal(slow.activeEnterTimestampMonotonic, '0');
  });

  it('reads unit types without MainPID, NRestarts or Result as null there', () => {
    const timer = parseSnapshot(MASKED_TIMER);
    assert.deepEqual(
      [timer.mainPid, timer.nRestarts, timer.result, timer.loadState],
      [null, null, 'success', 'masked'],
    );
    const target = parseSnapshot(TARGET);
    assert.deepEqual(
      [target.mainPid, target.nRestarts, target.result, target.unitFileState],
      [null, null, null, 'static'],
    );
    const socket = parseSnapshot(SOCKET);
    assert.deepEqual([socket.mainPid, socket.result, socket.subState], [null, 'success', 'running']);
    const slice = parseSnapshot(SLICE);
    assert.deepEqual(
      [slice.activeState, slice.invocationId, slice.unitFileState, slice.canStop],
      ['active', null, null, false],
    );
    const device = parseSnapshot(DEVICE);
    assert.deepEqual([device.id, device.description, device.result], ['dev-host0.device', '/dev/host0', null]);
  });

  it('accepts CRLF line ends and ignores lines that are not snapshot properties', () => {
    const parsed = parseSnapshot(`Warning: something\r\n${NGINX.replaceAll('\n', '\r\n')}Other=1\r\n`);
    assert.deepEqual(parsed, parseSnapshot(NGINX));
  });

  it('keeps everything after the first "=" of a value', () => {
    const parsed = parseSnapshot(NGINX.replace(/^Description=.*$/m, 'Description=a=b = c'));
    assert.equal(parsed.description, 'a=b = c');
  });

  it('keeps monotonic timestamps beyond 2^53 exact', () => {
    const parsed = parseSnapshot(
      NGINX.replace(/^ActiveEnterTimestampMonotonic=.*$/m, 'ActiveEnterTimestampMonotonic=18446744073709551615'),
    );
    assert.equal(parsed.activeEnterTimestampMonotonic, '18446744073709551615');
  });

  it('reads the start limit, and takes its absence (systemd before 230) as unknown', () => {
    const shown = (interval: string) =>
      parseSnapshot(NGINX.replace('StartLimitIntervalUSec=10s', `StartLimitIntervalUSec=${interval}`));
    // Printed on the fleet for StartLimitIntervalSec= 1500ms, 90s, 61500ms, 1h, 2d, infinity and 0.
    assert.equal(shown('1.500000s').startLimitIntervalUSec, '1500000');
    assert.equal(shown('1min 30s').startLimitIntervalUSec, '90000000');
    assert.equal(shown('1min 1.500000s').startLimitIntervalUSec, '61500000');
    assert.equal(shown('1h').startLimitIntervalUSec, '3600000000');
    assert.equal(shown('2d').startLimitIntervalUSec, '172800000000');
    assert.equal(shown('infinity').startLimitIntervalUSec, 'infinity');
    assert.equal(shown('0').startLimitIntervalUSec, '0');
    assert.throws(() => shown('10 s'), /StartLimitIntervalUSec=10 s; expected a time span/);
    assert.throws(() => parseSnapshot(NGINX.replace('StartLimitBurst=5', 'StartLimitBurst=-1')), /StartLimitBurst=-1/);
    const old = parseSnapshot(NGINX.replace(/^StartLimit.*\n/gm, ''));
    assert.deepEqual([old.startLimitBurst, old.startLimitIntervalUSec], [null, null]);
  });

  it('names a missing property', () => {
    const optional: readonly string[] = ['StartLimitBurst', 'StartLimitIntervalUSec'];
    for (const name of SNAPSHOT_PROPERTIES.filter((property) => !optional.includes(property))) {
      const without = NGINX.replace(new RegExp(`^${name}=.*\\n`, 'm'), '');
      assert.throws(() => parseSnapshot(without), new RegExp(`no ${name}= line`), name);
    }
    assert.throws(() => parseSnapshot(''), /systemctl show output for the unit has no Id= line/);
    assert.throws(() => parseSnapshot(FAILED.replace(/^Result=.*\n/m, '')), /drover-fail\.service has no Result= line/);
    assert.throws(() => parseSnapshot(SOCKET.replace(/^Result=.*\n/m, '')), /dbus\.socket has no Result= line/);
  });

  it('refuses malformed values, naming property and value', () => {
    assert.throws(
      () => parseSnapshot(NGINX.replace('CanReload=yes', 'CanReload=maybe')),
      /CanReload=maybe; expected yes or no/,
    );
    assert.throws(
      () => parseSnapshot(NGINX.replace('MainPID=45', 'MainPID=-1')),
      /MainPID=-1; expected a non-negative integer/,
    );
    assert.throws(
      () => parseSnapshot(NGINX.replace('NRestarts=0', 'NRestarts=')),
      /NRestarts=; expected a non-negative/,
    );
    assert.throws(
      () =>
        parseSnapshot(NGINX.replace('ActiveEnterTimestampMonotonic=2153285050', 'ActiveEnterTimestampMonotonic=1e9')),
      /ActiveEnterTimestampMonotonic=1e9/,
    );
    assert.throws(() => parseSnapshot(NGINX.replace('ActiveState=active', 'ActiveState=')), /empty ActiveState=/);
    assert.throws(() => parseSnapshot(NGINX.replace('Id=nginx.service', 'Id=')), /empty Id=/);
  });

  it('refuses the output of more than one unit', () => {
    assert.throws(() => parseSnapshot(`${NGINX}\n${STATIC}`), /has MainPID= twice: it describes more than one unit/);
  });

  describe('properties', () => {
    const word = fc.stringMatching(/^[a-z][a-z-]{0,15}$/);
    const text = fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !/[\r\n]/.test(s));
    const snapshot: fc.Arbitrary<UnitSnapshot> = fc
      .record({
        base: fc.stringMatching(/^[a-z][a-z0-9@_-]{0,20}$/),
        type: fc.constantFrom('service', 'socket', 'target', 'timer', 'mount', 'device', 'slice'),
        loadState: word,
        activeState: word,
        subState: word,
        mainPid: fc.option(fc.integer({ min: 1, max: 4_194_304 }), { nil: null }),
        nRestarts: fc.nat(),
        unitFileState: fc.option(word, { nil: null }),
        needDaemonReload: fc.boolean(),
        activeEnterTimestamp: fc.option(text, { nil: null }),
        monotonic: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        invocationId: fc.option(fc.stringMatching(/^[0-9a-f]{32}$/), { nil: null }),
        canReload: fc.boolean(),
        canStart: fc.boolean(),
        canStop: fc.boolean(),
        result: fc.option(word, { nil: null }),
        description: fc.option(text, { nil: null }),
        fragmentPath: fc.option(fc.stringMatching(/^\/[a-z0-9/._-]{1,40}$/), { nil: null }),
        dropInPaths: fc.array(fc.stringMatching(/^\/[a-z0-9/._-]{1,40}\.conf$/), { maxLength: 3 }),
        startLimitBurst: fc.option(fc.nat({ max: 2 ** 32 - 1 }), { nil: null }),
        startLimitIntervalUSec: fc.option(
          fc.oneof(
            fc.constantFrom('infinity', '0'),
            fc.bigInt({ min: 1n, max: 2n ** 64n - 2n }).map(String),
            // Whole seconds and minutes, as units are mostly configured.
            fc.integer({ min: 1, max: 100_000 }).map((seconds) => String(BigInt(seconds) * 1_000_000n)),
          ),
          { nil: null },
        ),
      })
      .map((r) => {
        const id = `${r.base}.${r.type}`;
        const service = r.type === 'service';
        return {
          id,
          loadState: r.loadState,
          activeState: r.activeState,
          subState: r.subState,
          mainPid: service ? r.mainPid : null,
          nRestarts: service ? r.nRestarts : null,
          unitFileState: r.unitFileState,
          needDaemonReload: r.needDaemonReload,
          activeEnterTimestamp: r.activeEnterTimestamp,
          activeEnterTimestampMonotonic: String(r.monotonic),
          invocationId: r.invocationId,
          canReload: r.canReload,
          canStart: r.canStart,
          canStop: r.canStop,
          result: r.result,
          description: r.description === id ? null : r.description,
          fragmentPath: r.fragmentPath,
          dropInPaths: r.dropInPaths,
          startLimitBurst: r.startLimitBurst,
          startLimitIntervalUSec: r.startLimitIntervalUSec,
        };
      });
    const order = fc.shuffledSubarray([...SNAPSHOT_PROPERTIES], {
      minLength: SNAPSHOT_PROPERTIES.length,
      maxLength: SNAPSHOT_PROPERTIES.length,
    });

    it('parseSnapshot(format(s)) is s, whatever the order of the lines', () => {
      fc.assert(
        fc.property(snapshot, order, (s, names) => {
          assert.deepEqual(parseSnapshot(format(s, names)), s);
        }),
        { numRuns: 500 },
      );
    });

    it('never returns half a snapshot: any output either parses completely or throws an Error', () => {
      const line = fc.oneof(
        fc.tuple(fc.constantFrom(...SNAPSHOT_PROPERTIES), fc.string({ maxLength: 12 })).map(([k, v]) => `${k}=${v}`),
        fc.string({ maxLength: 20 }),
      );
      fc.assert(
        fc.property(fc.array(line, { maxLength: 25 }), (lines) => {
          try {
            const s = parseSnapshot(lines.join('\n'));
            assert.ok(s.id !== '' && s.loadState !== '' && /^\d+$/.test(s.activeEnterTimestampMonotonic));
          } catch (error) {
            assert.ok(error instanceof Error && /systemctl show output/.test(error.message), String(error));
          }
        }),
        { numRuns: 500 },
      );
    });

    it('snapshotArgv puts any valid unit name, and nothing else, after "--"', () => {
      const name = fc
        .tuple(
          fc.stringMatching(/^[A-Za-z0-9:_.\\][A-Za-z0-9:_.\\-]{0,30}$/),
          fc.constantFrom('service', 'timer', 'mount'),
        )
        .map(([body, type]) => `${body}.${type}`);
      fc.assert(
        fc.property(name, (unit) => {
          const argv = snapshotArgv(unit);
          assert.deepEqual(argv.slice(argv.indexOf('--') + 1), [unit]);
        }),
        { numRuns: 300 },
      );
    });
  });
});

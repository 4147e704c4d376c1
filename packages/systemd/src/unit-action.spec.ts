import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type DaemonReloadPolicy,
  unitActionOutcomeSchema,
  type UnitSnapshot,
  type UnitTaskSpec,
  type Verb,
} from '@drover/protocol';
import { FakeHost, showText, utcTimestamp } from './fixtures/fake-host';
import { START_JOURNAL_SINCE_MARGIN_S, startJournalArgv } from './start-limit';
import { STATIC } from './fixtures/systemctl-show';
import { parseSnapshot, SNAPSHOT_PROPERTIES } from './unit-snapshot';
import { type ActionProgress, carryOut, type EarlierAttempt, readUnit } from './unit-action';

const UNIT = 'nginx.service';
const SECOND_US = 1_000_000;

/** nginx.service, running (from a journald read captured on the fleet), with a start limit. */
function unit(overrides: Partial<UnitSnapshot> = {}): UnitSnapshot {
  return {
    ...parseSnapshot(STATIC),
    id: UNIT,
    mainPid: 100,
    unitFileState: 'enabled',
    invocationId: 'first',
    canReload: true,
    startLimitBurst: 3,
    startLimitIntervalUSec: String(20 * SECOND_US),
    ...overrides,
  };
}

interface Run {
  host: FakeHost;
  verb: Verb;
  unit?: string | null;
  daemonReload?: DaemonReloadPolicy;
  earlier?: Partial<EarlierAttempt>;
  /** What hooks.stoppedMeanwhile answers. */
  stopped?: string | null;
}

/** Carries out a spec on the fake host; the hooks write into its log, as a task runner's would. */
async function act({ host, verb, unit: name = UNIT, daemonReload = 'refuse', earlier = {}, stopped = null }: Run) {
  const spec: UnitTaskSpec = { verb, unit: name, timeoutMs: 30_000, settleTimeoutMs: 5_000, daemonReload };
  const progress: ActionProgress = { before: earlier.before ?? null, reloaded: false };
  const cleared: (UnitSnapshot | null)[] = [];
  const waits: string[] = [];
  const streamed: string[] = [];
  const outcome = await carryOut({
    host,
    spec,
    earlier: { before: null, clearedMsAgo: null, ...earlier },
    progress,
    clock: host,
    hooks: {
      clearToAct: (before) => {
        host.log.push('store before');
        cleared.push(before);
        return Promise.resolve();
      },
      waitingForStartLimit: (reason) => {
        waits.push(reason);
        return Promise.resolve();
      },
      stoppedMeanwhile: () => Promise.resolve(stopped),
      onOutput: (chunk) => streamed.push(chunk),
    },
  });
  // Whatever it reports is what the protocol promises.
  assert.deepEqual(unitActionOutcomeSchema.parse(outcome), outcome);
  return { outcome, cleared, waits, streamed, progress };
}

describe('carrying out a task spec', () => {
  it('reads, pauses until the state before is stored, then acts and verifies, in one session', async () => {
    const host = new FakeHost(unit({ activeState: 'inactive', subState: 'dead', mainPid: null }));
    const { outcome, cleared } = await act({ host, verb: 'start' });
    assert.equal(outcome.result, 'succeeded');
    assert.equal(outcome.verdict?.outcome, 'ok');
    assert.equal(outcome.before?.activeState, 'inactive');
    assert.equal(outcome.after?.activeState, 'active');
    assert.equal(outcome.exitCode, 0);
    assert.equal(outcome.daemonReloaded, false);
    assert.deepEqual(cleared, [outcome.before]);
    const at = (line: string) => host.log.indexOf(line);
    assert.ok(
      at('store before') < at('go') && at('go') < at(`systemctl --no-ask-password --no-pager start -- ${UNIT}`),
    );
    assert.equal(host.log.filter((line) => line === 'pause').length, 1);
  });

  it('reads the unit again while it is in transition, and says when it did not settle in time', async () => {
    const host = new FakeHost(unit());
    host.transitions.push({}, { activeState: 'activating', subState: 'start' }, { activeState: 'activating' });
    const settled = await act({ host, verb: 'restart' });
    assert.equal(settled.outcome.result, 'succeeded');
    assert.match(settled.outcome.reason, /restarted/);
    assert.equal(host.log.filter((line) => line.startsWith('systemctl show')).length, 4);

    const stuck = new FakeHost(unit());
    stuck.script = (argv) =>
      argv[1] === 'show' && stuck.log.includes('go')
        ? { exitCode: 0, stdout: showTextOf(stuck, { activeState: 'activating', subState: 'start' }), stderr: '' }
        : undefined;
    const { outcome } = await act({ host: stuck, verb: 'restart' });
    assert.equal(outcome.result, 'failed');
    assert.match(outcome.reason, /^did not settle: after restart, nginx.service is still in transition/);
    assert.equal(outcome.verdict?.outcome, 'settling');
  });

  it('fails with systemctl’s words when the verb exits non-zero, keeping its output', async () => {
    const host = new FakeHost(unit({ activeState: 'inactive', subState: 'dead', mainPid: null }));
    host.script = (argv) =>
      argv.includes('start') && argv[0] === 'systemctl' && argv[1] === '--no-ask-password'
        ? { exitCode: 1, stdout: '', stderr: 'Job for nginx.service failed.\nSee the journal.\n' }
        : undefined;
    const { outcome } = await act({ host, verb: 'start' });
    assert.equal(outcome.result, 'failed');
    assert.equal(outcome.exitCode, 1);
    assert.equal(outcome.reason, 'systemctl start exited 1: Job for nginx.service failed. See the journal.');
    assert.equal(outcome.output, 'Job for nginx.service failed.\nSee the journal.');
  });

  it('reads the failed unit’s status and journal, and names its own first error in the reason', async () => {
    const host = new FakeHost(unit({ activeState: 'inactive', subState: 'dead', mainPid: null }));
    host.script = (argv) => {
      if (argv[0] === 'systemctl' && argv[1] === '--no-ask-password' && argv.includes('start')) {
        return { exitCode: 1, stdout: '', stderr: 'Job for nginx.service failed.\n' };
      }
      if (argv[0] === 'systemctl' && argv[1] === 'status') {
        return {
          exitCode: 3,
          stdout: '× nginx.service - nginx\n     Active: failed (Result: exit-code)\n',
          stderr: '',
        };
      }
      if (argv[0] === 'journalctl' && argv.some((arg) => arg.startsWith('--since='))) {
        return {
          exitCode: 0,
          stdout:
            '2026-12-02T04:40:01+00:00 h nginx[8]: [emerg] unknown directive "oops" in /etc/nginx/nginx.conf:1\n' +
            "2026-12-02T04:40:01+00:00 h systemd[1]: nginx.service: Failed with result 'exit-code'.\n",
          stderr: '',
        };
      }
      return undefined;
    };
    const { outcome } = await act({ host, verb: 'start' });
    assert.equal(outcome.result, 'failed');
    assert.equal(
      outcome.reason,
      'systemctl start exited 1: Job for nginx.service failed.; the unit said: [emerg] unknown directive "oops" in /etc/nginx/nginx.conf:1',
    );
    assert.match(outcome.diagnostics ?? '', /Active: failed \(Result: exit-code\)[\s\S]*\[emerg\] unknown directive/);
  });

  it('reads no diagnostics when the task succeeded or never acted', async () => {
    const host = new FakeHost(unit());
    const { outcome } = await act({ host, verb: 'restart' });
    assert.equal(outcome.result, 'succeeded');
    assert.equal(outcome.diagnostics, null);
    assert.ok(!host.log.some((line) => line.startsWith('journalctl') && line.includes('--since=')));
  });

  it('checks a mask by trying a start, and fails when the start succeeds', async () => {
    const host = new FakeHost(unit());
    host.script = (argv) =>
      argv[1] === 'show' && host.log.includes('go')
        ? { exitCode: 0, stdout: showTextOf(host, { unitFileState: 'masked', loadState: 'masked' }), stderr: '' }
        : argv[0] === 'systemctl' && argv.includes('mask')
          ? { exitCode: 0, stdout: '', stderr: '' }
          : undefined;
    const { outcome } = await act({ host, verb: 'mask' });
    assert.equal(outcome.result, 'failed');
    assert.equal(outcome.reason, 'the unit is masked but a start attempt succeeded');
    assert.deepEqual(host.actions.at(-1), `systemctl --no-ask-password --no-pager start -- ${UNIT}`);
  });

  it('reads first in a round trip of its own while the host is not identified yet', async () => {
    const host = new FakeHost(unit());
    host.identified = false;
    const { outcome } = await act({ host, verb: 'stop' });
    assert.equal(outcome.result, 'succeeded');
    const pause = host.log.indexOf('pause');
    assert.ok(host.log.slice(0, pause).some((line) => line.startsWith('systemctl show')));
    // After the pause: only the probe before it, the verb and its read after.
    assert.deepEqual(host.log.slice(pause - 1, pause), ['test -d /run/systemd/system']);
  });

  it('reads a unit for a health gate, and says when systemctl show fails', async () => {
    const host = new FakeHost(unit());
    assert.equal((await readUnit(host, UNIT, 1_000)).invocationId, 'first');
    host.script = () => ({ exitCode: 1, stdout: '', stderr: 'Failed to connect to bus\n' });
    await assert.rejects(readUnit(host, UNIT, 1_000), { message: 'systemctl show exited 1: Failed to connect to bus' });
  });
});

describe('hosts without systemd', () => {
  it('acts through the init script, streaming its output, with the state before stored as none', async () => {
    const host = new FakeHost(unit());
    host.systemd = false;
    const { outcome, cleared, streamed } = await act({ host, verb: 'restart' });
    assert.equal(outcome.result, 'succeeded');
    assert.equal(outcome.reason, 'service restart done (host without systemd)');
    assert.deepEqual(cleared, [null]);
    assert.deepEqual(host.actions, ['service nginx restart']);
    assert.deepEqual(streamed, ['Restarting nginx: nginx.\n']);
    assert.equal(outcome.output, 'Restarting nginx: nginx.');
    assert.equal(outcome.before, null);
  });

  it('judges the init script by its exit code, and refuses what only systemd can do', async () => {
    const failing = new FakeHost(unit());
    failing.systemd = false;
    failing.legacyExit = 7;
    assert.equal(
      (await act({ host: failing, verb: 'stop' })).outcome.reason,
      'service stop exited 7: program is not running',
    );

    const enabling = new FakeHost(unit());
    enabling.systemd = false;
    const { outcome } = await act({ host: enabling, verb: 'enable' });
    assert.equal(outcome.result, 'failed');
    assert.match(outcome.reason, /^enable needs systemd/);
    assert.deepEqual(enabling.actions, []);
  });

  it('never repeats an init script command an earlier attempt may have sent', async () => {
    const host = new FakeHost(unit());
    host.systemd = false;
    const { outcome, cleared } = await act({ host, verb: 'restart', earlier: { clearedMsAgo: 60_000 } });
    assert.equal(outcome.result, 'failed');
    assert.match(
      outcome.reason,
      /^an earlier attempt sent `service nginx restart` and its result was lost; not repeated/,
    );
    assert.deepEqual(cleared, []);
    assert.deepEqual(host.actions, []);
  });

  it('fails without acting when the probe cannot tell whether systemd runs', async () => {
    const host = new FakeHost(unit());
    host.systemd = false;
    host.script = (argv) =>
      argv[0] === 'test' ? { exitCode: 127, stdout: '', stderr: 'test: not found\n' } : undefined;
    const { outcome } = await act({ host, verb: 'start' });
    assert.equal(outcome.reason, 'could not tell whether fake-host runs systemd (probe exit 127: test: not found)');
    assert.deepEqual(host.actions, []);
  });

  it('asks the probe only when systemctl show fails, and reports show’s error on a host that runs systemd', async () => {
    const running = new FakeHost(unit());
    await act({ host: running, verb: 'restart' });
    assert.ok(!running.log.some((line) => line.startsWith('test ')));

    const broken = new FakeHost(unit());
    broken.script = (argv) =>
      argv[1] === 'show' ? { exitCode: 1, stdout: '', stderr: 'Failed to connect to bus\n' } : undefined;
    await assert.rejects(
      act({ host: broken, verb: 'restart' }),
      /^Error: systemctl show exited 1 on fake-host: Failed to connect to bus$/,
    );
    assert.deepEqual(broken.log, [
      `systemctl show --no-pager --property=${SNAPSHOT_PROPERTIES.join(',')} -- ${UNIT}`,
      'date +%s%6N',
      'pause',
      'stop',
      'test -d /run/systemd/system',
    ]);
  });
});

describe('the daemon-reload interlock', () => {
  const changed = () => new FakeHost(unit({ needDaemonReload: true }));

  it('refuses by default, before anything is sent (the session stops at its pause)', async () => {
    const host = changed();
    const { outcome, cleared } = await act({ host, verb: 'restart' });
    assert.equal(outcome.result, 'failed');
    assert.match(outcome.reason, /^not acted on: nginx.service changed on disk/);
    assert.equal(outcome.before?.needDaemonReload, true);
    assert.deepEqual(cleared, []);
    assert.deepEqual(host.actions, []);
    assert.ok(host.log.includes('stop'));
  });

  it("'auto' runs daemon-reload first, then the verb, and says so", async () => {
    const host = changed();
    const { outcome, progress } = await act({ host, verb: 'restart', daemonReload: 'auto' });
    assert.equal(outcome.result, 'succeeded');
    assert.equal(outcome.daemonReloaded, true);
    assert.equal(progress.reloaded, true);
    assert.match(outcome.reason, /; daemon-reload run first: the unit had changed on disk/);
    // The state before is the reading that showed the changed unit.
    assert.equal(outcome.before?.needDaemonReload, true);
    assert.deepEqual(host.actions, [
      'systemctl --no-ask-password daemon-reload',
      `systemctl --no-ask-password --no-pager restart -- ${UNIT}`,
    ]);
  });

  it("'auto' does not act when daemon-reload fails", async () => {
    const host = changed();
    host.script = (argv) =>
      argv.includes('daemon-reload') ? { exitCode: 1, stdout: '', stderr: 'Access denied\n' } : undefined;
    const { outcome } = await act({ host, verb: 'start', daemonReload: 'auto' });
    assert.equal(outcome.result, 'failed');
    assert.match(outcome.reason, /daemon-reload, run first \(daemonReload 'auto'\), exited 1: Access denied$/);
    assert.equal(outcome.daemonReloaded, false);
    assert.deepEqual(host.actions, ['systemctl --no-ask-password daemon-reload']);
  });

  it("'ignore' acts on the old definition and warns", async () => {
    const host = changed();
    const { outcome } = await act({ host, verb: 'restart', daemonReload: 'ignore' });
    assert.equal(outcome.result, 'succeeded');
    assert.match(outcome.reason, /warning: the unit had changed on disk .* restart ran its old definition$/);
    assert.deepEqual(host.actions, [`systemctl --no-ask-password --no-pager restart -- ${UNIT}`]);
  });
});

describe('recovering a half-done action', () => {
  const recorded = unit();

  it('finds the lost attempt’s restart in the unit and does not repeat it', async () => {
    const host = new FakeHost(unit({ mainPid: 200, invocationId: 'second', activeEnterTimestampMonotonic: '9' }));
    const { outcome, cleared } = await act({
      host,
      verb: 'restart',
      earlier: { before: recorded, clearedMsAgo: 60_000 },
    });
    assert.equal(outcome.result, 'succeeded');
    assert.match(outcome.reason, /; completed by an earlier attempt whose worker was lost; not repeated$/);
    assert.deepEqual(outcome.before, recorded);
    assert.equal(outcome.exitCode, null);
    assert.deepEqual(cleared, []);
    assert.deepEqual(host.actions, []);
  });

  it('acts when the unit shows the lost attempt did not, storing no new state before', async () => {
    const host = new FakeHost(unit());
    const { outcome, cleared } = await act({
      host,
      verb: 'restart',
      earlier: { before: recorded, clearedMsAgo: 60_000 },
    });
    assert.equal(outcome.result, 'succeeded');
    assert.deepEqual(cleared, [null]);
    assert.deepEqual(outcome.before, recorded);
    assert.deepEqual(host.actions, [`systemctl --no-ask-password --no-pager restart -- ${UNIT}`]);
  });

  it('does not repeat a restart when the unit changed otherwise since', async () => {
    const host = new FakeHost(unit({ activeState: 'failed', subState: 'failed', mainPid: null, result: 'exit-code' }));
    const { outcome } = await act({ host, verb: 'restart', earlier: { before: recorded, clearedMsAgo: 60_000 } });
    assert.equal(outcome.result, 'failed');
    assert.match(
      outcome.reason,
      /^an earlier attempt was interrupted and the unit changed since .*; not repeating restart$/,
    );
    assert.deepEqual(host.actions, []);
  });

  it('waits out the window in which an earlier attempt may still act, watching the unit, then acts', async () => {
    const host = new FakeHost(unit());
    const started = host.nowMs;
    const { outcome } = await act({ host, verb: 'restart', earlier: { before: recorded, clearedMsAgo: 0 } });
    assert.equal(outcome.result, 'succeeded');
    // goWindowMs(30 s) + 1 s of margin, read every second.
    assert.ok(host.nowMs - started >= 32_000, `waited ${host.nowMs - started} ms`);
    assert.ok(host.log.filter((line) => line.startsWith('systemctl show')).length >= 32);
    assert.deepEqual(host.actions, [`systemctl --no-ask-password --no-pager restart -- ${UNIT}`]);
  });

  it('ends the wait when the earlier attempt’s action shows', async () => {
    const host = new FakeHost(unit());
    let reads = 0;
    host.script = (argv) => {
      if (argv[1] !== 'show' || ++reads < 4) return undefined;
      return { exitCode: 0, stdout: showTextOf(host, { mainPid: 300, invocationId: 'late' }), stderr: '' };
    };
    const { outcome } = await act({ host, verb: 'restart', earlier: { before: recorded, clearedMsAgo: 0 } });
    assert.equal(outcome.result, 'succeeded');
    assert.match(outcome.reason, /completed by an earlier attempt/);
    assert.deepEqual(host.actions, []);
  });
});

describe("systemd's start limit", () => {
  /** A unit started `count` times in the last few seconds, and stopped. */
  function startedRecently(count: number, interval = String(20 * SECOND_US)): FakeHost {
    const host = new FakeHost(
      unit({ activeState: 'inactive', subState: 'dead', mainPid: null, startLimitIntervalUSec: interval }),
    );
    for (let i = count; i > 0; i--) host.starts.push(host.nowMs - i * 1_000);
    return host;
  }

  it('waits until another start fits, saying so, then acts', async () => {
    const host = startedRecently(3);
    const started = host.nowMs;
    const { outcome, waits } = await act({ host, verb: 'start' });
    assert.equal(waits.length, 1);
    assert.match(waits[0]!, /^systemd's start limit: nginx.service started 3 time\(s\) in the last 20s/);
    assert.ok(host.nowMs - started >= 17_000);
    assert.equal(outcome.result, 'succeeded');
    assert.match(outcome.reason, /; waited \d+\.\ds for systemd's start limit/);
    assert.deepEqual(host.actions, [`systemctl --no-ask-password --no-pager start -- ${UNIT}`]);
  });

  it('refuses when the count never resets, without acting', async () => {
    const host = startedRecently(3, 'infinity');
    const { outcome, waits } = await act({ host, verb: 'start' });
    assert.equal(outcome.result, 'failed');
    assert.match(outcome.reason, /which never resets by itself/);
    assert.deepEqual(waits, []);
    assert.deepEqual(host.actions, []);
  });

  it('does not act when the caller stopped meanwhile (a cancelled rollout)', async () => {
    const host = startedRecently(3);
    const { outcome } = await act({ host, verb: 'start', stopped: 'cancelled' });
    assert.equal(outcome.result, 'cancelled');
    assert.equal(
      outcome.reason,
      "not acted: the rollout was cancelled while this task waited for systemd's start limit",
    );
    assert.deepEqual(host.actions, []);
  });

  it('reads the journal only when the unit’s state cannot show its last start is older than the interval', async () => {
    // Active since long before the interval: one session, no journal.
    const settled = new FakeHost(unit({ activeEnterTimestamp: utcTimestamp(Date.UTC(2026, 0, 1)) }));
    assert.equal((await act({ host: settled, verb: 'restart' })).outcome.result, 'succeeded');
    assert.ok(!settled.log.some((line) => line.startsWith('journalctl')));
    assert.equal(settled.log.filter((line) => line === 'pause').length, 1);

    // Active for two seconds after three starts: the first session stops before acting, the second
    // counts the starts and waits.
    const host = startedRecently(3);
    host.unit = { ...host.unit, activeState: 'active', subState: 'running', mainPid: 100 };
    host.unit.activeEnterTimestamp = utcTimestamp(host.nowMs - 2_000);
    const { outcome, waits } = await act({ host, verb: 'restart' });
    assert.equal(outcome.result, 'succeeded');
    assert.equal(waits.length, 1);
    assert.deepEqual(
      host.log.slice(0, 6).map((line) => line.split(' ')[0]),
      ['systemctl', 'date', 'pause', 'stop', 'systemctl', 'date'],
    );
    assert.equal(host.log[6]!.split(' ')[0], 'journalctl');
    // Bounded by the 20 s interval the first session read (and the margin).
    assert.ok(host.log[6]!.includes(` --since=-${20 + START_JOURNAL_SINCE_MARGIN_S}s `), host.log[6]);
    assert.deepEqual(host.actions, [`systemctl --no-ask-password --no-pager restart -- ${UNIT}`]);
  });

  it('reads the journal in fixed words on a host that runs only those (sudo), judging as the bounded read does', async () => {
    const verdicts = [];
    for (const fixedCommandLines of [false, true]) {
      const host = startedRecently(3);
      host.fixedCommandLines = fixedCommandLines;
      host.starts.unshift(host.nowMs - 120_000);
      host.unit = { ...host.unit, activeState: 'active', subState: 'running', mainPid: 100 };
      host.unit.activeEnterTimestamp = utcTimestamp(host.nowMs - 2_000);
      const { outcome, waits } = await act({ host, verb: 'restart' });
      // Before the wait and after it.
      const journalReads = host.log.filter((line) => line.startsWith('journalctl'));
      assert.equal(journalReads.length, 2);
      for (const line of journalReads) {
        if (fixedCommandLines) assert.equal(line, startJournalArgv(UNIT).join(' '));
        else assert.ok(line.includes(` --since=-${20 + START_JOURNAL_SINCE_MARGIN_S}s `), line);
      }
      verdicts.push({ result: outcome.result, reason: outcome.reason, waits });
    }
    assert.match(verdicts[0]!.waits[0]!, /started 3 time\(s\) in the last 20s/);
    assert.deepEqual(verdicts[1], verdicts[0]);
  });

  it('counts a start just inside the interval although the journal’s clock is ahead of date’s', async () => {
    // Every session runs 3 s after its `date` (journalctl's "now" is 3 s later), so the counting
    // session's `date` reads 3 s after the first one's. Burst 3 in 20 s: starts 19.5, 10 and 5 s
    // before that `date`. The oldest counts, so the restart waits until it left the interval;
    // without the margin the read would miss it and act.
    const host = startedRecently(0);
    host.dateStepMs = 3_000;
    const countingDate = host.nowMs + host.dateStepMs;
    host.starts.push(countingDate - 120_000, countingDate - 19_500, countingDate - 10_000, countingDate - 5_000);
    host.unit = { ...host.unit, activeState: 'active', subState: 'running', mainPid: 100 };
    host.unit.activeEnterTimestamp = utcTimestamp(countingDate - 5_000);
    const { outcome, waits } = await act({ host, verb: 'restart' });
    assert.equal(outcome.result, 'succeeded');
    assert.equal(waits.length, 1);
    assert.match(waits[0]!, /started 3 time\(s\) in the last 20s/);
  });

  it('reads the journal unbounded when the interval grew after the reading that bounded it', async () => {
    // The first reading shows a 10 s interval (before a daemon-reload), the next 300 s, with three
    // starts in it: the read bounded to 15 s sees one; the check reads them all and does not act
    // (the wait would outlast the task's timeout).
    const host = startedRecently(0, String(300 * SECOND_US));
    host.starts.push(host.nowMs - 100_000, host.nowMs - 60_000, host.nowMs - 2_000);
    host.unit = { ...host.unit, activeState: 'active', subState: 'running', mainPid: 100 };
    host.unit.activeEnterTimestamp = utcTimestamp(host.nowMs - 2_000);
    host.transitions.push({ startLimitIntervalUSec: String(10 * SECOND_US) });
    const { outcome } = await act({ host, verb: 'restart' });
    const journalReads = host.log.filter((line) => line.startsWith('journalctl'));
    assert.deepEqual(
      journalReads.map((line) => line.includes(' --since=')),
      [true, false],
    );
    assert.equal(outcome.result, 'failed');
    assert.match(outcome.reason, /^not acted: nginx.service started 3 time\(s\) in the last 5min/);
    assert.deepEqual(host.actions, []);
  });

  it('names the start limit when systemd refused the start', async () => {
    const host = new FakeHost(unit({ activeState: 'inactive', subState: 'dead', mainPid: null }));
    host.script = (argv) =>
      argv[0] === 'systemctl' && argv.includes('start')
        ? { exitCode: 1, stdout: '', stderr: 'Job for nginx.service failed.\n' }
        : argv[1] === 'show' && host.log.includes('go')
          ? { exitCode: 0, stdout: showTextOf(host, { activeState: 'failed', result: 'start-limit-hit' }), stderr: '' }
          : undefined;
    const { outcome } = await act({ host, verb: 'start' });
    assert.equal(outcome.result, 'failed');
    assert.match(outcome.reason, /^systemctl start exited 1: .*start limit/i);
  });
});

function showTextOf(host: FakeHost, overrides: Partial<UnitSnapshot>): string {
  return showText({ ...host.unit, ...overrides });
}

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TRANSITIONAL_STATES, type UnitSnapshot, type Verdict } from '@drover/protocol';
import { parseSnapshot } from './unit-snapshot';
import { describeSnapshot, verifyOutcome } from './verify';
import { Verb, VERBS } from '@drover/protocol';
import {
  ACTIVATING as SLOW_ACTIVATING,
  MASKED_TIMER,
  NOT_FOUND as NOPE,
  STATIC as JOURNALD,
} from './fixtures/systemctl-show';

// `systemctl show` output captured on the nspawn test fleet (Debian 12, systemd 252.39) before and
// after running each verb there. drover-probe.service is the fleet's test unit; drover-fail,
// drover-hang, drover-slow and drover-loop were transient units made with systemd-run (/bin/false;
// sleep with KillSignal=SIGCONT TimeoutStopSec=1; a oneshot sleep; /bin/false with Restart=always).
// A reload of drover-probe changed nothing in the output, so PROBE_RESTARTED is also "after reload".
const PROBE_BOOT = `MainPID=32
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ActiveEnterTimestamp=Sat 2026-11-21 06:29:25 UTC
ActiveEnterTimestampMonotonic=2153300107
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
InvocationID=5f291f64bc314c64be5f3a40a7b51127
FragmentPath=
DropInPaths=
`;
const PROBE_RESTARTED = `MainPID=268
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ActiveEnterTimestamp=Sat 2026-11-21 06:31:29 UTC
ActiveEnterTimestampMonotonic=2277360628
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
InvocationID=895b7faa46f947feaf841ca8dbd7caa7
FragmentPath=
DropInPaths=
`;
const PROBE_STOPPED = `MainPID=0
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=enabled
ActiveEnterTimestamp=Sat 2026-11-21 06:31:29 UTC
ActiveEnterTimestampMonotonic=2277360628
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
InvocationID=895b7faa46f947feaf841ca8dbd7caa7
FragmentPath=
DropInPaths=
`;
const PROBE_STARTED_STOPPED_BEFORE = `MainPID=355
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ActiveEnterTimestamp=Sat 2026-11-21 06:31:31 UTC
ActiveEnterTimestampMonotonic=2279744474
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
InvocationID=7d3fce95119e48279c853db5958a3de5
FragmentPath=
DropInPaths=
`;
const PROBE_TRY_RESTARTED = `MainPID=376
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ActiveEnterTimestamp=Sat 2026-11-21 06:31:32 UTC
ActiveEnterTimestampMonotonic=2280215414
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
InvocationID=1e2ebb8ab6e14e3dad5529c0cc80dda2
FragmentPath=
DropInPaths=
`;
const PROBE_MASKED_RUNNING = `MainPID=376
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover-probe.service
LoadState=masked
ActiveState=active
SubState=running
UnitFileState=masked
ActiveEnterTimestamp=Sat 2026-11-21 06:31:32 UTC
ActiveEnterTimestampMonotonic=2280215414
CanStart=no
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=1e2ebb8ab6e14e3dad5529c0cc80dda2
FragmentPath=
DropInPaths=
`;
const PROBE_MASKED_STOPPED = `MainPID=0
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover-probe.service
LoadState=masked
ActiveState=inactive
SubState=dead
UnitFileState=masked
ActiveEnterTimestamp=Sat 2026-11-21 06:31:32 UTC
ActiveEnterTimestampMonotonic=2280215414
CanStart=no
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=1e2ebb8ab6e14e3dad5529c0cc80dda2
FragmentPath=
DropInPaths=
`;
const PROBE_UNMASKED = `MainPID=0
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=enabled
ActiveEnterTimestamp=Sat 2026-11-21 06:31:32 UTC
ActiveEnterTimestampMonotonic=2280215414
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
InvocationID=1e2ebb8ab6e14e3dad5529c0cc80dda2
FragmentPath=
DropInPaths=
`;
const PROBE_DISABLED = `MainPID=0
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=disabled
ActiveEnterTimestamp=
ActiveEnterTimestampMonotonic=0
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
InvocationID=
FragmentPath=
DropInPaths=
`;
const PROBE_ENABLED = `MainPID=0
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=enabled
ActiveEnterTimestamp=
ActiveEnterTimestampMonotonic=0
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
InvocationID=
FragmentPath=
DropInPaths=
`;
const PROBE_STARTED = `MainPID=530
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ActiveEnterTimestamp=Sat 2026-11-21 06:31:38 UTC
ActiveEnterTimestampMonotonic=2286866429
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
InvocationID=103087e9dc4a495b9f40ee78f9aea0ce
FragmentPath=
DropInPaths=
`;
const PROBE_NEEDS_RELOAD = `MainPID=530
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ActiveEnterTimestamp=Sat 2026-11-21 06:31:38 UTC
ActiveEnterTimestampMonotonic=2286866429
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=yes
InvocationID=103087e9dc4a495b9f40ee78f9aea0ce
FragmentPath=
DropInPaths=
`;
const PROBE_RELOADED_CONFIG = `MainPID=530
Result=success
NRestarts=0
Id=drover-probe.service
Description=drover test probe (records its starts and reloads)
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ActiveEnterTimestamp=Sat 2026-11-21 06:31:38 UTC
ActiveEnterTimestampMonotonic=2286866429
CanStart=yes
CanStop=yes
CanReload=yes
NeedDaemonReload=no
InvocationID=103087e9dc4a495b9f40ee78f9aea0ce
FragmentPath=
DropInPaths=
`;
const JOURNALD_RESTARTED = `MainPID=705
Result=success
NRestarts=0
Id=systemd-journald.service
Description=Journal Service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=static
ActiveEnterTimestamp=Sat 2026-11-21 06:31:42 UTC
ActiveEnterTimestampMonotonic=2290758905
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=657f544bc1c2448ca2d18ce11b39b952
FragmentPath=
DropInPaths=
`;
const NOPE_MASKED = `MainPID=0
Result=success
NRestarts=0
Id=nope.service
Description=nope.service
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
const FAILED = `MainPID=0
Result=exit-code
NRestarts=0
Id=drover-fail2.service
Description=/bin/false
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=transient
ActiveEnterTimestamp=Sat 2026-11-21 06:35:38 UTC
ActiveEnterTimestampMonotonic=2526324919
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=176addd4352d45759e2c3c870d52b585
FragmentPath=
DropInPaths=
`;
const FAILED_AGAIN = `MainPID=0
Result=exit-code
NRestarts=0
Id=drover-fail2.service
Description=/bin/false
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=transient
ActiveEnterTimestamp=Sat 2026-11-21 06:35:39 UTC
ActiveEnterTimestampMonotonic=2527756878
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=d89ed2a1befe461bb6f9562a675b9ca8
FragmentPath=
DropInPaths=
`;
const HANG = `MainPID=7584
Result=success
NRestarts=0
Id=drover-hang.service
Description=/bin/sleep 100
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=transient
ActiveEnterTimestamp=Sat 2026-11-21 06:45:51 UTC
ActiveEnterTimestampMonotonic=3139580501
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=12d082ed6eef47ad9dff1a9ed60789c0
FragmentPath=
DropInPaths=
`;
const HANG_STOP_TIMED_OUT = `MainPID=0
Result=timeout
NRestarts=0
Id=drover-hang.service
Description=/bin/sleep 100
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=transient
ActiveEnterTimestamp=Sat 2026-11-21 06:45:51 UTC
ActiveEnterTimestampMonotonic=3139580501
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=12d082ed6eef47ad9dff1a9ed60789c0
FragmentPath=
DropInPaths=
`;
const LOOP_AUTO_RESTART = `MainPID=0
Result=exit-code
NRestarts=0
Id=drover-loop.service
Description=/bin/false
LoadState=loaded
ActiveState=activating
SubState=auto-restart
UnitFileState=transient
ActiveEnterTimestamp=Sat 2026-11-21 06:31:50 UTC
ActiveEnterTimestampMonotonic=2298643578
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=15d162a8ae7541a392490597cecfeef0
FragmentPath=
DropInPaths=
`;
const SLOW_DEACTIVATING = `MainPID=780
Result=success
NRestarts=0
Id=drover-stopslow.service
Description=/bin/sleep 100
LoadState=loaded
ActiveState=deactivating
SubState=stop-sigterm
UnitFileState=transient
ActiveEnterTimestamp=Sat 2026-11-21 06:31:51 UTC
ActiveEnterTimestampMonotonic=2299713272
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=556d81533aaa45d9afdb68c686f6745f
FragmentPath=
DropInPaths=
`;
const ONESHOT = `MainPID=0
Result=success
NRestarts=0
Id=systemd-tmpfiles-clean.service
Description=Cleanup of Temporary Directories
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=static
ActiveEnterTimestamp=
ActiveEnterTimestampMonotonic=0
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=15196724932e4bf49479fbe666ebedf3
FragmentPath=
DropInPaths=
`;
const ONESHOT_RAN = `MainPID=0
Result=success
NRestarts=0
Id=systemd-tmpfiles-clean.service
Description=Cleanup of Temporary Directories
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=static
ActiveEnterTimestamp=
ActiveEnterTimestampMonotonic=0
CanStart=yes
CanStop=yes
CanReload=no
NeedDaemonReload=no
InvocationID=db0a414f82f64539bf42861ce31aba53
FragmentPath=
DropInPaths=
`;

const s = parseSnapshot;

function okDetail(verdict: Verdict): string {
  assert.equal(verdict.outcome, 'ok', JSON.stringify(verdict));
  return verdict.outcome === 'ok' ? verdict.detail : '';
}

function failure(verdict: Verdict): string {
  assert.equal(verdict.outcome, 'failed', JSON.stringify(verdict));
  return verdict.outcome === 'failed' ? verdict.reason : '';
}

function settling(verdict: Verdict): string {
  assert.equal(verdict.outcome, 'settling', JSON.stringify(verdict));
  return verdict.outcome === 'settling' ? verdict.reason : '';
}

describe('describeSnapshot', () => {
  it('summarises state, pid and unit file state, plus whatever is unusual', () => {
    assert.equal(describeSnapshot(s(PROBE_STARTED)), 'active/running pid 530 (enabled)');
    assert.equal(describeSnapshot(s(PROBE_STOPPED)), 'inactive/dead (enabled)');
    assert.equal(describeSnapshot(s(NOPE)), 'inactive/dead, load state not-found');
    assert.equal(describeSnapshot(s(MASKED_TIMER)), 'inactive/dead (masked), load state masked');
    assert.equal(describeSnapshot(s(FAILED)), 'failed/failed (transient), result exit-code');
    assert.equal(
      describeSnapshot(s(PROBE_NEEDS_RELOAD)),
      'active/running pid 530 (enabled), unit file changed on disk (needs daemon-reload)',
    );
    assert.equal(
      describeSnapshot({ ...s(LOOP_AUTO_RESTART), nRestarts: 3 }),
      'activating/auto-restart (transient), result exit-code, restarted 3 times by systemd',
    );
    assert.match(describeSnapshot({ ...s(PROBE_STARTED), nRestarts: 1 }), /restarted 1 time by systemd$/);
  });
});

describe('verifyOutcome', () => {
  describe('status', () => {
    it('is always ok, summarising the state, even for a unit systemd does not know', () => {
      assert.equal(
        okDetail(verifyOutcome('status', null, s(PROBE_STARTED))),
        'drover-probe.service is active/running pid 530 (enabled)',
      );
      assert.equal(
        okDetail(verifyOutcome('status', s(NOPE), s(NOPE))),
        'nope.service is inactive/dead, load state not-found',
      );
      assert.match(okDetail(verifyOutcome('status', null, s(SLOW_ACTIVATING))), /activating\/start/);
      assert.match(okDetail(verifyOutcome('status', null, s(FAILED))), /failed\/failed/);
    });
  });

  describe('a unit systemd does not know', () => {
    it('fails every other verb', () => {
      for (const verb of VERBS.filter((v) => v !== 'status')) {
        assert.equal(
          failure(verifyOutcome(verb, s(NOPE), s(NOPE))),
          'unit nope.service not found on the host (LoadState=not-found)',
          verb,
        );
        assert.equal(verifyOutcome(verb, null, s(NOPE)).outcome, 'failed', verb);
      }
    });

    it('is the right end of unmasking a name that had only the mask behind it', () => {
      assert.equal(
        okDetail(verifyOutcome('unmask', s(NOPE_MASKED), s(NOPE))),
        'nope.service is unmasked; no unit file of that name exists, so it is now not-found',
      );
    });

    it('is fine after stopping a unit whose file was removed while it ran', () => {
      const orphan = { ...s(PROBE_STARTED), loadState: 'not-found', unitFileState: null };
      const stopped = { ...s(PROBE_STOPPED), loadState: 'not-found', unitFileState: null };
      assert.match(okDetail(verifyOutcome('stop', orphan, stopped)), /^drover-probe\.service is stopped: .*not-found/);
      assert.equal(verifyOutcome('start', orphan, stopped).outcome, 'failed');
    });
  });

  describe('transitional states', () => {
    it('ask to read again after verbs judged by the active state', () => {
      assert.equal(
        settling(verifyOutcome('start', null, s(SLOW_ACTIVATING))),
        'after start, drover-slow.service is still in transition: activating/start pid 750 (transient)',
      );
      assert.match(
        settling(verifyOutcome('restart', s(LOOP_AUTO_RESTART), s(LOOP_AUTO_RESTART))),
        /activating\/auto-restart/,
      );
      assert.match(settling(verifyOutcome('stop', s(HANG), s(SLOW_DEACTIVATING))), /deactivating\/stop-sigterm/);
      for (const verb of ['start', 'stop', 'restart', 'try-restart', 'reload', 'reload-or-restart'] as const) {
        for (const state of TRANSITIONAL_STATES) {
          const after = { ...s(PROBE_STARTED), activeState: state };
          assert.equal(verifyOutcome(verb, s(PROBE_BOOT), after).outcome, 'settling', `${verb} ${state}`);
        }
      }
    });

    it('do not hold up verbs about unit files or the manager: a crash-looping unit can still be enabled', () => {
      const looping = { ...s(LOOP_AUTO_RESTART), unitFileState: 'enabled' };
      assert.equal(verifyOutcome('enable', s(LOOP_AUTO_RESTART), looping).outcome, 'ok');
      assert.match(failure(verifyOutcome('enable', null, s(SLOW_ACTIVATING))), /transient/);
      assert.equal(verifyOutcome('daemon-reload', null, s(SLOW_ACTIVATING)).outcome, 'ok');
    });
  });

  describe('start', () => {
    it('is ok once the unit is active', () => {
      assert.equal(
        okDetail(verifyOutcome('start', s(PROBE_ENABLED), s(PROBE_STARTED))),
        'drover-probe.service is running: active/running pid 530 (enabled)',
      );
      assert.match(okDetail(verifyOutcome('start', s(PROBE_STARTED), s(PROBE_STARTED))), /was already running/);
      assert.match(okDetail(verifyOutcome('start', null, s(PROBE_STARTED))), /is running/);
    });

    it('fails a unit that failed to start, with its result', () => {
      // systemctl start exited 0 here: only the state after shows the failure.
      assert.equal(
        failure(verifyOutcome('start', s(FAILED), s(FAILED_AGAIN))),
        'drover-fail2.service: expected ActiveState=active after start, but it is failed/failed (transient), result exit-code',
      );
    });

    it('accepts a oneshot service that ran and exited (new invocation, result success)', () => {
      assert.match(
        okDetail(verifyOutcome('start', s(ONESHOT), s(ONESHOT_RAN))),
        /^systemd-tmpfiles-clean\.service ran and exited successfully/,
      );
    });

    it('fails an inactive unit that shows no new run, hinting at why', () => {
      assert.equal(
        failure(verifyOutcome('start', s(ONESHOT_RAN), s(ONESHOT_RAN))),
        'systemd-tmpfiles-clean.service: expected ActiveState=active after start, but it is inactive/dead (static): it did not stay running (a service that exits by design, or a Condition…= check skipped it)',
      );
      assert.match(failure(verifyOutcome('start', null, s(ONESHOT_RAN))), /did not stay running/);
    });

    it('fails a masked unit, which systemd refuses to start', () => {
      assert.equal(
        failure(verifyOutcome('start', s(PROBE_MASKED_STOPPED), s(PROBE_MASKED_STOPPED))),
        'drover-probe.service: expected ActiveState=active after start, but it is inactive/dead (masked), load state masked: systemd refuses to start a masked unit; unmask it first',
      );
    });
  });

  describe('stop', () => {
    it('is ok once the unit is inactive', () => {
      assert.equal(
        okDetail(verifyOutcome('stop', s(PROBE_RESTARTED), s(PROBE_STOPPED))),
        'drover-probe.service is stopped: inactive/dead (enabled)',
      );
      assert.equal(verifyOutcome('stop', null, s(PROBE_STOPPED)).outcome, 'ok');
    });

    it('fails a unit that had to be killed, with its result', () => {
      assert.equal(
        failure(verifyOutcome('stop', s(HANG), s(HANG_STOP_TIMED_OUT))),
        'drover-hang.service did not stop cleanly: it is failed/failed (transient), result timeout',
      );
    });

    it('accepts a unit that had already failed: stop leaves it failed, and it is not running', () => {
      assert.match(okDetail(verifyOutcome('stop', s(FAILED), s(FAILED))), /had already failed before the stop/);
      assert.equal(verifyOutcome('stop', null, s(FAILED)).outcome, 'failed');
    });

    it('fails a unit still running', () => {
      assert.equal(
        failure(verifyOutcome('stop', s(PROBE_STARTED), s(PROBE_STARTED))),
        'drover-probe.service: expected ActiveState=inactive after stop, but it is active/running pid 530 (enabled)',
      );
    });
  });

  describe('restart', () => {
    it('is ok with a new run, naming old and new pid', () => {
      assert.equal(
        okDetail(verifyOutcome('restart', s(PROBE_BOOT), s(PROBE_RESTARTED))),
        'drover-probe.service restarted (pid 32 → 268): active/running pid 268 (enabled)',
      );
      assert.match(okDetail(verifyOutcome('restart', s(JOURNALD), s(JOURNALD_RESTARTED))), /pid 17 → 705/);
      assert.match(okDetail(verifyOutcome('restart', s(PROBE_STOPPED), s(PROBE_STARTED))), /pid none → 530/);
    });

    it('fails when the same run is still there', () => {
      assert.equal(
        failure(verifyOutcome('restart', s(PROBE_RESTARTED), s(PROBE_RESTARTED))),
        'drover-probe.service: expected a new process after restart, but it is the same run as before (pid 268 → 268, invocation 895b7faa46f947feaf841ca8dbd7caa7): active/running pid 268 (enabled)',
      );
    });

    it('trusts the invocation id over the pid: a reused pid is a new run, a re-executed daemon is not', () => {
      const reusedPid = { ...s(PROBE_RESTARTED), mainPid: 32 };
      assert.equal(verifyOutcome('restart', s(PROBE_BOOT), reusedPid).outcome, 'ok');
      const reexecuted = { ...s(PROBE_BOOT), mainPid: 99 };
      assert.match(failure(verifyOutcome('restart', s(PROBE_BOOT), reexecuted)), /same run as before \(pid 32 → 99/);
    });

    it('falls back to the pid, then the activation time, when there is no invocation id', () => {
      const noInvocation = (snapshot: UnitSnapshot, monotonic: string, pid: number | null): UnitSnapshot => ({
        ...snapshot,
        invocationId: null,
        mainPid: pid,
        activeEnterTimestampMonotonic: monotonic,
      });
      const before = noInvocation(s(PROBE_STARTED), '100', null);
      assert.equal(
        verifyOutcome('restart', noInvocation(s(PROBE_STARTED), '100', 5), noInvocation(s(PROBE_STARTED), '100', 6))
          .outcome,
        'ok',
      );
      assert.equal(
        verifyOutcome('restart', before, noInvocation(s(PROBE_STARTED), '18446744073709551615', null)).outcome,
        'ok',
      );
      assert.match(failure(verifyOutcome('restart', before, noInvocation(s(PROBE_STARTED), '100', null))), /same run/);
      assert.match(
        failure(
          verifyOutcome(
            'restart',
            noInvocation(s(PROBE_STARTED), '0', null),
            noInvocation(s(PROBE_STARTED), '0', null),
          ),
        ),
        /cannot tell whether restart started a new process/,
      );
    });

    it('is ok without an earlier state when the unit is active, and says so', () => {
      assert.match(okDetail(verifyOutcome('restart', null, s(PROBE_STARTED))), /no earlier state to compare/);
    });

    it('fails a unit that failed to come back', () => {
      assert.match(
        failure(verifyOutcome('restart', s(FAILED), s(FAILED_AGAIN))),
        /expected ActiveState=active after restart.*result exit-code/,
      );
    });

    it('accepts a oneshot service that ran again', () => {
      assert.match(okDetail(verifyOutcome('restart', s(ONESHOT), s(ONESHOT_RAN))), /ran and exited successfully/);
    });
  });

  describe('try-restart', () => {
    it('leaves a stopped unit alone', () => {
      assert.equal(
        okDetail(verifyOutcome('try-restart', s(PROBE_STOPPED), s(PROBE_STOPPED))),
        'drover-probe.service is not running: nothing to restart (inactive/dead (enabled))',
      );
      assert.equal(verifyOutcome('try-restart', s(FAILED), s(FAILED)).outcome, 'ok');
      // Unloaded while inactive and loaded again: the invocation id is gone, which is not a new run.
      assert.equal(verifyOutcome('try-restart', s(PROBE_STOPPED), s(PROBE_ENABLED)).outcome, 'ok');
      assert.equal(verifyOutcome('try-restart', null, s(PROBE_STOPPED)).outcome, 'ok');
    });

    it('restarts a running unit, like restart', () => {
      assert.match(
        okDetail(verifyOutcome('try-restart', s(PROBE_STARTED_STOPPED_BEFORE), s(PROBE_TRY_RESTARTED))),
        /pid 355 → 376/,
      );
      assert.match(
        failure(verifyOutcome('try-restart', s(PROBE_STARTED), s(PROBE_STARTED))),
        /expected a new process after try-restart/,
      );
    });

    it('fails when a unit that was not running is running now', () => {
      assert.equal(
        failure(verifyOutcome('try-restart', s(PROBE_STOPPED), s(PROBE_STARTED))),
        'drover-probe.service: expected try-restart to leave a unit that is not running alone (it was inactive/dead (enabled)), but it is now active/running pid 530 (enabled)',
      );
      assert.match(
        failure(verifyOutcome('try-restart', s(FAILED), s(FAILED_AGAIN))),
        /leave a unit that is not running alone/,
      );
      assert.match(failure(verifyOutcome('try-restart', null, s(FAILED))), /no earlier state to compare/);
    });
  });

  describe('reload', () => {
    it('is ok when the same process and run are still there', () => {
      assert.equal(
        okDetail(verifyOutcome('reload', s(PROBE_RESTARTED), s(PROBE_RESTARTED))),
        'drover-probe.service reloaded in place (pid 268 kept): active/running pid 268 (enabled)',
      );
      assert.match(okDetail(verifyOutcome('reload', null, s(PROBE_RESTARTED))), /no earlier state to compare/);
    });

    it('fails a reload that restarted the service', () => {
      assert.equal(
        failure(verifyOutcome('reload', s(PROBE_BOOT), s(PROBE_RESTARTED))),
        'drover-probe.service: expected the same run after reload (a reload keeps the process), but it restarted (pid 32 → 268, invocation 5f291f64bc314c64be5f3a40a7b51127 → 895b7faa46f947feaf841ca8dbd7caa7)',
      );
    });

    it('fails when the main pid changed', () => {
      const changed = { ...s(PROBE_RESTARTED), mainPid: 300 };
      assert.equal(
        failure(verifyOutcome('reload', s(PROBE_RESTARTED), changed)),
        'drover-probe.service: expected the same main process after reload, but the main pid 268 → 300',
      );
    });

    it('fails a stopped unit, which reload does not start', () => {
      // systemctl said: "drover-probe.service is not active, cannot reload." (exit 1)
      assert.equal(
        failure(verifyOutcome('reload', s(PROBE_STOPPED), s(PROBE_STOPPED))),
        'drover-probe.service: expected ActiveState=active after reload, but it is inactive/dead (enabled): reload does not start a stopped unit',
      );
    });

    it('fails a unit that cannot reload', () => {
      assert.equal(
        failure(verifyOutcome('reload', s(JOURNALD), s(JOURNALD))),
        'systemd-journald.service cannot reload (CanReload=no: it has no ExecReload=); restart it instead',
      );
    });
  });

  describe('reload-or-restart', () => {
    it('starts a stopped unit', () => {
      assert.match(
        okDetail(verifyOutcome('reload-or-restart', s(PROBE_STOPPED), s(PROBE_STARTED_STOPPED_BEFORE))),
        /^drover-probe\.service was not running and is now: active\/running pid 355/,
      );
    });

    it('reloads a unit that can reload: same process expected', () => {
      assert.match(
        okDetail(verifyOutcome('reload-or-restart', s(PROBE_RESTARTED), s(PROBE_RESTARTED))),
        /reloaded in place/,
      );
      assert.match(
        failure(verifyOutcome('reload-or-restart', s(PROBE_STARTED_STOPPED_BEFORE), s(PROBE_TRY_RESTARTED))),
        /expected the same run after reload-or-restart/,
      );
    });

    it('restarts a unit that cannot reload: new process expected', () => {
      assert.match(
        okDetail(verifyOutcome('reload-or-restart', s(JOURNALD), s(JOURNALD_RESTARTED))),
        /restarted \(pid 17 → 705\)/,
      );
      assert.match(
        failure(verifyOutcome('reload-or-restart', s(JOURNALD), s(JOURNALD))),
        /expected a new process after reload-or-restart/,
      );
    });

    it('fails a unit that is not active afterwards', () => {
      assert.match(
        failure(verifyOutcome('reload-or-restart', s(FAILED), s(FAILED_AGAIN))),
        /expected ActiveState=active/,
      );
    });
  });

  describe('enable and disable', () => {
    it('are ok at UnitFileState enabled / disabled', () => {
      assert.equal(
        okDetail(verifyOutcome('enable', s(PROBE_DISABLED), s(PROBE_ENABLED))),
        'drover-probe.service is enabled: inactive/dead (enabled)',
      );
      assert.equal(
        okDetail(verifyOutcome('disable', s(PROBE_UNMASKED), s(PROBE_DISABLED))),
        'drover-probe.service is disabled: inactive/dead (disabled)',
      );
    });

    it('fail a static unit, saying it has no [Install] section', () => {
      // systemctl enable exited 0 here, printing only "The unit files have no installation config…".
      assert.equal(
        failure(verifyOutcome('enable', s(JOURNALD), s(JOURNALD))),
        'systemd-journald.service has no [Install] section (UnitFileState=static), so enable does nothing: it runs when another unit, a socket, a timer or D-Bus pulls it in',
      );
      assert.match(
        failure(verifyOutcome('disable', s(JOURNALD), s(JOURNALD))),
        /no \[Install\] section.*so disable does nothing/,
      );
    });

    it('fail indirect and generated units, saying why', () => {
      for (const verb of ['enable', 'disable'] as const) {
        const indirect = { ...s(PROBE_STOPPED), unitFileState: 'indirect' };
        assert.match(
          failure(verifyOutcome(verb, indirect, indirect)),
          /no \[Install\] WantedBy=\/RequiredBy= of its own \(UnitFileState=indirect\)/,
        );
        const generated = { ...s(PROBE_STOPPED), unitFileState: 'generated' };
        assert.match(
          failure(verifyOutcome(verb, generated, generated)),
          new RegExp(`generator.*no \\[Install\\] section: it cannot be ${verb}d`),
        );
      }
    });

    it('fail transient, masked and file-less units, and other states, naming them', () => {
      assert.match(failure(verifyOutcome('enable', s(HANG), s(HANG))), /transient unit created at run time/);
      assert.equal(
        failure(verifyOutcome('enable', s(PROBE_MASKED_STOPPED), s(PROBE_MASKED_STOPPED))),
        'drover-probe.service is masked (UnitFileState=masked): unmask it first',
      );
      assert.match(
        failure(verifyOutcome('disable', null, { ...s(PROBE_STOPPED), unitFileState: null })),
        /has no unit file, so it cannot be disabled/,
      );
      assert.equal(
        failure(verifyOutcome('enable', null, { ...s(PROBE_STOPPED), unitFileState: 'enabled-runtime' })),
        'drover-probe.service: expected UnitFileState=enabled after enable, but it is enabled-runtime',
      );
      assert.match(
        failure(verifyOutcome('disable', s(PROBE_STARTED), s(PROBE_STARTED))),
        /expected UnitFileState=disabled after disable, but it is enabled/,
      );
    });
  });

  describe('mask', () => {
    it('is ok when both the unit file and the loaded unit are masked, noting a unit still running', () => {
      assert.equal(
        okDetail(verifyOutcome('mask', s(PROBE_TRY_RESTARTED), s(PROBE_MASKED_RUNNING))),
        'drover-probe.service is masked: active/running pid 376 (masked), load state masked; it is still running, as mask does not stop it',
      );
      assert.equal(
        okDetail(verifyOutcome('mask', s(PROBE_STOPPED), s(PROBE_MASKED_STOPPED))),
        'drover-probe.service is masked: inactive/dead (masked), load state masked',
      );
      // Masking a name with no unit file behind it works and is kept.
      assert.equal(verifyOutcome('mask', s(NOPE), s(NOPE_MASKED)).outcome, 'ok');
    });

    it('fails a runtime mask, a mask systemd has not loaded, and no mask at all', () => {
      assert.match(
        failure(verifyOutcome('mask', null, { ...s(PROBE_MASKED_STOPPED), unitFileState: 'masked-runtime' })),
        /masked only until the next boot \(UnitFileState=masked-runtime\)/,
      );
      assert.equal(
        failure(verifyOutcome('mask', null, { ...s(PROBE_STOPPED), unitFileState: 'masked' })),
        'drover-probe.service is masked on disk, but systemd still has it loaded as loaded: run daemon-reload',
      );
      assert.equal(
        failure(verifyOutcome('mask', s(PROBE_STARTED), s(PROBE_STARTED))),
        'drover-probe.service: expected UnitFileState=masked and LoadState=masked after mask, but it is active/running pid 530 (enabled)',
      );
    });
  });

  describe('unmask', () => {
    it('is ok once neither the file nor the loaded unit is masked', () => {
      assert.equal(
        okDetail(verifyOutcome('unmask', s(PROBE_MASKED_STOPPED), s(PROBE_UNMASKED))),
        'drover-probe.service is not masked: inactive/dead (enabled)',
      );
      assert.equal(verifyOutcome('unmask', s(PROBE_STARTED), s(PROBE_STARTED)).outcome, 'ok');
    });

    it('fails a unit still masked, persistently or at run time, or still loaded as masked', () => {
      assert.equal(
        failure(verifyOutcome('unmask', s(PROBE_MASKED_STOPPED), s(PROBE_MASKED_STOPPED))),
        'drover-probe.service is still masked (UnitFileState=masked)',
      );
      assert.equal(
        failure(verifyOutcome('unmask', null, { ...s(PROBE_MASKED_STOPPED), unitFileState: 'masked-runtime' })),
        'drover-probe.service is still masked by a runtime mask under /run, until the next boot (UnitFileState=masked-runtime)',
      );
      assert.match(
        failure(verifyOutcome('unmask', null, { ...s(PROBE_MASKED_STOPPED), unitFileState: 'enabled' })),
        /still has it loaded as masked: run daemon-reload/,
      );
    });
  });

  describe('daemon-reload', () => {
    it('is ok once the unit no longer needs a daemon-reload', () => {
      assert.match(
        okDetail(verifyOutcome('daemon-reload', s(PROBE_NEEDS_RELOAD), s(PROBE_RELOADED_CONFIG))),
        /^systemd reloaded its configuration; drover-probe\.service matches its unit file on disk/,
      );
      assert.equal(verifyOutcome('daemon-reload', null, s(PROBE_STOPPED)).outcome, 'ok');
    });

    it('fails when the unit still needs one', () => {
      assert.match(
        failure(verifyOutcome('daemon-reload', s(PROBE_NEEDS_RELOAD), s(PROBE_NEEDS_RELOAD))),
        /^drover-probe\.service still reports NeedDaemonReload=yes after daemon-reload/,
      );
    });
  });

  describe('properties', () => {
    const captured = [
      PROBE_BOOT,
      PROBE_RESTARTED,
      PROBE_STOPPED,
      PROBE_MASKED_RUNNING,
      PROBE_DISABLED,
      PROBE_NEEDS_RELOAD,
      JOURNALD,
      NOPE,
      NOPE_MASKED,
      FAILED,
      HANG_STOP_TIMED_OUT,
      SLOW_ACTIVATING,
      ONESHOT_RAN,
      MASKED_TIMER,
    ].map(s);
    const snapshot: fc.Arbitrary<UnitSnapshot> = fc
      .record({
        base: fc.constantFrom(...captured),
        loadState: fc.constantFrom('loaded', 'masked', 'not-found', 'error', 'bad-setting'),
        activeState: fc.constantFrom('active', 'inactive', 'failed', 'maintenance', ...TRANSITIONAL_STATES),
        unitFileState: fc.constantFrom(
          null,
          'enabled',
          'disabled',
          'static',
          'masked',
          'masked-runtime',
          'indirect',
          'alias',
        ),
        mainPid: fc.option(fc.integer({ min: 1, max: 50 }), { nil: null }),
        invocationId: fc.constantFrom(null, 'a'.repeat(32), 'b'.repeat(32)),
        monotonic: fc.constantFrom('0', '5', '9007199254740993', '9007199254740992'),
        canReload: fc.boolean(),
        needDaemonReload: fc.boolean(),
      })
      .map(({ base, monotonic, ...fields }) => ({ ...base, ...fields, activeEnterTimestampMonotonic: monotonic }));

    it('never throws, and every verdict names the unit', () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...VERBS),
          fc.option(snapshot, { nil: null }),
          snapshot,
          (verb: Verb, before, after) => {
            const verdict = verifyOutcome(verb, before, after);
            const text = verdict.outcome === 'ok' ? verdict.detail : verdict.reason;
            assert.ok(text.includes(after.id), text);
          },
        ),
        { numRuns: 3000 },
      );
    });

    it('status is always ok; no other verb is ok on a unit not found, except an unmask of a bare mask or a stop', () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...VERBS),
          fc.option(snapshot, { nil: null }),
          snapshot,
          (verb: Verb, before, after) => {
            const verdict = verifyOutcome(verb, before, after);
            if (verb === 'status') assert.equal(verdict.outcome, 'ok');
            else if (after.loadState === 'not-found' && verb !== 'unmask' && verb !== 'stop')
              assert.equal(verdict.outcome, 'failed');
          },
        ),
        { numRuns: 2000 },
      );
    });

    it('only verbs about the running state settle, and only on a transitional state', () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...VERBS),
          fc.option(snapshot, { nil: null }),
          snapshot,
          (verb: Verb, before, after) => {
            if (verifyOutcome(verb, before, after).outcome !== 'settling') return;
            assert.ok(TRANSITIONAL_STATES.includes(after.activeState));
            assert.ok(['start', 'stop', 'restart', 'try-restart', 'reload', 'reload-or-restart'].includes(verb));
          },
        ),
        { numRuns: 2000 },
      );
    });

    it('restart is ok only for an active unit in a run other than the one before', () => {
      fc.assert(
        fc.property(snapshot, snapshot, (before, after) => {
          if (verifyOutcome('restart', before, after).outcome !== 'ok') return;
          const ranOnce = after.activeState === 'inactive' && after.result === 'success';
          assert.ok(after.activeState === 'active' || ranOnce);
          if (after.invocationId !== null) assert.notEqual(after.invocationId, before.invocationId);
        }),
        { numRuns: 2000 },
      );
    });
  });
});

import { TRANSITIONAL_STATES, type UnitSnapshot, type Verdict } from '@drover/protocol';
import type { Verb } from '@drover/protocol';

/** Verbs judged by ActiveState, which passes through transitional states on its way. */
const RUNTIME_VERBS: readonly Verb[] = ['start', 'stop', 'restart', 'try-restart', 'reload', 'reload-or-restart'];

/** Where systemd's try-restart restarts a unit rather than leaving it alone (UNIT_IS_ACTIVE_OR_ACTIVATING). */
const RUNNING_STATES: readonly string[] = ['active', 'activating', 'reloading', 'refreshing'];

/** Where systemd's reload-or-restart reloads or restarts rather than starts (UNIT_IS_ACTIVE_OR_RELOADING). */
const UP_STATES: readonly string[] = ['active', 'reloading', 'refreshing'];

/** One line for people: "active/running pid 123 (enabled)", plus whatever is unusual. */
export function describeSnapshot(s: UnitSnapshot): string {
  let text = `${s.activeState}/${s.subState}`;
  if (s.mainPid !== null) text += ` pid ${s.mainPid}`;
  if (s.unitFileState !== null) text += ` (${s.unitFileState})`;
  if (s.loadState !== 'loaded') text += `, load state ${s.loadState}`;
  if (s.result !== null && s.result !== 'success') text += `, result ${s.result}`;
  if (s.nRestarts !== null && s.nRestarts > 0) {
    text += `, restarted ${s.nRestarts} time${s.nRestarts === 1 ? '' : 's'} by systemd`;
  }
  if (s.needDaemonReload) text += ', unit file changed on disk (needs daemon-reload)';
  return text;
}

const ok = (detail: string): Verdict => ({ outcome: 'ok', detail });
const failed = (reason: string): Verdict => ({ outcome: 'failed', reason });

function expected(verb: Verb, after: UnitSnapshot, what: string, hint = ''): Verdict {
  return failed(`${after.id}: expected ${what} after ${verb}, but it is ${describeSnapshot(after)}${hint}`);
}

/**
 * Whether `after` is a different run of the unit than `before`. The InvocationID is the proof:
 * systemd draws a new one at every start and at nothing else, whereas a MainPID can change without
 * a restart (a daemon that re-executes itself). A unit that was unloaded while inactive comes back
 * without one, so the PID and then the activation time are the fallbacks.
 */
function runChange(before: UnitSnapshot, after: UnitSnapshot): 'new' | 'same' | 'unknown' {
  if (after.invocationId !== null) return after.invocationId === before.invocationId ? 'same' : 'new';
  if (before.mainPid !== null && after.mainPid !== null) return before.mainPid === after.mainPid ? 'same' : 'new';
  const then = BigInt(before.activeEnterTimestampMonotonic);
  const now = BigInt(after.activeEnterTimestampMonotonic);
  if (now > then) return 'new';
  return now === then && now !== 0n ? 'same' : 'unknown';
}

function pids(before: UnitSnapshot, after: UnitSnapshot): string {
  return `pid ${before.mainPid ?? 'none'} → ${after.mainPid ?? 'none'}`;
}

/**
 * A service that does its work and exits (Type=oneshot without RemainAfterExit) never stays
 * active: a new run that ended in success is what starting it looks like.
 */
function ranToCompletion(before: UnitSnapshot | null, after: UnitSnapshot): Verdict | null {
  if (before === null || after.activeState !== 'inactive' || after.result !== 'success') return null;
  if (runChange(before, after) !== 'new') return null;
  return ok(`${after.id} ran and exited successfully (it does not stay active): ${describeSnapshot(after)}`);
}

function notActive(verb: Verb, before: UnitSnapshot | null, after: UnitSnapshot): Verdict {
  const completed = ranToCompletion(before, after);
  if (completed) return completed;
  let hint = '';
  if (after.loadState === 'masked') hint = ': systemd refuses to start a masked unit; unmask it first';
  else if (after.activeState === 'inactive' && after.result === 'success') {
    hint = ': it did not stay running (a service that exits by design, or a Condition…= check skipped it)';
  }
  return expected(verb, after, 'ActiveState=active', hint);
}

function verifyStart(before: UnitSnapshot | null, after: UnitSnapshot): Verdict {
  if (after.activeState !== 'active') return notActive('start', before, after);
  const already = before !== null && before.activeState === 'active' && runChange(before, after) === 'same';
  return ok(`${after.id} ${already ? 'was already running' : 'is running'}: ${describeSnapshot(after)}`);
}

function verifyStop(before: UnitSnapshot | null, after: UnitSnapshot): Verdict {
  if (after.activeState === 'inactive') return ok(`${after.id} is stopped: ${describeSnapshot(after)}`);
  if (after.activeState === 'failed') {
    // stop leaves a unit that had already failed as it is (only reset-failed clears that).
    if (before !== null && before.activeState === 'failed' && runChange(before, after) !== 'new') {
      return ok(`${after.id} is not running; it had already failed before the stop: ${describeSnapshot(after)}`);
    }
    return failed(`${after.id} did not stop cleanly: it is ${describeSnapshot(after)}`);
  }
  return expected('stop', after, 'ActiveState=inactive');
}

function verifyRestart(verb: Verb, before: UnitSnapshot | null, after: UnitSnapshot): Verdict {
  if (after.activeState !== 'active') return notActive(verb, before, after);
  if (before === null) return ok(`${after.id} is running (no earlier state to compare): ${describeSnapshot(after)}`);
  const change = runChange(before, after);
  if (change === 'new') return ok(`${after.id} restarted (${pids(before, after)}): ${describeSnapshot(after)}`);
  if (change === 'same') {
    return failed(
      `${after.id}: expected a new process after ${verb}, but it is the same run as before (${pids(before, after)}, invocation ${after.invocationId ?? 'none'}): ${describeSnapshot(after)}`,
    );
  }
  return failed(
    `${after.id}: cannot tell whether ${verb} started a new process: no invocation id, main pid or activation time shows a new run (${pids(before, after)})`,
  );
}

function verifyTryRestart(before: UnitSnapshot | null, after: UnitSnapshot): Verdict {
  const wasRunning = before === null ? after.activeState === 'active' : RUNNING_STATES.includes(before.activeState);
  if (wasRunning) return verifyRestart('try-restart', before, after);
  const leftAlone =
    before === null
      ? after.activeState === 'inactive'
      : !RUNNING_STATES.includes(after.activeState) && runChange(before, after) !== 'new';
  if (leftAlone) return ok(`${after.id} is not running: nothing to restart (${describeSnapshot(after)})`);
  const was = before === null ? 'no earlier state to compare' : `it was ${describeSnapshot(before)}`;
  return failed(
    `${after.id}: expected try-restart to leave a unit that is not running alone (${was}), but it is now ${describeSnapshot(after)}`,
  );
}

/** Same process, same run: a reload that restarted the service is an outage nobody asked for. */
function verifyReloadInPlace(verb: Verb, before: UnitSnapshot | null, after: UnitSnapshot): Verdict {
  if (before === null) return ok(`${after.id} is running (no earlier state to compare): ${describeSnapshot(after)}`);
  if (runChange(before, after) === 'new') {
    return failed(
      `${after.id}: expected the same run after ${verb} (a reload keeps the process), but it restarted (${pids(before, after)}, invocation ${before.invocationId ?? 'none'} → ${after.invocationId ?? 'none'})`,
    );
  }
  if (before.mainPid !== null && after.mainPid !== null && before.mainPid !== after.mainPid) {
    return failed(`${after.id}: expected the same main process after ${verb}, but the main ${pids(before, after)}`);
  }
  return ok(`${after.id} reloaded in place (pid ${after.mainPid ?? 'none'} kept): ${describeSnapshot(after)}`);
}

function verifyReload(before: UnitSnapshot | null, after: UnitSnapshot): Verdict {
  if (after.activeState !== 'active') {
    return expected(
      'reload',
      after,
      'ActiveState=active',
      after.activeState === 'inactive' ? ': reload does not start a stopped unit' : '',
    );
  }
  if (!after.canReload)
    return failed(`${after.id} cannot reload (CanReload=no: it has no ExecReload=); restart it instead`);
  return verifyReloadInPlace('reload', before, after);
}

function verifyReloadOrRestart(before: UnitSnapshot | null, after: UnitSnapshot): Verdict {
  if (after.activeState !== 'active') return notActive('reload-or-restart', before, after);
  if (before === null || !UP_STATES.includes(before.activeState)) {
    return ok(`${after.id} was not running and is now: ${describeSnapshot(after)}`);
  }
  return before.canReload
    ? verifyReloadInPlace('reload-or-restart', before, after)
    : verifyRestart('reload-or-restart', before, after);
}

/** Why enable/disable left a unit file state other than the one asked for. */
function fileStateProblem(verb: 'enable' | 'disable', after: UnitSnapshot, want: string): string {
  const { id, unitFileState: state } = after;
  switch (state) {
    case 'static':
      return `${id} has no [Install] section (UnitFileState=static), so ${verb} does nothing: it runs when another unit, a socket, a timer or D-Bus pulls it in`;
    case 'indirect':
      return `${id} has no [Install] WantedBy=/RequiredBy= of its own (UnitFileState=indirect): its [Install] section only names other units in Also=, or an alias or another instance is what gets enabled; ${verb} those instead`;
    case 'generated':
      return `${id} is made at boot by a systemd generator (UnitFileState=generated) and has no [Install] section: it cannot be ${verb}d, change the generator's input (e.g. /etc/fstab) instead`;
    case 'transient':
      return `${id} is a transient unit created at run time, e.g. by systemd-run (UnitFileState=transient): it has no [Install] section and cannot be ${verb}d`;
    case 'masked':
    case 'masked-runtime':
      return `${id} is masked (UnitFileState=${state}): unmask it first`;
    case null:
      return `${id} has no unit file, so it cannot be ${verb}d`;
    default:
      return `${id}: expected UnitFileState=${want} after ${verb}, but it is ${state}`;
  }
}

function verifyUnitFile(verb: 'enable' | 'disable', after: UnitSnapshot): Verdict {
  const want = verb === 'enable' ? 'enabled' : 'disabled';
  if (after.unitFileState === want) return ok(`${after.id} is ${want}: ${describeSnapshot(after)}`);
  return failed(fileStateProblem(verb, after, want));
}

function verifyMask(after: UnitSnapshot): Verdict {
  if (after.unitFileState === 'masked' && after.loadState === 'masked') {
    const running = after.activeState !== 'inactive' && after.activeState !== 'failed';
    return ok(
      `${after.id} is masked: ${describeSnapshot(after)}${running ? '; it is still running, as mask does not stop it' : ''}`,
    );
  }
  if (after.unitFileState === 'masked-runtime') {
    return failed(`${after.id} is masked only until the next boot (UnitFileState=masked-runtime), not persistently`);
  }
  if (after.unitFileState === 'masked') {
    return failed(
      `${after.id} is masked on disk, but systemd still has it loaded as ${after.loadState}: run daemon-reload`,
    );
  }
  return expected('mask', after, 'UnitFileState=masked and LoadState=masked');
}

function verifyUnmask(after: UnitSnapshot): Verdict {
  if (after.unitFileState === 'masked' || after.unitFileState === 'masked-runtime') {
    const where = after.unitFileState === 'masked-runtime' ? ' by a runtime mask under /run, until the next boot' : '';
    return failed(`${after.id} is still masked${where} (UnitFileState=${after.unitFileState})`);
  }
  if (after.loadState === 'masked') {
    return failed(`${after.id} is unmasked on disk, but systemd still has it loaded as masked: run daemon-reload`);
  }
  return ok(`${after.id} is not masked: ${describeSnapshot(after)}`);
}

/**
 * Judges whether `verb` left the unit where it promises to. `before` is the state read just
 * before acting (null when there is none); `after` is read after the verb returned. 'settling'
 * asks the caller to read again until its deadline.
 */
export function verifyOutcome(verb: Verb, before: UnitSnapshot | null, after: UnitSnapshot): Verdict {
  if (verb === 'status') return ok(`${after.id} is ${describeSnapshot(after)}`);

  if (after.loadState === 'not-found') {
    // A mask of a name with no unit file behind it is legitimate (it keeps a package's unit from
    // ever starting); removing it leaves the name not-found, which is then the right end state.
    if (verb === 'unmask' && before?.loadState === 'masked' && after.unitFileState === null) {
      return ok(`${after.id} is unmasked; no unit file of that name exists, so it is now not-found`);
    }
    // A unit whose file was removed while it ran stays loaded as not-found until it stops.
    const stoppedOrphan = verb === 'stop' && before !== null && before.activeState !== 'inactive';
    if (!stoppedOrphan) return failed(`unit ${after.id} not found on the host (LoadState=not-found)`);
  }

  if (RUNTIME_VERBS.includes(verb) && TRANSITIONAL_STATES.includes(after.activeState)) {
    return {
      outcome: 'settling',
      reason: `after ${verb}, ${after.id} is still in transition: ${describeSnapshot(after)}`,
    };
  }

  switch (verb) {
    case 'start':
      return verifyStart(before, after);
    case 'stop':
      return verifyStop(before, after);
    case 'restart':
      return verifyRestart('restart', before, after);
    case 'try-restart':
      return verifyTryRestart(before, after);
    case 'reload':
      return verifyReload(before, after);
    case 'reload-or-restart':
      return verifyReloadOrRestart(before, after);
    case 'enable':
    case 'disable':
      return verifyUnitFile(verb, after);
    case 'mask':
      return verifyMask(after);
    case 'unmask':
      return verifyUnmask(after);
    case 'daemon-reload':
      return after.needDaemonReload
        ? failed(
            `${after.id} still reports NeedDaemonReload=yes after daemon-reload: its unit file or drop-ins changed again since, or the reload did not happen`,
          )
        : ok(
            `systemd reloaded its configuration; ${after.id} matches its unit file on disk: ${describeSnapshot(after)}`,
          );
  }
}

import { setTimeout as sleep } from 'node:timers/promises';
import {
  MAX_OUTCOME_OUTPUT_CHARS,
  type UnitActionOutcome,
  type UnitSnapshot,
  type UnitTaskSpec,
  type Verb,
  type Verdict,
} from '@drover/protocol';
import { legacySucceeded, legacyVerbArgv, SYSTEMD_PROBE_ARGV, verbArgv } from './commands';
import { interlock, type Interlock, interlockNote } from './daemon-reload-interlock';
import { type Diagnostics, readDiagnostics } from './diagnostics';
import type { CommandResult, Host } from './host';
import {
  boundedReadCovers,
  boundedStartJournalArgv,
  HOST_CLOCK_ARGV,
  judgeStartLimit,
  parseStartJournal,
  START_LIKE_VERBS,
  startJournalArgv,
  startLimitRefusal,
  type StartLimitVerdict,
} from './start-limit';
import { parseSnapshot, snapshotArgv } from './unit-snapshot';
import { describeSnapshot, verifyOutcome } from './verify';

/** Verbs whose repetition is not harmless: a second restart is a second outage. */
const NOT_REPEATABLE: readonly Verb[] = ['restart', 'try-restart', 'reload-or-restart'];
const SETTLE_POLL_MS = 250;
/** A failure's status and journal are read within this (or the task's timeout, when shorter). */
const DIAGNOSTICS_TIMEOUT_MS = 10_000;
/** The journal's window reaches this far before the action began: the two clocks differ a little. */
const DIAGNOSTICS_CLOCK_MARGIN_S = 2;
/** While waiting out an earlier attempt's window, how often the unit is read for a sign of its action. */
const TAKEOVER_POLL_MS = 1_000;
/** On top of that window: a "go" sent at its very end, still on its way, reaches the host. */
const TAKEOVER_MARGIN_MS = 1_000;

/** What the action learnt before acting, kept for the caller when the host fails mid-way. */
export interface ActionProgress {
  before: UnitSnapshot | null;
  /** It ran daemon-reload first. */
  reloaded: boolean;
}

/** What an earlier attempt at the same task left, when its worker was lost. */
export interface EarlierAttempt {
  /** The unit as it recorded it before acting; null when it recorded none. */
  before: UnitSnapshot | null;
  /** How long ago it was cleared to act; null when it never was. */
  clearedMsAgo: number | null;
}

/** What the action asks of whoever runs it (the task runner: its database; an agent: its controller). */
export interface UnitActionHooks {
  /**
   * Stores the state read before acting (null: none) while the host waits, so a successor can tell
   * whether the action happened. Resolving clears the action to send its verb; throwing stops it
   * before anything was sent (and the error reaches the action's caller).
   */
  clearToAct(before: UnitSnapshot | null): Promise<void>;
  /** The action waits for systemd's start limit before acting, for the reason given (for people). */
  waitingForStartLimit(reason: string): Promise<void>;
  /** After such a wait: why the action must not act any more (e.g. "cancelled"), or null. */
  stoppedMeanwhile(): Promise<string | null>;
  /** The output of a command streamed as it runs (an init script's; systemctl prints at the end). */
  onOutput?: (chunk: string) => void;
  log?: (level: 'info' | 'warn', fields: Record<string, unknown>, message: string) => void;
}

/** Time as the action sees it: real by default, scripted in specs. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const REAL_CLOCK: Clock = { now: () => Date.now(), sleep: (ms) => sleep(ms) };

export interface UnitActionInput {
  host: Host;
  spec: UnitTaskSpec;
  earlier: EarlierAttempt;
  /** Filled in as the action learns; the caller keeps it when the host throws. */
  progress: ActionProgress;
  hooks: UnitActionHooks;
  clock?: Clock;
}

/** What the start-limit check of one action found so far (systemd's start limit, see start-limit.ts). */
interface StartLimitProgress {
  /** How long the action waited for it in all: bounded by the spec's timeout. */
  waitedMs: number;
  /** The host's clock (µs) read just before acting, to tell a refusal of this start from older ones. */
  hostClock: number | null;
  /** What the reason should say about it (a wait, or starts that could not be counted). */
  note: string | null;
}

type Outcome = Omit<UnitActionOutcome, 'daemonReloaded' | 'verdict'> & { verdict?: Verdict | null };

function sameProcess(before: UnitSnapshot, now: UnitSnapshot): boolean {
  return (
    before.invocationId === now.invocationId && before.mainPid === now.mainPid && before.activeState === now.activeState
  );
}

/** stdout then stderr, without trailing blank lines; its tail when longer than the outcome's bound. */
export function joinOutput(stdout: string, stderr: string): string | null {
  const text = [stdout.trimEnd(), stderr.trimEnd()].filter((part) => part !== '').join('\n');
  if (text === '') return null;
  return text.length > MAX_OUTCOME_OUTPUT_CHARS ? `…${text.slice(-MAX_OUTCOME_OUTPUT_CHARS)}` : text;
}

function showFailure(shown: CommandResult, hostName?: string): Error {
  const where = hostName === undefined ? '' : ` on ${hostName}`;
  return new Error(`systemctl show exited ${shown.exitCode}${where}: ${shown.stderr.trim()}`);
}

/** The unit as `systemctl show` printed it; `hostName` (when given) names the host in the error. */
function snapshotFrom(shown: CommandResult, hostName?: string): UnitSnapshot {
  if (shown.exitCode !== 0) throw showFailure(shown, hostName);
  return parseSnapshot(shown.stdout);
}

/** A read of a unit on a host, e.g. for a rollout's health gate; throws when systemctl fails. */
export async function readUnit(host: Host, unit: string, timeoutMs: number): Promise<UnitSnapshot> {
  return snapshotFrom(await host.run(snapshotArgv(unit), { timeoutMs }));
}

function notActed(result: 'failed' | 'cancelled', reason: string, before: UnitSnapshot | null = null): Outcome {
  return { result, reason, exitCode: null, before, after: null, output: null };
}

function outcomeOf(
  before: UnitSnapshot | null,
  after: UnitSnapshot,
  verdict: Verdict,
  exitCode: number | null,
  note: string | null,
  output: string | null,
): Outcome {
  const result = verdict.outcome === 'ok' ? 'succeeded' : 'failed';
  const reason =
    verdict.outcome === 'ok'
      ? verdict.detail
      : verdict.outcome === 'failed'
        ? verdict.reason
        : `did not settle: ${verdict.reason}`;
  return { result, reason: note ? `${reason}; ${note}` : reason, exitCode, before, after, output, verdict };
}

/**
 * Carries out a task spec on a host: the state before, the verb, the state after until it settles,
 * and a verdict on whether the unit reached what the verb promises. When an earlier attempt at the
 * same task was lost mid-way, it finds out from the unit whether that one acted instead of acting
 * twice. Hosts without systemd are acted on through their init scripts (`service`).
 */
export async function carryOut(input: UnitActionInput): Promise<UnitActionOutcome> {
  const { spec, progress } = input;
  const action = new UnitAction(input);
  const outcome = await action.act();
  const diagnosed = await action.diagnose(outcome);
  const note = interlockNote(spec.daemonReload, spec.verb, progress.before, progress.reloaded);
  return {
    ...outcome,
    reason: [outcome.reason, diagnosed?.summary ? `the unit said: ${diagnosed.summary}` : null, note]
      .filter((part) => part !== null)
      .join('; '),
    verdict: outcome.verdict ?? null,
    daemonReloaded: note !== null && progress.reloaded,
    diagnostics: diagnosed?.text ?? null,
  };
}

class UnitAction {
  private readonly host: Host;
  private readonly spec: UnitTaskSpec;
  private readonly verb: Verb;
  private readonly unit: string | null;
  private readonly earlier: EarlierAttempt;
  private readonly progress: ActionProgress;
  private readonly hooks: UnitActionHooks;
  private readonly clock: Clock;
  private readonly limit: StartLimitProgress = { waitedMs: 0, hostClock: null, note: null };
  /** A verb that may start the unit: its recent starts are judged before acting (see start-limit.ts). */
  private readonly checksStartLimit: boolean;
  /**
   * Whether the unit's starts are counted in its journal, the costliest read of an action on the
   * host. A unit being restarted is usually active since long before the limit's interval, which its
   * state shows without the journal (see startedBefore); only when it cannot does a second session
   * count. A unit being started is usually down, which never shows that: its first session counts.
   */
  private countsStarts: boolean;
  /** The interval the last journal read was bounded by (null: it was not bounded). */
  private journalBoundBy: string | null = null;
  /** Set once a bounded read turned out too short: the journal is read unbounded from then on. */
  private readsJournalUnbounded = false;
  /** When the action began (this side's clock), for the journal's window when the host's clock was not read. */
  private readonly startedAt: number;

  constructor(input: UnitActionInput) {
    this.host = input.host;
    this.spec = input.spec;
    this.verb = input.spec.verb;
    this.unit = input.spec.unit;
    this.earlier = input.earlier;
    this.progress = input.progress;
    this.hooks = input.hooks;
    this.clock = input.clock ?? REAL_CLOCK;
    this.startedAt = this.clock.now();
    this.checksStartLimit = this.unit !== null && START_LIKE_VERBS.includes(this.verb);
    this.countsStarts = this.verb === 'start';
  }

  /**
   * The reads for the start limit: the host's clock, then (when needed) the journal, bounded to the
   * limit's interval when `read` (the unit as this action read it) shows one and the host takes
   * such a command line. Each is optional: a sudo refusal only skips the check.
   */
  private counting(read: UnitSnapshot | null): (readonly string[])[] {
    if (!this.checksStartLimit) return [];
    if (!this.countsStarts) return [HOST_CLOCK_ARGV];
    const interval = read?.startLimitIntervalUSec ?? null;
    const bounded =
      read === null || this.host.fixedCommandLines || this.readsJournalUnbounded
        ? null
        : boundedStartJournalArgv(this.unit!, interval);
    this.journalBoundBy = bounded === null ? null : interval;
    return [HOST_CLOCK_ARGV, bounded ?? startJournalArgv(this.unit!)];
  }

  private exec(argv: readonly string[], onData?: (chunk: string) => void): Promise<CommandResult> {
    return this.host.run(argv, { timeoutMs: this.spec.timeoutMs, ...(onData ? { onData } : {}) });
  }

  private readonly snapshot = async (): Promise<UnitSnapshot | null> =>
    this.unit ? snapshotFrom(await this.exec(snapshotArgv(this.unit)), this.host.name) : null;

  /** Whether the start limit lets this action act now; records what the reason should say. */
  private withinLimit(current: UnitSnapshot | null, counted: CommandResult[]): StartLimitVerdict {
    const intervalNow = current?.startLimitIntervalUSec ?? null;
    if (counted[1] && this.journalBoundBy !== null && !boundedReadCovers(this.journalBoundBy, intervalNow)) {
      // The interval grew between the reading that bounded the journal and this one (a
      // daemon-reload meanwhile): starts older than the read may count. Read it all.
      this.readsJournalUnbounded = true;
      return { action: 'count' };
    }
    const verdict = judgeStartLimit({
      verb: this.verb,
      unit: this.unit ?? '',
      before: current,
      clock: counted[0],
      journal: counted[1],
      waitedMs: this.limit.waitedMs,
      budgetMs: this.spec.timeoutMs,
    });
    if (verdict.action === 'act') Object.assign(this.limit, { hostClock: verdict.hostClock, note: verdict.note });
    return verdict;
  }

  /** Whether the unit's definition changed on disk stops this action, or needs a daemon-reload first. */
  private interlockOf(before: UnitSnapshot | null): Interlock {
    return this.unit ? interlock(this.spec.daemonReload, this.verb, this.unit, before) : { kind: 'act' };
  }

  /**
   * One session when nothing is in transition: it reads the unit's state (a `systemctl show` that
   * answers shows the host runs systemd; without a unit, the probe asks), pauses while that state is
   * stored (so a lost worker's successor can tell whether the action happened), then runs the verb
   * and reads the state again. After a lost attempt, and before the host's identity is settled, the
   * reading and the action are separate round trips.
   */
  async act(): Promise<Outcome> {
    const { verb, unit, progress, host } = this;
    const action = unit ? [verbArgv(verb, unit), snapshotArgv(unit)] : [verbArgv(verb, unit)];
    const recorded = this.earlier.before;
    const commandSentMsAgo = this.earlier.clearedMsAgo;
    const timeoutMs = this.spec.timeoutMs;

    let before: UnitSnapshot | null = null;
    let acted: CommandResult[] | null = null;
    if (!recorded && commandSentMsAgo === null && host.identified) {
      // The unit as the last session read it: after one that could not rule out recent starts, the
      // journal read is bounded by the limit's interval it showed.
      let lastRead: UnitSnapshot | null = null;
      for (;;) {
        const counting = this.counting(lastRead);
        const look = unit ? [snapshotArgv(unit), ...counting] : [SYSTEMD_PROBE_ARGV];
        // Set when the first read failed, or the unit's changed definition or the start limit stops
        // the session before the "go".
        const held: {
          unread?: CommandResult;
          verdict?: StartLimitVerdict;
          interlock?: Exclude<Interlock, { kind: 'act' }>;
        } = {};
        const ran = await host.runSequence([...look, ...action], {
          timeoutMs,
          optional: counting.map((_, index) => 1 + index),
          pause: {
            after: look.length,
            proceed: async ([first, ...counted]) => {
              if (first!.exitCode !== 0) {
                held.unread = first!;
                return false;
              }
              progress.before = unit ? snapshotFrom(first!, host.name) : null;
              lastRead = progress.before;
              const decision = this.interlockOf(progress.before);
              if (decision.kind !== 'act') {
                held.interlock = decision;
                return false;
              }
              held.verdict = this.withinLimit(progress.before, counted);
              if (held.verdict.action !== 'act') return false;
              await this.hooks.clearToAct(progress.before);
              return true;
            },
          },
        });
        if (ran.proceeded) {
          before = progress.before;
          acted = ran.steps.slice(look.length);
          break;
        }
        if (held.unread) return this.unreadable(held.unread);
        if (held.interlock) {
          // Nothing was sent; what follows reads the unit again in separate round trips.
          const stop = await this.applyInterlock(held.interlock);
          if (stop) return stop;
          break;
        }
        if (!held.verdict) throw new Error(`the session on ${host.name} ended before drover decided to act`);
        if (held.verdict.action === 'count') {
          this.countsStarts = true;
          continue;
        }
        const stopped = await this.holdForStartLimit(held.verdict, progress.before);
        if (stopped) return stopped;
      }
    }
    if (acted === null) {
      // A rare path: the starts are counted in the journal without first asking the unit's state.
      this.countsStarts = true;
      const look = unit ? [SYSTEMD_PROBE_ARGV, snapshotArgv(unit)] : [SYSTEMD_PROBE_ARGV];
      const looked = await host.runSequence(look, { timeoutMs });
      const probe = looked.steps[0]!;
      if (probe.exitCode !== 0) return this.withoutSystemd(probe);
      const current = unit ? snapshotFrom(looked.steps[1]!, host.name) : null;
      if (recorded) {
        const settled = await this.recover(recorded, current);
        if (settled) return settled;
      }
      if (commandSentMsAgo !== null) {
        const settled = await this.waitOutEarlierAttempt(recorded, commandSentMsAgo);
        if (settled) return settled;
      }
      if (!progress.reloaded) {
        const decision = this.interlockOf(current);
        if (decision.kind !== 'act') {
          progress.before = recorded ?? current;
          const stop = await this.applyInterlock(decision);
          if (stop) return stop;
        }
      }
      // (An earlier attempt cleared to act always recorded the state before, when there is a unit.)
      // After a daemon-reload the state before is still the reading that showed the changed unit.
      before = recorded ?? (progress.reloaded && progress.before ? progress.before : current);
      progress.before = before;
      let now = current;
      for (;;) {
        const counting = this.counting(now);
        const held: { verdict?: StartLimitVerdict } = {};
        // Cleared by the caller's write while the host waits, like the single-session path above.
        const ran = await host.runSequence([SYSTEMD_PROBE_ARGV, ...counting, ...action], {
          timeoutMs,
          optional: counting.map((_, index) => 1 + index),
          pause: {
            after: 1 + counting.length,
            proceed: async ([, ...counted]) => {
              held.verdict = this.withinLimit(now, counted);
              if (held.verdict.action !== 'act') return false;
              await this.hooks.clearToAct(recorded ? null : before);
              return true;
            },
          },
        });
        if (ran.proceeded) {
          acted = ran.steps.slice(1 + counting.length);
          break;
        }
        if (!held.verdict) throw new Error(`the session on ${host.name} ended before drover decided to act`);
        // The journal read again, unbounded (the interval grew since `now` was read).
        if (held.verdict.action === 'count') continue;
        const stopped = await this.holdForStartLimit(held.verdict, before);
        if (stopped) return stopped;
        now = await this.snapshot();
      }
    }
    return this.judge(before, acted);
  }

  /**
   * After the verb ran and the task failed: the unit's status and its journal since the action
   * began, and the first line of its own that explains it. Nothing when the verb never ran (the
   * reason says why already) or the host cannot tell (that failure is the task's, not this read's).
   */
  async diagnose(outcome: Outcome): Promise<Diagnostics | null> {
    if (outcome.result !== 'failed' || this.unit === null || outcome.exitCode === null) return null;
    const since =
      this.limit.hostClock !== null
        ? { hostClockUs: this.limit.hostClock }
        : { secondsAgo: (this.clock.now() - this.startedAt) / 1000 + DIAGNOSTICS_CLOCK_MARGIN_S };
    try {
      return await readDiagnostics(this.host, this.unit, since, Math.min(this.spec.timeoutMs, DIAGNOSTICS_TIMEOUT_MS));
    } catch (error) {
      this.hooks.log?.('warn', { err: error }, `could not read ${this.unit}'s status and journal after it failed`);
      return null;
    }
  }

  /** What the verb's command and the unit read after it say, once the unit settled. */
  private async judge(before: UnitSnapshot | null, acted: CommandResult[]): Promise<Outcome> {
    const { verb, unit, limit } = this;
    // systemctl prints nothing until its job is done, so its output is kept for the end rather
    // than streamed (the steps of one session are told apart only once it ends).
    const result = acted[0]!;
    const output = joinOutput(result.stdout, result.stderr);
    const failedCommand = verb !== 'status' && result.exitCode !== 0;

    const settled = await this.settle(before, acted[1] ? snapshotFrom(acted[1], this.host.name) : null);
    if (failedCommand) {
      const refused = this.checksStartLimit
        ? await this.refusedByStartLimit(before, settled?.after ?? null, result.stderr)
        : null;
      const why = refused ?? (result.stderr.trim().split('\n').slice(-3).join(' ') || 'no error output');
      return {
        result: 'failed',
        reason: `systemctl ${verb} exited ${result.exitCode}: ${why}${limit.note ? `; ${limit.note}` : ''}`,
        exitCode: result.exitCode,
        before,
        after: settled?.after ?? null,
        output,
      };
    }
    if (!settled) {
      const reason = `${verb} done${limit.note ? `; ${limit.note}` : ''}`;
      return { result: 'succeeded', reason, exitCode: result.exitCode, before, after: null, output };
    }
    if (verb === 'mask' && settled.verdict.outcome === 'ok' && unit) {
      const start = await this.exec(verbArgv('start', unit));
      if (start.exitCode === 0) {
        return outcomeOf(
          before,
          settled.after,
          { outcome: 'failed', reason: 'the unit is masked but a start attempt succeeded' },
          result.exitCode,
          null,
          output,
        );
      }
    }
    return outcomeOf(before, settled.after, settled.verdict, result.exitCode, limit.note, output);
  }

  /**
   * The start limit says not now. Either the wait would outlast the action (it fails, saying what
   * to do) or it waits here and says so (hooks.waitingForStartLimit). Returns the outcome when it
   * must not act any more.
   */
  private async holdForStartLimit(verdict: StartLimitVerdict, before: UnitSnapshot | null): Promise<Outcome | null> {
    if (verdict.action === 'fail') return notActed('failed', verdict.reason, before);
    if (verdict.action !== 'wait') return null;
    await this.hooks.waitingForStartLimit(verdict.reason);
    this.hooks.log?.('info', { waitMs: verdict.waitMs }, verdict.reason);
    await this.clock.sleep(verdict.waitMs);
    this.limit.waitedMs += verdict.waitMs;
    // A rollout cancelled or aborted meanwhile starts nothing new: this action has not acted yet.
    const stopped = await this.hooks.stoppedMeanwhile();
    if (stopped) {
      return notActed(
        'cancelled',
        `not acted: the rollout was ${stopped} while this task waited for systemd's start limit`,
        before,
      );
    }
    return null;
  }

  /**
   * Whether systemd refused the verb's start because of the start limit, in words for the reason.
   * systemctl and Result= usually say so; when the unit's last run had failed, systemd 252 keeps
   * that Result and only the journal shows the refusal, so it is read once more then.
   */
  private async refusedByStartLimit(
    before: UnitSnapshot | null,
    after: UnitSnapshot | null,
    stderr: string,
  ): Promise<string | null> {
    const unit = this.unit!;
    const said = startLimitRefusal({ unit, before, after, stderr });
    if (said !== null || this.limit.hostClock === null) return said;
    try {
      const read = await this.exec(startJournalArgv(unit));
      if (read.exitCode !== 0) return null;
      return startLimitRefusal({
        unit,
        before,
        after,
        stderr,
        journal: parseStartJournal(read.stdout),
        since: this.limit.hostClock,
      });
    } catch (error) {
      // It failed either way; a second look that fails only leaves its reason as systemctl gave it.
      this.hooks.log?.(
        'warn',
        { err: error },
        'could not read the journal to tell whether the start limit refused the start',
      );
      return null;
    }
  }

  /**
   * A changed definition stopped the action before acting: the outcome that ends it (refused, or a
   * daemon-reload that failed), or null once daemon-reload ran and it may act.
   */
  private async applyInterlock(decision: Exclude<Interlock, { kind: 'act' }>): Promise<Outcome | null> {
    const { progress } = this;
    if (decision.kind === 'refuse') return notActed('failed', decision.reason, progress.before);
    // Re-reading unit files is harmless to repeat, so it needs no fencing of its own.
    const reloaded = await this.exec(verbArgv('daemon-reload', null));
    if (reloaded.exitCode !== 0) {
      return {
        result: 'failed',
        reason: `not acted on: the unit changed on disk and daemon-reload, run first (daemonReload 'auto'), exited ${reloaded.exitCode}: ${reloaded.stderr.trim() || 'no error output'}`,
        exitCode: reloaded.exitCode,
        before: progress.before,
        after: null,
        output: joinOutput(reloaded.stdout, reloaded.stderr),
      };
    }
    progress.reloaded = true;
    return null;
  }

  /**
   * An earlier attempt recorded the state before acting and then was lost: finds out whether its
   * action took effect. Returns the outcome when it must not act again, null when it should act.
   */
  private async recover(recorded: UnitSnapshot, current: UnitSnapshot | null): Promise<Outcome | null> {
    const { verb } = this;
    const now = await this.settle(recorded, current);
    // A verb whose check the old state already passes (a reload keeps the PID) cannot show
    // whether the lost attempt acted: run it again rather than claim it happened.
    const provable = verifyOutcome(verb, recorded, recorded).outcome !== 'ok';
    if (now && provable && now.verdict.outcome === 'ok' && verb !== 'status') {
      return outcomeOf(
        recorded,
        now.after,
        now.verdict,
        null,
        'completed by an earlier attempt whose worker was lost; not repeated',
        null,
      );
    }
    if (now && NOT_REPEATABLE.includes(verb) && !sameProcess(recorded, now.after)) {
      return {
        result: 'failed',
        reason: `an earlier attempt was interrupted and the unit changed since (${describeSnapshot(recorded)} → ${describeSnapshot(now.after)}); not repeating ${verb}`,
        exitCode: null,
        before: recorded,
        after: now.after,
        output: null,
      };
    }
    return null;
  }

  /**
   * An earlier attempt was cleared to act and may still be live (a paused or cut-off worker): the
   * host accepts its "go" until goWindowMs after its sequence began, which was before it was
   * cleared. Until that has passed, watches the unit for its action (recover): returns the
   * outcome if it shows, null once acting cannot race it any more.
   */
  private async waitOutEarlierAttempt(
    recorded: UnitSnapshot | null,
    commandSentMsAgo: number,
  ): Promise<Outcome | null> {
    const remainingMs = this.host.goWindowMs(this.spec.timeoutMs) + TAKEOVER_MARGIN_MS - Math.max(0, commandSentMsAgo);
    if (remainingMs <= 0) return null;
    this.hooks.log?.(
      'warn',
      { remainingMs },
      'an earlier attempt was cleared to act and may still be live; waiting out its window before acting',
    );
    const until = this.clock.now() + remainingMs;
    while (this.clock.now() < until) {
      await this.clock.sleep(Math.min(TAKEOVER_POLL_MS, until - this.clock.now()));
      if (recorded) {
        const settled = await this.recover(recorded, await this.snapshot());
        if (settled) return settled;
      }
    }
    return null;
  }

  /**
   * The session's first read failed: without a unit that was the probe; a `systemctl show` that
   * failed is the unit's error on a host that runs systemd, else the probe tells what the host is.
   */
  private async unreadable(first: CommandResult): Promise<Outcome> {
    const probe = this.unit ? await this.exec(SYSTEMD_PROBE_ARGV) : first;
    if (probe.exitCode === 0) throw showFailure(first, this.host.name);
    return this.withoutSystemd(probe);
  }

  /** The systemd probe said no (exit 1: act through the init script) or could not tell. */
  private async withoutSystemd(probe: CommandResult): Promise<Outcome> {
    if (probe.exitCode === 1) return this.actWithoutSystemd();
    return {
      result: 'failed',
      reason: `could not tell whether ${this.host.name} runs systemd (probe exit ${probe.exitCode}: ${probe.stderr.trim() || 'no output'})`,
      exitCode: probe.exitCode,
      before: null,
      after: null,
      output: null,
    };
  }

  /** Reads the unit until it leaves transitional states (activating, reloading...) or time runs out. */
  private async settle(
    before: UnitSnapshot | null,
    first: UnitSnapshot | null,
  ): Promise<{ after: UnitSnapshot; verdict: Verdict } | null> {
    const deadline = this.clock.now() + this.spec.settleTimeoutMs;
    for (let after = first; after; after = await this.snapshot()) {
      const verdict = verifyOutcome(this.verb, before, after);
      if (verdict.outcome !== 'settling' || this.clock.now() >= deadline) return { after, verdict };
      await this.clock.sleep(SETTLE_POLL_MS);
    }
    return null;
  }

  private async actWithoutSystemd(): Promise<Outcome> {
    const { verb, unit } = this;
    const plan = unit ? legacyVerbArgv(verb, unit) : { supported: false as const, reason: `${verb} needs systemd` };
    if (!plan.supported) return notActed('failed', plan.reason);
    // An init script leaves no state to compare: whether an earlier attempt's command took effect
    // cannot be told, and sending it again could be a second outage. Only status is harmless.
    if (this.earlier.clearedMsAgo !== null && verb !== 'status') {
      return notActed(
        'failed',
        `an earlier attempt sent \`${plan.argv.join(' ')}\` and its result was lost; not repeated (a host without systemd cannot show whether it took effect)`,
      );
    }
    await this.hooks.clearToAct(null);
    const result = await this.exec(plan.argv, this.hooks.onOutput);
    const verdict = legacySucceeded(verb, result.exitCode);
    return {
      result: verdict.ok ? 'succeeded' : 'failed',
      reason: verdict.ok ? `service ${verb} done (host without systemd)` : verdict.reason,
      exitCode: result.exitCode,
      before: null,
      after: null,
      output: joinOutput(result.stdout, result.stderr),
    };
  }
}

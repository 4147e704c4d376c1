import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type Redis from 'ioredis';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { HostsRepository } from '../hosts/hosts.repository';
import { JobDeferred } from '../infra/queue/job-deferred';
import { JobProducer } from '../infra/queue/job-producer';
import { REDIS } from '../infra/redis/redis.module';
import { RedisLease } from '../infra/redis/redis-lock';
import { HostKeyMismatchError, SshError } from '../infra/ssh/ssh-errors';
import { confirmWindowMs, SshExecutor, SshTarget, StepResult } from '../infra/ssh/ssh-executor';
import { UnitsRepository } from '../units/units.repository';
import { DispatcherService } from './dispatcher.service';
import { TaskOutputStream } from './task-output';
import type { AuditActor } from '../audit/audit-actor';
import { OperationsRepository, StartedAttempt, TaskState, TaskWithContext, UnitHold } from './operations.repository';
import { type DaemonReloadPolicy, UnitSnapshot, type Verb, type Verdict } from '@drover/protocol';
import {
  describeSnapshot,
  HOST_CLOCK_ARGV,
  interlock,
  Interlock,
  interlockNote,
  judgeStartLimit,
  legacySucceeded,
  legacyVerbArgv,
  parseSnapshot,
  parseStartJournal,
  snapshotArgv,
  START_LIKE_VERBS,
  startJournalArgv,
  startLimitRefusal,
  StartLimitVerdict,
  SYSTEMD_PROBE_ARGV,
  verbArgv,
  verifyOutcome,
} from '@drover/systemd';

/** Verbs whose repetition is not harmless: a second restart is a second outage. */
const NOT_REPEATABLE: readonly Verb[] = ['restart', 'try-restart', 'reload-or-restart'];
const SETTLE_POLL_MS = 250;
const MAX_OUTPUT_CHARS = 64 * 1024;
/** While waiting out an earlier attempt's window, how often the unit is read for a sign of its action. */
const TAKEOVER_POLL_MS = 1_000;
/** On top of that window: a "go" sent at its very end, still on its way, reaches the host. */
const TAKEOVER_MARGIN_MS = 1_000;
/** How often a task whose unit another rollout holds looks again (gates last seconds to minutes). */
const HOLD_POLL_MS = 1_000;

/**
 * The attempt's task was taken over by a newer attempt (its worker lost its leases while it was
 * still alive: paused, cut off) or ended meanwhile: it must neither act nor record anything more.
 */
class AttemptSuperseded extends Error {}

/** What the start-limit check of one task found so far (systemd's start limit, see start-limit.ts). */
interface StartLimitProgress {
  /** How long the task waited for it in all: bounded by the task's timeout. */
  waitedMs: number;
  /** The host's clock (µs) read just before acting, to tell a refusal of this start from older ones. */
  hostClock: number | null;
  /** What the task's reason should say about it (a wait, or starts that could not be counted). */
  note: string | null;
}

interface ExecOutcome {
  state: TaskState;
  reason: string;
  exitCode: number | null;
  before: UnitSnapshot | null;
  after: UnitSnapshot | null;
  /** undefined: already streamed into the task row. */
  output: string | null | undefined;
  /** daemon-reload ran before the verb (daemonReload 'auto'). */
  daemonReloaded?: boolean;
}

/** What the attempt learnt before acting, kept when a host fails mid-way. */
interface Progress {
  before: UnitSnapshot | null;
  /** It ran daemon-reload first. */
  reloaded: boolean;
}

/** What a task's end leaves to record once whoever waits for it has been told. */
interface Afterwards {
  target: SshTarget;
  outcome: ExecOutcome;
  /** The contact to record: true, it answered; false, unreachable; null, nothing to tell (a timeout). */
  reached: boolean | null;
}

function sameProcess(before: UnitSnapshot, now: UnitSnapshot): boolean {
  return (
    before.invocationId === now.invocationId && before.mainPid === now.mainPid && before.activeState === now.activeState
  );
}

function joinOutput(stdout: string, stderr: string): string | null {
  const text = [stdout.trimEnd(), stderr.trimEnd()].filter((part) => part !== '').join('\n');
  if (text === '') return null;
  return text.length > MAX_OUTPUT_CHARS ? `…${text.slice(-MAX_OUTPUT_CHARS)}` : text;
}

/** The task as an attempt took it over: its number (the fencing token) and what earlier ones left. */
function attemptAt(task: TaskWithContext, started: StartedAttempt): TaskWithContext {
  return { ...task, attempts: started.attempt, before: started.before };
}

/**
 * Executes one task on its host: state before, the verb, state after until it settles, and a
 * verdict on whether the unit reached the state the verb promises. Safe to run again for the same
 * task after a worker died mid-way: it resumes from what it recorded instead of acting twice.
 */
@Injectable()
export class TaskRunnerService {
  private readonly logger = new Logger(TaskRunnerService.name);

  constructor(
    private readonly operations: OperationsRepository,
    private readonly hosts: HostsRepository,
    private readonly units: UnitsRepository,
    private readonly dispatcher: DispatcherService,
    private readonly producer: JobProducer,
    private readonly ssh: SshExecutor,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async run(taskId: string): Promise<void> {
    const task = await this.operations.findForRun(taskId);
    if (!task) return;
    // One owner per delivery: a redelivered job never shares the unit with a worker that may still
    // be acting (a long pause, not a crash). A dead worker's lease lapses as fast as its job lock.
    const owner = `${task.id}:${randomUUID()}`;
    const lease = await RedisLease.acquire(this.redis, this.lockKey(task), owner, this.config.JOB_LOCK_DURATION_MS);
    if (!lease) {
      await this.onConflict(task);
      return;
    }
    let ended: Afterwards | null = null;
    let hold: UnitHold | null;
    try {
      // Read holding the unit's lease: a holder's task ends before it lets go of the lease, so a
      // hold that starts after this read cannot be missed.
      hold = task.state === 'queued' ? await this.operations.unitHolder(task) : null;
      const started = hold ? null : await this.operations.startAttempt(task);
      if (started) ended = await this.execute(attemptAt(task, started), started.commandSentMsAgo);
    } finally {
      await lease.release();
    }
    if (hold) {
      await this.heldByRollout(task, hold);
      return;
    }
    // Whoever waits for this task (the operation's next task, a rollout's step) hears of it first;
    // what follows only keeps the inventory current.
    await this.dispatcher.dispatch(task.operationId);
    if (ended) await this.recordAfterwards(task, ended);
  }

  /**
   * A task whose job ran out of attempts (its workers kept dying, or the database or Redis stayed
   * away): it ends as failed with the reason, so its operation can finish and nothing waits forever.
   */
  async abandon(taskId: string, cause: string): Promise<void> {
    const task = await this.operations.findForRun(taskId);
    if (!task) return;
    const started = await this.operations.startAttempt(task);
    if (started === null) return;
    await this.finish(attemptAt(task, started), {
      state: 'failed',
      reason: `gave up after ${started.attempt - 1} attempt(s): ${cause}`,
      exitCode: null,
      before: started.before ? (started.before as unknown as UnitSnapshot) : null,
      after: null,
      output: null,
    });
    await this.dispatcher.dispatch(task.operationId);
  }

  /** Never two tasks on the same unit of a host at once, across every worker. */
  private lockKey(task: TaskWithContext): string {
    return `${this.config.QUEUE_PREFIX}:unit-lock:${task.hostId ?? task.hostName}:${task.unit ?? '(host)'}`;
  }

  /**
   * Another rollout acts on this unit or judges it in its health gate: wait for it to let go (the
   * task shows what it waits for), or fail at once when the operation rejects conflicts.
   */
  private async heldByRollout(task: TaskWithContext, hold: UnitHold): Promise<void> {
    const what = hold.hostState === 'gating' ? 'its health gate watches' : 'it is acting on';
    const waitingFor = `rollout ${hold.rolloutId} holds ${task.unit} on ${task.hostName}: ${what} it`;
    if (task.operation.onConflict === 'wait') {
      await this.operations.markWaiting(task, waitingFor, hold.rolloutId);
      throw new JobDeferred(HOLD_POLL_MS);
    }
    const started = await this.operations.startAttempt(task);
    if (started === null) return;
    await this.finish(attemptAt(task, started), {
      state: 'failed',
      reason: `${waitingFor}; this operation asked to reject conflicts`,
      exitCode: null,
      before: null,
      after: null,
      output: null,
    });
    await this.dispatcher.dispatch(task.operationId);
  }

  private async onConflict(task: TaskWithContext): Promise<void> {
    const holder = await RedisLease.holder(this.redis, this.lockKey(task));
    // An earlier delivery of this same task still holds the unit (its worker is gone or paused):
    // always wait for it, whatever the operation says about other tasks.
    if (task.operation.onConflict === 'wait' || holder?.startsWith(`${task.id}:`)) throw new JobDeferred(1_000);
    const started = await this.operations.startAttempt(task);
    if (started === null) return;
    await this.finish(attemptAt(task, started), {
      state: 'failed',
      reason: `another task (${holder ?? 'just finished'}) is acting on ${task.unit ?? 'this host'} on ${task.hostName}; this operation asked to reject conflicts`,
      exitCode: null,
      before: null,
      after: null,
      output: null,
    });
    await this.dispatcher.dispatch(task.operationId);
  }

  /**
   * `task` as this attempt took it over (its `attempts` is the attempt's fencing token).
   * `commandSentMsAgo`: how long ago an earlier attempt was cleared to act, or null.
   */
  private async execute(task: TaskWithContext, commandSentMsAgo: number | null): Promise<Afterwards | null> {
    if (!task.host) {
      await this.finish(task, {
        state: 'failed',
        reason: `host ${task.hostName} was removed from the inventory`,
        exitCode: null,
        before: null,
        after: null,
        output: null,
      });
      return null;
    }
    const target: SshTarget = { hostId: task.host.id, ...task.host };
    let outcome: ExecOutcome;
    let reached: boolean | null = true;
    // What this attempt recorded before acting, so a host that fails mid-way keeps it.
    const progress: Progress = {
      before: task.before ? (task.before as unknown as UnitSnapshot) : null,
      reloaded: false,
    };
    try {
      outcome = await this.act(task, target, progress, commandSentMsAgo);
      const note = interlockNote(this.policyOf(task), task.verb as Verb, progress.before, progress.reloaded);
      if (note) outcome = { ...outcome, reason: `${outcome.reason}; ${note}`, daemonReloaded: progress.reloaded };
    } catch (error) {
      if (error instanceof AttemptSuperseded) {
        this.logger.warn(
          { taskId: task.id, host: task.hostName, unit: task.unit, attempt: task.attempts },
          error.message,
        );
        return null;
      }
      if (!(error instanceof SshError)) throw error;
      outcome = {
        state: error.kind === 'unreachable' ? 'unreachable' : error.kind === 'timed_out' ? 'timed_out' : 'failed',
        reason: error.message,
        exitCode: null,
        before: progress.before,
        after: null,
        // Keep whatever output was streamed before the failure.
        output: undefined,
      };
      reached = error.kind === 'unreachable' ? false : null;
    }
    // Not recorded (a newer attempt owns the task): nothing more of this attempt's is recorded either.
    if (!(await this.finish(task, outcome))) return null;
    return { target, outcome, reached };
  }

  /** The host's last contact, the unit as the task left it, and a fresh look at the whole host. */
  private async recordAfterwards(task: TaskWithContext, { target, outcome, reached }: Afterwards): Promise<void> {
    if (reached !== null) await this.hosts.recordContact(target.hostId, reached);
    if (outcome.after && task.unit) {
      await this.units.upsertOne(target.hostId, {
        name: task.unit,
        description: outcome.after.description,
        loadState: outcome.after.loadState,
        activeState: outcome.after.activeState,
        subState: outcome.after.subState,
        unitFileState: outcome.after.unitFileState,
        mainPid: outcome.after.mainPid,
      });
    }
    // Every action is followed by a fresh look at the whole host (deduplicated per host). A
    // rollout's hosts get theirs when the rollout ends, not while later batches still act.
    if (outcome.state !== 'unreachable' && task.operation.rolloutId === null) {
      await this.producer.discoverHost(target.hostId, 1_000);
    }
  }

  /** Ends the task with this attempt's outcome; false when it had ended or a newer attempt owns it. */
  private async finish(task: TaskWithContext, outcome: ExecOutcome): Promise<boolean> {
    // The worker acts for whoever asked; the source address was recorded with the request.
    const actor: AuditActor = {
      actorTokenId: task.operation.requestedByTokenId,
      actorName: task.operation.requestedBy,
      requestId: task.operation.requestId,
      sourceAddress: null,
    };
    const ended = await this.operations.finish(task, outcome, actor);
    if (ended) {
      this.logger.log(
        {
          taskId: task.id,
          operationId: task.operationId,
          host: task.hostName,
          unit: task.unit,
          verb: task.verb,
          state: outcome.state,
        },
        `${task.verb} ${task.unit ?? ''} on ${task.hostName}: ${outcome.state} (${outcome.reason})`,
      );
    } else {
      this.logger.warn(
        { taskId: task.id, host: task.hostName, unit: task.unit, attempt: task.attempts, state: outcome.state },
        'the task had ended or a newer attempt took it over; this attempt’s outcome is not recorded',
      );
    }
    return ended;
  }

  /**
   * The write that clears this attempt to send its command, fenced on its attempt number: it
   * stores the state before (so a later attempt can tell what happened) and when. Throws
   * AttemptSuperseded when a newer attempt owns the task: then nothing must be sent.
   */
  private async clearToAct(task: TaskWithContext, before: UnitSnapshot | null): Promise<void> {
    const cleared = await this.operations.clearToAct(task.id, task.attempts, before);
    if (!cleared) {
      throw new AttemptSuperseded(
        `attempt ${task.attempts} at ${task.verb} ${task.unit ?? ''} on ${task.hostName} lost the task to a newer attempt (or it ended); not acting`,
      );
    }
  }

  /**
   * One SSH session when nothing is in transition: it reads whether the host runs systemd and the
   * unit's state, pauses while that state is stored (so a lost worker's successor can tell whether
   * the action happened), then runs the verb and reads the state again. After a lost worker, and
   * before a first host key is pinned, the reading and the action are separate round trips.
   */
  private async act(
    task: TaskWithContext,
    target: SshTarget,
    progress: Progress,
    commandSentMsAgo: number | null,
  ): Promise<ExecOutcome> {
    const verb = task.verb as Verb;
    const unit = task.unit;
    const options = { timeoutMs: task.operation.commandTimeoutMs, trustOnFirstUse: task.operation.trustOnFirstUse };
    const pinKey = async (fingerprint: string) => {
      if (target.hostKeyFingerprint === null) await this.trustFirstKey(task, target, fingerprint);
    };
    const exec = async (argv: readonly string[], onData?: (chunk: string) => void) => {
      const result = await this.ssh.exec(target, argv, { ...options, ...(onData ? { onData } : {}) });
      await pinKey(result.hostKeyFingerprint);
      return result;
    };
    const snapshot = async () => (unit ? this.snapshotOf(task, await exec(snapshotArgv(unit))) : null);
    // Before a verb that may start the unit, the same session counts its recent starts (the host's
    // clock, then its journal): reads drover can do without, so a sudo refusal only skips the check.
    const counting = unit && START_LIKE_VERBS.includes(verb) ? [HOST_CLOCK_ARGV, startJournalArgv(unit)] : [];
    const look = unit ? [SYSTEMD_PROBE_ARGV, snapshotArgv(unit), ...counting] : [SYSTEMD_PROBE_ARGV];
    const action = unit ? [verbArgv(verb, unit), snapshotArgv(unit)] : [verbArgv(verb, unit)];
    const recorded = task.before ? (task.before as unknown as UnitSnapshot) : null;
    const limit: StartLimitProgress = { waitedMs: 0, hostClock: null, note: null };
    /** Whether the start limit lets this attempt act now; records what the task's reason should say. */
    const withinLimit = (current: UnitSnapshot | null, counted: StepResult[]): StartLimitVerdict => {
      const verdict = judgeStartLimit({
        verb,
        unit: unit ?? '',
        before: current,
        clock: counted[0],
        journal: counted[1],
        waitedMs: limit.waitedMs,
        budgetMs: task.operation.commandTimeoutMs,
      });
      if (verdict.action === 'act') Object.assign(limit, { hostClock: verdict.hostClock, note: verdict.note });
      return verdict;
    };

    let before: UnitSnapshot | null = null;
    let acted: StepResult[] | null = null;
    if (!recorded && commandSentMsAgo === null && target.hostKeyFingerprint !== null) {
      for (;;) {
        // Set when the unit's changed definition or the start limit stops the session before the "go".
        const held: { verdict?: StartLimitVerdict; interlock?: Exclude<Interlock, { kind: 'act' }> } = {};
        const ran = await this.ssh.execSequence(target, [...look, ...action], {
          ...options,
          optional: counting.map((_, index) => 2 + index),
          confirm: {
            after: look.length,
            proceed: async ([probe, shown, ...counted]) => {
              if (probe!.exitCode !== 0) return false;
              progress.before = shown ? this.snapshotOf(task, shown) : null;
              const decision = this.interlockOf(task, verb, progress.before);
              if (decision.kind !== 'act') {
                held.interlock = decision;
                return false;
              }
              held.verdict = withinLimit(progress.before, counted);
              if (held.verdict.action !== 'act') return false;
              await this.clearToAct(task, progress.before);
              return true;
            },
          },
        });
        if (ran.proceeded) {
          before = progress.before;
          acted = ran.steps.slice(look.length);
          break;
        }
        if (held.interlock) {
          // Nothing was sent; what follows reads the unit again in separate round trips.
          const stop = await this.applyInterlock(task, held.interlock, progress, exec);
          if (stop) return stop;
          break;
        }
        if (!held.verdict) return this.withoutSystemd(task, verb, ran.steps[0]!, exec, commandSentMsAgo);
        const stopped = await this.holdForStartLimit(task, held.verdict, limit, progress.before);
        if (stopped) return stopped;
      }
    }
    if (acted === null) {
      const looked = await this.ssh.execSequence(target, look, options);
      await pinKey(looked.hostKeyFingerprint);
      const probe = looked.steps[0]!;
      if (probe.exitCode !== 0) return this.withoutSystemd(task, verb, probe, exec, commandSentMsAgo);
      const current = unit ? this.snapshotOf(task, looked.steps[1]!) : null;
      if (recorded) {
        const settled = await this.recover(task, verb, recorded, current, snapshot);
        if (settled) return settled;
      }
      if (commandSentMsAgo !== null) {
        const settled = await this.waitOutEarlierAttempt(task, verb, recorded, commandSentMsAgo, snapshot);
        if (settled) return settled;
      }
      if (!progress.reloaded) {
        const decision = this.interlockOf(task, verb, current);
        if (decision.kind !== 'act') {
          progress.before = recorded ?? current;
          const stop = await this.applyInterlock(task, decision, progress, exec);
          if (stop) return stop;
        }
      }
      // (An earlier attempt cleared to act always recorded the state before, when there is a unit.)
      // After a daemon-reload the state before is still the reading that showed the changed unit.
      before = recorded ?? (progress.reloaded && progress.before ? progress.before : current);
      progress.before = before;
      let now = current;
      for (;;) {
        const held: { verdict?: StartLimitVerdict } = {};
        // Cleared by a fenced write while the host waits, like the single-session path above.
        const ran = await this.ssh.execSequence(target, [SYSTEMD_PROBE_ARGV, ...counting, ...action], {
          ...options,
          optional: counting.map((_, index) => 1 + index),
          confirm: {
            after: 1 + counting.length,
            proceed: async ([, ...counted]) => {
              held.verdict = withinLimit(now, counted);
              if (held.verdict.action !== 'act') return false;
              await this.clearToAct(task, recorded ? null : before);
              return true;
            },
          },
        });
        if (ran.proceeded) {
          acted = ran.steps.slice(1 + counting.length);
          break;
        }
        if (!held.verdict) throw new Error(`the session on ${task.hostName} ended before drover decided to act`);
        const stopped = await this.holdForStartLimit(task, held.verdict, limit, before);
        if (stopped) return stopped;
        now = await snapshot();
      }
    }

    // systemctl prints nothing until its job is done, so its output is stored at the end rather
    // than streamed (the steps of one session are told apart only once it ends).
    const result = acted[0]!;
    const output = joinOutput(result.stdout, result.stderr);
    const failedCommand = verb !== 'status' && result.exitCode !== 0;

    const settled = await this.settle(verb, before, acted[1] ? this.snapshotOf(task, acted[1]) : null, snapshot);
    if (failedCommand) {
      const refused =
        counting.length > 0
          ? await this.refusedByStartLimit(task, before, settled?.after ?? null, result.stderr, limit, exec)
          : null;
      const why = refused ?? (result.stderr.trim().split('\n').slice(-3).join(' ') || 'no error output');
      return {
        state: 'failed',
        reason: `systemctl ${verb} exited ${result.exitCode}: ${why}${limit.note ? `; ${limit.note}` : ''}`,
        exitCode: result.exitCode,
        before,
        after: settled?.after ?? null,
        output,
      };
    }
    if (!settled) {
      const reason = `${verb} done${limit.note ? `; ${limit.note}` : ''}`;
      return { state: 'succeeded', reason, exitCode: result.exitCode, before, after: null, output };
    }
    if (verb === 'mask' && settled.verdict.outcome === 'ok' && unit) {
      const start = await exec(verbArgv('start', unit));
      if (start.exitCode === 0) {
        return this.outcomeOf(
          before,
          settled.after,
          { outcome: 'failed', reason: 'the unit is masked but a start attempt succeeded' },
          result.exitCode,
          null,
          output,
        );
      }
    }
    return this.outcomeOf(before, settled.after, settled.verdict, result.exitCode, limit.note, output);
  }

  /**
   * The start limit says not now. Either the wait would outlast the task (it fails, saying what to
   * do) or the task waits here, holding the unit's lease and its attempt, and says so in its
   * waitingFor (and its rollout's events). Returns the task's outcome when it must not act any more.
   */
  private async holdForStartLimit(
    task: TaskWithContext,
    verdict: StartLimitVerdict,
    limit: StartLimitProgress,
    before: UnitSnapshot | null,
  ): Promise<ExecOutcome | null> {
    const notActed = (state: TaskState, reason: string): ExecOutcome => ({
      state,
      reason,
      exitCode: null,
      before,
      after: null,
      output: null,
    });
    if (verdict.action === 'fail') return notActed('failed', verdict.reason);
    if (verdict.action !== 'wait') return null;
    await this.operations.markWaiting(task, verdict.reason, null);
    this.logger.log({ taskId: task.id, host: task.hostName, unit: task.unit, waitMs: verdict.waitMs }, verdict.reason);
    await sleep(verdict.waitMs);
    limit.waitedMs += verdict.waitMs;
    // A rollout cancelled or aborted meanwhile starts nothing new: this task has not acted yet.
    const stopped = await this.operations.rolloutStopped(task);
    if (stopped) {
      return notActed(
        'cancelled',
        `not acted: the rollout was ${stopped} while this task waited for systemd's start limit`,
      );
    }
    return null;
  }

  /**
   * Whether systemd refused the verb's start because of the start limit, in words for the task's
   * reason. systemctl and Result= usually say so; when the unit's last run had failed, systemd 252
   * keeps that Result and only the journal shows the refusal, so it is read once more then.
   */
  private async refusedByStartLimit(
    task: TaskWithContext,
    before: UnitSnapshot | null,
    after: UnitSnapshot | null,
    stderr: string,
    limit: StartLimitProgress,
    exec: (argv: readonly string[]) => Promise<{ exitCode: number | null; stdout: string }>,
  ): Promise<string | null> {
    const unit = task.unit!;
    const said = startLimitRefusal({ unit, before, after, stderr });
    if (said !== null || limit.hostClock === null) return said;
    try {
      const read = await exec(startJournalArgv(unit));
      if (read.exitCode !== 0) return null;
      return startLimitRefusal({
        unit,
        before,
        after,
        stderr,
        journal: parseStartJournal(read.stdout),
        since: limit.hostClock,
      });
    } catch (error) {
      // The task failed either way; a second look that fails only leaves its reason as systemctl gave it.
      this.logger.warn(
        { taskId: task.id, host: task.hostName, unit, err: error },
        'could not read the journal to tell whether the start limit refused the start',
      );
      return null;
    }
  }

  private policyOf(task: TaskWithContext): DaemonReloadPolicy {
    return task.operation.daemonReload as DaemonReloadPolicy;
  }

  /** Whether the unit's definition changed on disk stops this task, or needs a daemon-reload first. */
  private interlockOf(task: TaskWithContext, verb: Verb, before: UnitSnapshot | null): Interlock {
    return task.unit ? interlock(this.policyOf(task), verb, task.unit, before) : { kind: 'act' };
  }

  /**
   * A changed definition stopped the task before acting: the outcome that ends it (refused, or a
   * daemon-reload that failed), or null once daemon-reload ran and the task may act.
   */
  private async applyInterlock(
    task: TaskWithContext,
    decision: Exclude<Interlock, { kind: 'act' }>,
    progress: Progress,
    exec: (argv: readonly string[]) => Promise<{ exitCode: number | null; stdout: string; stderr: string }>,
  ): Promise<ExecOutcome | null> {
    if (decision.kind === 'refuse') {
      return {
        state: 'failed',
        reason: decision.reason,
        exitCode: null,
        before: progress.before,
        after: null,
        output: null,
      };
    }
    // Re-reading unit files is harmless to repeat, so it needs no fencing of its own.
    const reloaded = await exec(verbArgv('daemon-reload', null));
    if (reloaded.exitCode !== 0) {
      return {
        state: 'failed',
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
   * A previous attempt recorded the state before acting and then lost its worker: finds out
   * whether its action took effect. Returns the task's outcome when it must not act again, null
   * when it should act.
   */
  private async recover(
    task: TaskWithContext,
    verb: Verb,
    recorded: UnitSnapshot,
    current: UnitSnapshot | null,
    snapshot: () => Promise<UnitSnapshot | null>,
  ): Promise<ExecOutcome | null> {
    const now = await this.settle(verb, recorded, current, snapshot);
    // A verb whose check the old state already passes (a reload keeps the PID) cannot show
    // whether the lost attempt acted: run it again rather than claim it happened.
    const provable = verifyOutcome(verb, recorded, recorded).outcome !== 'ok';
    if (now && provable && now.verdict.outcome === 'ok' && verb !== 'status') {
      return this.outcomeOf(
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
        state: 'failed',
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
   * host accepts its "go" until confirmWindowMs after its session began, which was before it was
   * cleared. Until that has passed, watches the unit for its action (recover): returns the
   * outcome if it shows, null once acting cannot race it any more.
   */
  private async waitOutEarlierAttempt(
    task: TaskWithContext,
    verb: Verb,
    recorded: UnitSnapshot | null,
    commandSentMsAgo: number,
    snapshot: () => Promise<UnitSnapshot | null>,
  ): Promise<ExecOutcome | null> {
    const remainingMs =
      confirmWindowMs(task.operation.commandTimeoutMs) + TAKEOVER_MARGIN_MS - Math.max(0, commandSentMsAgo);
    if (remainingMs <= 0) return null;
    this.logger.warn(
      { taskId: task.id, host: task.hostName, unit: task.unit, attempt: task.attempts, remainingMs },
      'an earlier attempt was cleared to act and may still be live; waiting out its window before acting',
    );
    const until = Date.now() + remainingMs;
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(TAKEOVER_POLL_MS, until - Date.now())));
      if (recorded) {
        const settled = await this.recover(task, verb, recorded, await snapshot(), snapshot);
        if (settled) return settled;
      }
    }
    return null;
  }

  /** The systemd probe said no (exit 1: act through the init script) or could not tell. */
  private async withoutSystemd(
    task: TaskWithContext,
    verb: Verb,
    probe: StepResult,
    exec: (
      argv: readonly string[],
      onData?: (chunk: string) => void,
    ) => Promise<{ exitCode: number | null; stdout: string; stderr: string }>,
    commandSentMsAgo: number | null,
  ): Promise<ExecOutcome> {
    if (probe.exitCode === 1) return this.actWithoutSystemd(task, verb, exec, commandSentMsAgo);
    return {
      state: 'failed',
      reason: `could not tell whether ${task.hostName} runs systemd (probe exit ${probe.exitCode}: ${probe.stderr.trim() || 'no output'})`,
      exitCode: probe.exitCode,
      before: null,
      after: null,
      output: null,
    };
  }

  private snapshotOf(task: TaskWithContext, shown: StepResult): UnitSnapshot {
    if (shown.exitCode !== 0) {
      throw new Error(`systemctl show exited ${shown.exitCode} on ${task.hostName}: ${shown.stderr.trim()}`);
    }
    return parseSnapshot(shown.stdout);
  }

  private outcomeOf(
    before: UnitSnapshot | null,
    after: UnitSnapshot,
    verdict: Verdict,
    exitCode: number | null,
    note: string | null,
    output: string | null | undefined,
  ): ExecOutcome {
    const state = verdict.outcome === 'ok' ? 'succeeded' : 'failed';
    const reason =
      verdict.outcome === 'ok'
        ? verdict.detail
        : verdict.outcome === 'failed'
          ? verdict.reason
          : `did not settle: ${verdict.reason}`;
    return { state, reason: note ? `${reason}; ${note}` : reason, exitCode, before, after, output };
  }

  /** Reads the unit until it leaves transitional states (activating, reloading...) or time runs out. */
  private async settle(
    verb: Verb,
    before: UnitSnapshot | null,
    first: UnitSnapshot | null,
    snapshot: () => Promise<UnitSnapshot | null>,
  ): Promise<{ after: UnitSnapshot; verdict: Verdict } | null> {
    const deadline = Date.now() + Math.min(30_000, this.config.SSH_COMMAND_TIMEOUT_MS);
    for (let after = first; after; after = await snapshot()) {
      const verdict = verifyOutcome(verb, before, after);
      if (verdict.outcome !== 'settling' || Date.now() >= deadline) return { after, verdict };
      await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
    }
    return null;
  }

  private async actWithoutSystemd(
    task: TaskWithContext,
    verb: Verb,
    exec: (
      argv: readonly string[],
      onData?: (chunk: string) => void,
    ) => Promise<{ exitCode: number | null; stdout: string; stderr: string }>,
    commandSentMsAgo: number | null,
  ): Promise<ExecOutcome> {
    const plan = task.unit
      ? legacyVerbArgv(verb, task.unit)
      : { supported: false as const, reason: `${verb} needs systemd` };
    if (!plan.supported) {
      return { state: 'failed', reason: plan.reason, exitCode: null, before: null, after: null, output: null };
    }
    // An init script leaves no state to compare: whether an earlier attempt's command took effect
    // cannot be told, and sending it again could be a second outage. Only status is harmless.
    if (commandSentMsAgo !== null && verb !== 'status') {
      return {
        state: 'failed',
        reason: `an earlier attempt sent \`${plan.argv.join(' ')}\` and its result was lost; not repeated (a host without systemd cannot show whether it took effect)`,
        exitCode: null,
        before: null,
        after: null,
        output: null,
      };
    }
    await this.clearToAct(task, null);
    const result = await this.streamed(task, (onData) => exec(plan.argv, onData));
    const verdict = legacySucceeded(verb, result.exitCode);
    return {
      state: verdict.ok ? 'succeeded' : 'failed',
      reason: verdict.ok ? `service ${verb} done (host without systemd)` : verdict.reason,
      exitCode: result.exitCode,
      before: null,
      after: null,
      output: result.output,
    };
  }

  /**
   * Runs the task's main command with its output streamed into the task row. The returned
   * `output` is undefined when it was stored that way (so finishing does not overwrite it).
   */
  private async streamed<Result extends { stdout: string; stderr: string }>(
    task: TaskWithContext,
    run: (onData: (chunk: string) => void) => Promise<Result>,
  ): Promise<Result & { output: string | null | undefined }> {
    const stream = new TaskOutputStream(
      (text) => this.operations.appendOutput(task.id, task.attempts, text),
      (error) =>
        this.logger.error(
          { taskId: task.id, host: task.hostName, err: error },
          'could not store streamed output; the output kept in memory is stored when the task ends',
        ),
    );
    let result: Result;
    try {
      result = await run(stream.push);
    } finally {
      await stream.flush(true);
    }
    return { ...result, output: stream.wrote ? undefined : joinOutput(result.stdout, result.stderr) };
  }

  private async trustFirstKey(task: TaskWithContext, target: SshTarget, fingerprint: string): Promise<void> {
    const pinned = await this.hosts.pinFirstHostKey(target.hostId, fingerprint, {
      actorTokenId: task.operation.requestedByTokenId,
      actorName: task.operation.requestedBy,
      requestId: task.operation.requestId,
      sourceAddress: null,
      operationId: task.operationId,
    });
    if (!pinned) {
      // Another key was pinned meanwhile (an admin, or another first contact): that one wins.
      const current = await this.hosts.findById(target.hostId);
      if (current?.hostKeyFingerprint !== fingerprint) {
        throw new HostKeyMismatchError(target.name, current?.hostKeyFingerprint ?? '(none)', fingerprint);
      }
    }
    // From now on this run verifies against the key it just pinned, like every later run.
    target.hostKeyFingerprint = fingerprint;
    if (pinned)
      this.logger.warn({ hostId: target.hostId, host: target.name, fingerprint }, 'trusted the host key on first use');
  }
}

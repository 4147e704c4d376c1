import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { RedisClient } from '../infra/redis/redis-connection';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { HostsRepository } from '../hosts/hosts.repository';
import { JobDeferred } from '../infra/queue/job-deferred';
import { JobProducer } from '../infra/queue/job-producer';
import { AgentWake } from '../infra/redis/agent-wake';
import { REDIS } from '../infra/redis/redis.module';
import { RedisLease } from '../infra/redis/redis-lock';
import { HostKeyMismatchError, SshError } from '../infra/ssh/ssh-errors';
import { SshExecutor, SshTarget } from '../infra/ssh/ssh-executor';
import { SshHostAdapter } from '../infra/ssh/ssh-host-adapter';
import { DispatcherService } from './dispatcher.service';
import { TaskOutputStream } from './task-output';
import type { AuditActor } from '../audit/audit-actor';
import {
  Dispatchable,
  OperationsRepository,
  StartedAttempt,
  TaskState,
  TaskWithContext,
  UnitHold,
} from './operations.repository';
import type { DaemonReloadPolicy, UnitActionOutcome, UnitSnapshot, UnitTaskSpec, Verb } from '@drover/protocol';
import { ActionProgress, carryOut, UnitActionHooks, VERBS_CHANGING_OTHER_UNITS } from '@drover/systemd';

/** How often a task whose unit another rollout holds looks again (gates last seconds to minutes). */
const HOLD_POLL_MS = 1_000;
/** How often the job of a task offered to an agent looks whether it was delivered, or is still reported on. */
const AGENT_WATCH_MIN_MS = 1_000;
/** The longest a unit is read again after acting while it is still in transition. */
const MAX_SETTLE_MS = 30_000;

/**
 * The attempt's task was taken over by a newer attempt (its worker lost its leases while it was
 * still alive: paused, cut off) or ended meanwhile: it must neither act nor record anything more.
 */
class AttemptSuperseded extends Error {}

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
  diagnostics?: string | null;
}

/** What an action leaves to do once whoever waits for its task has been told: a look around its host. */
interface Afterwards {
  target: SshTarget;
  outcome: ExecOutcome;
}

/** A task this attempt ended. */
interface Ended {
  /** The operation's next tasks, claimed as the task ended: whoever waits for it is told first. */
  claim: Dispatchable;
  /** null: nothing acted on a host (it was removed from the inventory). */
  afterwards: Afterwards | null;
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
    private readonly dispatcher: DispatcherService,
    private readonly producer: JobProducer,
    private readonly ssh: SshExecutor,
    private readonly agentWake: AgentWake,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async run(taskId: string): Promise<void> {
    const task = await this.operations.findForRun(taskId);
    if (!task) return;
    if (task.host?.transport === 'agent') {
      await this.viaAgent(task);
      return;
    }
    // One owner per delivery: a redelivered job never shares the unit with a worker that may still
    // be acting (a long pause, not a crash). A dead worker's lease lapses as fast as its job lock.
    const owner = `${task.id}:${randomUUID()}`;
    const lease = await RedisLease.acquire(this.redis, this.lockKey(task), owner, this.config.JOB_LOCK_DURATION_MS);
    if (!lease) {
      await this.onConflict(task);
      return;
    }
    let ended: Ended | null = null;
    let hold: UnitHold | null;
    try {
      // Read holding the unit's lease: a holder's task ends before it lets go of the lease, so a
      // hold that starts after this read cannot be missed. A task already running (a redelivery)
      // passed that check when it started.
      const begun =
        task.state === 'queued'
          ? await this.operations.startUnlessHeld(task)
          : { started: await this.operations.startAttempt(task), hold: null };
      hold = begun.hold;
      if (begun.started) ended = await this.execute(attemptAt(task, begun.started), begun.started.commandSentMsAgo);
    } finally {
      await lease.release();
    }
    if (hold) {
      await this.heldByRollout(task, hold);
      return;
    }
    // Whoever waits for this task (the operation's next task, a rollout's step) hears of it first.
    await this.dispatcher.afterTaskEnd(task.operationId, ended?.claim ?? null);
    if (ended?.afterwards) await this.lookAround(task, ended.afterwards);
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
    const claim = await this.finish(attemptAt(task, started), {
      state: 'failed',
      reason: `gave up after ${started.attempt - 1} attempt(s): ${cause}`,
      exitCode: null,
      before: started.before ? (started.before as unknown as UnitSnapshot) : null,
      after: null,
      output: null,
    });
    await this.dispatcher.afterTaskEnd(task.operationId, claim);
  }

  /**
   * A task of an agent host: once no other rollout holds its unit, it is offered to the host's agent,
   * which claims it (the API fences its attempts; never two on one unit of the host at once) and
   * reports its outcome. This job only watches the offer: a task its agent never fetched ends
   * unreachable ("not delivered"); one whose agent stopped renewing its claim ends timed_out, unless
   * the agent is back in time to claim it again and settle it by reading the unit.
   */
  private async viaAgent(task: TaskWithContext): Promise<void> {
    if (task.state !== 'queued' && task.state !== 'running') return;
    const watchEveryMs = Math.max(AGENT_WATCH_MIN_MS, Math.floor(this.config.AGENT_OFFLINE_AFTER_MS / 4));
    if (task.offeredAt === null) {
      const { offered, hold } = await this.operations.offerUnlessHeld(task);
      if (hold) {
        await this.heldByRollout(task, hold);
        return;
      }
      if (offered) await this.agentWake.wake(task.host?.id ?? '');
      throw new JobDeferred(watchEveryMs);
    }
    const watch = await this.operations.agentTaskWatch(task.id);
    if (!watch) return;
    const limitMs = task.operation.commandTimeoutMs;
    const seen =
      watch.agentSeenMsAgo === null
        ? 'has never been heard of'
        : `was last heard of ${Math.round(watch.agentSeenMsAgo / 1000)} s ago`;
    let end: { state: TaskState; reason: string } | null = null;
    if (task.state === 'queued' && (watch.offeredMsAgo ?? 0) > Math.max(limitMs, this.config.AGENT_OFFLINE_AFTER_MS)) {
      end = {
        state: 'unreachable',
        reason: `not delivered: the agent of ${task.hostName} did not fetch the task within ${Math.round((watch.offeredMsAgo ?? 0) / 1000)} s (it ${seen})`,
      };
    } else if (task.state === 'running' && watch.leaseLapsedMsAgo !== null && watch.leaseLapsedMsAgo > limitMs) {
      end = {
        state: 'timed_out',
        reason: `timed out while running: the agent of ${task.hostName} stopped reporting on attempt ${task.attempts} (it ${seen}); whether it acted is unknown: read the unit`,
      };
    }
    if (!end) throw new JobDeferred(watchEveryMs);
    const started = await this.operations.startAttempt(task);
    if (started === null) return;
    const recorded = attemptAt(task, started);
    const claim = await this.finish(
      recorded,
      {
        ...end,
        exitCode: null,
        before: recorded.before ? (recorded.before as unknown as UnitSnapshot) : null,
        after: null,
        output: undefined,
      },
      end.state === 'unreachable' ? false : null,
    );
    await this.dispatcher.afterTaskEnd(task.operationId, claim);
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
    const claim = await this.finish(attemptAt(task, started), {
      state: 'failed',
      reason: `${waitingFor}; this operation asked to reject conflicts`,
      exitCode: null,
      before: null,
      after: null,
      output: null,
    });
    await this.dispatcher.afterTaskEnd(task.operationId, claim);
  }

  private async onConflict(task: TaskWithContext): Promise<void> {
    const holder = await RedisLease.holder(this.redis, this.lockKey(task));
    // An earlier delivery of this same task still holds the unit (its worker is gone or paused):
    // always wait for it, whatever the operation says about other tasks.
    if (task.operation.onConflict === 'wait' || holder?.startsWith(`${task.id}:`)) throw new JobDeferred(1_000);
    const started = await this.operations.startAttempt(task);
    if (started === null) return;
    const claim = await this.finish(attemptAt(task, started), {
      state: 'failed',
      reason: `another task (${holder ?? 'just finished'}) is acting on ${task.unit ?? 'this host'} on ${task.hostName}; this operation asked to reject conflicts`,
      exitCode: null,
      before: null,
      after: null,
      output: null,
    });
    await this.dispatcher.afterTaskEnd(task.operationId, claim);
  }

  /**
   * `task` as this attempt took it over (its `attempts` is the attempt's fencing token).
   * `commandSentMsAgo`: how long ago an earlier attempt was cleared to act, or null.
   */
  private async execute(task: TaskWithContext, commandSentMsAgo: number | null): Promise<Ended | null> {
    if (!task.host) {
      const claim = await this.finish(task, {
        state: 'failed',
        reason: `host ${task.hostName} was removed from the inventory`,
        exitCode: null,
        before: null,
        after: null,
        output: null,
      });
      return claim && { claim, afterwards: null };
    }
    const target: SshTarget = { hostId: task.host.id, ...task.host };
    let outcome: ExecOutcome;
    let reached: boolean | null = true;
    const recorded = task.before ? (task.before as unknown as UnitSnapshot) : null;
    // What this attempt recorded before acting, so a host that fails mid-way keeps it.
    const progress: ActionProgress = { before: recorded, reloaded: false };
    // An init script's output is streamed into the task row as it runs.
    const stream = new TaskOutputStream(
      (text) => this.operations.appendOutput(task.id, task.attempts, text),
      (error) =>
        this.logger.error(
          { taskId: task.id, host: task.hostName, err: error },
          'could not store streamed output; the output kept in memory is stored when the task ends',
        ),
    );
    try {
      let done: UnitActionOutcome;
      try {
        done = await carryOut({
          host: new SshHostAdapter(this.ssh, target, {
            trustOnFirstUse: task.operation.trustOnFirstUse,
            onFirstKey: (fingerprint) => this.trustFirstKey(task, target, fingerprint),
          }),
          spec: this.specOf(task),
          earlier: { before: recorded, clearedMsAgo: commandSentMsAgo },
          progress,
          hooks: this.hooksOf(task, stream),
        });
      } finally {
        await stream.flush(true);
      }
      outcome = {
        state: done.result,
        reason: done.reason,
        exitCode: done.exitCode,
        before: done.before,
        after: done.after,
        output: stream.wrote ? undefined : done.output,
        ...(done.daemonReloaded ? { daemonReloaded: true } : {}),
        diagnostics: done.diagnostics ?? null,
      };
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
    const claim = await this.finish(task, outcome, reached);
    // Not recorded (a newer attempt owns the task): nothing more of this attempt's is recorded either.
    if (claim === null) return null;
    return { claim, afterwards: { target, outcome } };
  }

  /** A look at what else the task changed on its host (its own unit's state was recorded as it ended). */
  private async lookAround(task: TaskWithContext, { target, outcome }: Afterwards): Promise<void> {
    // Every action is followed by a look at what else it changed on the host (deduplicated per
    // host). A rollout's hosts get theirs when the rollout ends, not while later batches still act.
    if (outcome.state !== 'unreachable' && task.operation.rolloutId === null) {
      const otherUnitFiles = VERBS_CHANGING_OTHER_UNITS.includes(task.verb as Verb) || outcome.daemonReloaded === true;
      await this.producer.discoverAfterAction(target.hostId, otherUnitFiles);
    }
  }

  /**
   * Ends the task with this attempt's outcome, and records `contact` with its host (see
   * OperationsRepository.finish): the operation's next tasks claimed as it ended, or null when it
   * had ended or a newer attempt owns it.
   */
  private async finish(
    task: TaskWithContext,
    outcome: ExecOutcome,
    contact: boolean | null = null,
  ): Promise<Dispatchable | null> {
    // The worker acts for whoever asked; the source address was recorded with the request.
    const actor: AuditActor = {
      actorTokenId: task.operation.requestedByTokenId,
      actorName: task.operation.requestedBy,
      requestId: task.operation.requestId,
      sourceAddress: null,
    };
    const claim = await this.operations.finish(task, outcome, actor, contact);
    if (claim) {
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
    return claim;
  }

  /** The task as its host carries it out. */
  private specOf(task: TaskWithContext): UnitTaskSpec {
    return {
      verb: task.verb as Verb,
      unit: task.unit,
      timeoutMs: task.operation.commandTimeoutMs,
      settleTimeoutMs: Math.min(MAX_SETTLE_MS, this.config.SSH_COMMAND_TIMEOUT_MS),
      daemonReload: task.operation.daemonReload as DaemonReloadPolicy,
    };
  }

  /**
   * What the action leaves to this attempt: its fenced clearance (the state before is stored while
   * the host waits: no stored state, no "go"), waiting for the start limit in the task's waitingFor,
   * and whether its rollout stopped meanwhile.
   */
  private hooksOf(task: TaskWithContext, stream: TaskOutputStream): UnitActionHooks {
    const fields = { taskId: task.id, host: task.hostName, unit: task.unit, attempt: task.attempts };
    return {
      clearToAct: (before) => this.clearToAct(task, before),
      waitingForStartLimit: (reason) => this.operations.markWaiting(task, reason, null),
      stoppedMeanwhile: () => this.operations.rolloutStopped(task),
      onOutput: stream.push,
      log: (level, more, message) =>
        level === 'info'
          ? this.logger.log({ ...fields, ...more }, message)
          : this.logger.warn({ ...fields, ...more }, message),
    };
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

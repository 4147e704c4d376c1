import type { TaskCommand, UnitActionOutcome, UnitSnapshot } from '@drover/protocol';
import { type ActionProgress, carryOut, type Host, type UnitActionHooks } from '@drover/systemd';
import { type AgentApi, ApiError, RevokedError } from './api';
import { backoffMs, pause } from './backoff';
import { replayedOutcome, type TaskJournal } from './journal';
import type { Logger } from './log';
import { AttemptOutput } from './output';

/** Tries at a call the action cannot do without (the clearance, the stop check) before it fails. */
const ESSENTIAL_CALL_TRIES = 4;

/** This attempt lost its task (409: the server gave it to a newer attempt, or the agent was revoked). */
export class AttemptLost extends Error {}

export interface AttemptContext {
  api: AgentApi;
  journal: TaskJournal;
  host: Host;
  log: Logger;
  /** Aborts once the agent stops waiting for its tasks (shutdown): posting the result gives up. */
  giveUp: AbortSignal;
}

/** 4xx answers other than timeouts and rate limits: trying the same request again cannot help. */
function hopeless(error: unknown): boolean {
  return error instanceof ApiError && error.status >= 400 && error.status < 500 && ![408, 429].includes(error.status);
}

/**
 * One attempt at a task the server handed to this agent: it keeps the claim (the lease) while it
 * runs, carries the spec out with @drover/systemd's carryOut on this host (the clearance to act,
 * the start-limit wait and the stop check are the server's calls), streams the output, journals
 * the outcome and reports it until the server answers. Once the attempt lost the task it calls
 * the server no more, and acts no more.
 */
export class TaskAttempt {
  private lostBecause: string | null = null;
  private leaseTimer: NodeJS.Timeout | undefined;
  /** The renewal in flight, if any: the outcome is never posted alongside one (see report). */
  private renewal: Promise<void> | null = null;
  private reporting = false;
  private readonly output: AttemptOutput;
  private readonly fields: Record<string, unknown>;

  constructor(
    private readonly command: TaskCommand,
    private readonly context: AttemptContext,
  ) {
    const { taskId, attempt, spec } = command;
    this.fields = { taskId, attempt, verb: spec.verb, unit: spec.unit };
    this.output = new AttemptOutput(
      (chunk) => this.call(() => context.api.output(taskId, attempt, chunk)),
      (error) =>
        context.log.warn('could not stream the output; the outcome carries its tail', { ...this.fields, err: error }),
    );
  }

  get lost(): boolean {
    return this.lostBecause !== null;
  }

  /** Renews the claim every leaseMs/3 from now until stopLease. */
  startLease(): void {
    const everyMs = Math.max(1_000, Math.floor(this.command.leaseMs / 3));
    this.leaseTimer = setInterval(() => {
      if (this.reporting || this.renewal) return;
      this.renewal = this.renewLease().finally(() => {
        this.renewal = null;
      });
    }, everyMs);
  }

  stopLease(): void {
    clearInterval(this.leaseTimer);
  }

  /** The agent was revoked, or stops waiting for this attempt: it calls the server no more. */
  abandon(reason: string): void {
    if (this.lostBecause !== null) return;
    this.lostBecause = reason;
    this.output.stop();
    this.stopLease();
  }

  async carryOut(): Promise<void> {
    const { command, context } = this;
    const { taskId, attempt } = command;
    const recorded = context.journal.resultOf(taskId);
    if (recorded) {
      context.log.warn('the task was carried out already; reporting that outcome instead of acting again', {
        ...this.fields,
        recordedAttempt: recorded.attempt,
      });
      await this.report(replayedOutcome(recorded));
      return;
    }
    context.log.info(`${command.spec.verb} ${command.spec.unit ?? ''}: starting`, this.fields);
    const progress: ActionProgress = { before: command.earlier.before, reloaded: false };
    let outcome: UnitActionOutcome;
    try {
      outcome = await carryOut({
        host: context.host,
        spec: command.spec,
        earlier: command.earlier,
        progress,
        hooks: this.hooks(),
      });
    } catch (error) {
      if (this.lost || error instanceof AttemptLost) {
        context.log.warn(
          `stopped: ${this.lostBecause ?? (error as Error).message}; nothing more is reported`,
          this.fields,
        );
        return;
      }
      if (error instanceof RevokedError) throw error;
      outcome = {
        result: 'failed',
        reason: (error as Error).message,
        exitCode: null,
        before: progress.before,
        after: null,
        output: null,
        verdict: null,
        daemonReloaded: progress.reloaded,
      };
    }
    await this.output.flush(true);
    // On disk before it is reported: a restart between the two reports it again, never acts again.
    await context.journal.append({ taskId, attempt, event: 'result', at: new Date().toISOString(), outcome });
    context.log.info(
      `${command.spec.verb} ${command.spec.unit ?? ''}: ${outcome.result} (${outcome.reason})`,
      this.fields,
    );
    await this.report(outcome);
  }

  private hooks(): UnitActionHooks {
    const { api, journal, log } = this.context;
    const { taskId, attempt } = this.command;
    return {
      clearToAct: async (before: UnitSnapshot | null) => {
        const cleared = await this.essential(() => api.clearToAct(taskId, attempt, before));
        if (!cleared) {
          this.abandon('the server gave the task to a newer attempt (409 on clear)');
          throw new AttemptLost(`attempt ${attempt} was superseded before acting; not acting`);
        }
        await journal.append({ taskId, attempt, event: 'cleared', at: new Date().toISOString() });
      },
      waitingForStartLimit: async (reason) => {
        try {
          await this.call(() => api.waiting(taskId, attempt, reason));
        } catch (error) {
          // Only what the task shows while it waits; the wait itself goes on.
          if (error instanceof AttemptLost || error instanceof RevokedError) throw error;
          log.warn('could not tell the server the task waits for the start limit', { ...this.fields, err: error });
        }
      },
      stoppedMeanwhile: () => this.essential(() => api.stopped(taskId, attempt)),
      onOutput: this.output.push,
      log: (level, fields, message) => log[level](message, { ...this.fields, ...fields }),
    };
  }

  /** A call of this attempt: none once it lost the task; revocation ends the attempt. */
  private async call<T>(request: () => Promise<T>): Promise<T> {
    if (this.lostBecause !== null) throw new AttemptLost(this.lostBecause);
    try {
      return await request();
    } catch (error) {
      if (error instanceof RevokedError) this.abandon('the agent was revoked');
      throw error;
    }
  }

  /** A call the action needs an answer to: tried a few times (backing off) before the action fails. */
  private async essential<T>(request: () => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        return await this.call(request);
      } catch (error) {
        if (
          tries >= ESSENTIAL_CALL_TRIES ||
          error instanceof AttemptLost ||
          error instanceof RevokedError ||
          hopeless(error)
        ) {
          throw error;
        }
        await pause(backoffMs(tries));
      }
    }
  }

  private async renewLease(): Promise<void> {
    try {
      if (!(await this.call(() => this.context.api.renewLease(this.command.taskId, this.command.attempt)))) {
        this.abandon('the server gave the task to a newer attempt (409 on lease)');
        this.context.log.warn('lost the task: no more calls for this attempt', this.fields);
      }
    } catch (error) {
      if (error instanceof AttemptLost) return;
      // The next renewal tries again; the lease outlasts two missed ones.
      this.context.log.warn('could not renew the task’s lease', { ...this.fields, err: error });
    }
  }

  /** Reports the outcome until the server answers (or the agent gives up on shutdown). */
  private async report(outcome: UnitActionOutcome): Promise<void> {
    const { api, log, giveUp } = this.context;
    for (let failures = 0; !giveUp.aborted;) {
      try {
        // A renewal racing the outcome would reach a task the outcome just ended: a 409, and this
        // attempt taken for lost. The outcome waits for the renewal in flight, and none starts meanwhile.
        this.reporting = true;
        await this.renewal;
        const answer = await this.call(() => api.result(this.command.taskId, this.command.attempt, outcome)).finally(
          () => {
            this.reporting = false;
          },
        );
        if (answer === true) log.debug('outcome recorded', this.fields);
        else log.warn('the server did not record the outcome (the task ended or a newer attempt owns it)', this.fields);
        return;
      } catch (error) {
        if (error instanceof AttemptLost) return;
        if (error instanceof RevokedError) throw error;
        if (hopeless(error)) {
          log.error('the server refused the outcome; it stays in the journal', { ...this.fields, err: error });
          return;
        }
        const waitMs = backoffMs(++failures);
        log.warn('could not report the outcome; trying again', { ...this.fields, err: error, retryInMs: waitMs });
        await pause(waitMs, giveUp);
      }
    }
    log.warn('stopped reporting the outcome (shutting down); the journal answers the next attempt', this.fields);
  }
}

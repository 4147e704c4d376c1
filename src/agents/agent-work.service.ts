import { Inject, Injectable, Logger } from '@nestjs/common';
import {
  AGENT_PROTOCOL_VERSION,
  type AgentCommand,
  type DaemonReloadPolicy,
  type HostFacts,
  type OutputChunk,
  type ReadResult,
  type UnitActionOutcome,
  type UnitsReport,
  type UnitSnapshot,
  type Verb,
} from '@drover/protocol';
import type { AuditActor } from '../audit/audit-actor';
import { Turns } from '../common/concurrency/turns';
import { DatabaseBusyError } from '../common/errors/database-unavailable';
import { ResourceNotFoundError, StateConflictError } from '../common/errors/domain-errors';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { DispatcherService } from '../operations/dispatcher.service';
import { OperationsRepository, type TaskWithContext } from '../operations/operations.repository';
import { UnitsRepository } from '../units/units.repository';
import { acceptReportedDefinition } from '@drover/systemd';
import { AgentReads } from './agent-reads';
import { AgentSightings } from './agent-sightings';
import { AgentWake } from '../infra/redis/agent-wake';
import { AgentsRepository, type AgentIdentity, type ClaimedTask } from './agents.repository';

/** After a claim's lapse, so that the database sees it lapsed when the request looks again. */
const LAPSE_MARGIN_MS = 50;
/** The most the unit is read again after acting while it is still in transition (as over SSH). */
const MAX_SETTLE_MS = 30_000;
/**
 * The longest a unit report waits for its turn before it is answered 503 (with Retry-After): under
 * the agent's request timeout (30 s), so that the agent backs off instead of timing out.
 */
const REPORT_TURN_WAIT_MS = 10_000;

/**
 * What an agent does for its host through the API: ask for its next command (held open until there
 * is one), and for a task it claimed: keep its claim, store the state before acting (its fenced
 * clearance), stream output, report the outcome. Every call is checked against the agent's own host
 * and the attempt it holds; the outcome and its audit event are written by the server, in one
 * transaction, once per attempt.
 */
@Injectable()
export class AgentWorkService {
  private readonly logger = new Logger(AgentWorkService.name);
  /** Unit reports stored at once (AGENT_REPORT_CONCURRENCY), so that they leave connections to everything else. */
  private readonly reportTurns: Turns;

  constructor(
    private readonly agents: AgentsRepository,
    private readonly operations: OperationsRepository,
    private readonly units: UnitsRepository,
    private readonly dispatcher: DispatcherService,
    private readonly reads: AgentReads,
    private readonly wake: AgentWake,
    private readonly sightings: AgentSightings,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.reportTurns = new Turns(config.AGENT_REPORT_CONCURRENCY);
  }

  async heartbeat(agent: AgentIdentity, facts: HostFacts): Promise<{ serverTime: string; outdated: boolean }> {
    // Waits for its batch: a heartbeat answered is a heartbeat recorded (or an error the agent retries).
    await this.sightings.seen(agent, facts);
    return { serverTime: new Date().toISOString(), outdated: facts.protocolVersion < AGENT_PROTOCOL_VERSION };
  }

  /** The agent's next command: a read the server waits for first, then a task; null after `waitMs`. */
  async next(agent: AgentIdentity, waitMs: number, signal: AbortSignal): Promise<AgentCommand | null> {
    const deadline = Date.now() + Math.min(waitMs, this.config.AGENT_POLL_MAX_WAIT_MS);
    // Listening before looking: a task offered while this request looks still wakes it.
    const listener = await this.wake.listen(agent.hostId, signal);
    try {
      for (;;) {
        const { command, nextLapseInMs } = await this.take(agent);
        if (command || signal.aborted) return command;
        const left = deadline - Date.now();
        if (left <= 0) return null;
        // A claim lapsing (its agent died or was cut off) makes its task claimable without a wake-up.
        const waitMs = nextLapseInMs === null ? left : Math.min(left, nextLapseInMs + LAPSE_MARGIN_MS);
        // A wait that ran to the end of the poll unwoken does not look again: the agent asks again at
        // once and that request looks, so an idle poll costs one look, not two (a wake-up lost on the
        // way, as AgentWake allows, is still found by the next poll).
        if (!(await listener.wait(waitMs)) && waitMs === left) return null;
      }
    } finally {
      listener.close();
    }
  }

  async renew(agent: AgentIdentity, taskId: string, attempt: number): Promise<void> {
    await this.hold(agent, taskId, attempt);
  }

  async clear(agent: AgentIdentity, taskId: string, attempt: number, before: UnitSnapshot | null): Promise<void> {
    const claim = { hostId: agent.hostId, leaseMs: this.config.AGENT_TASK_LEASE_MS };
    if (!(await this.operations.clearToAct(taskId, attempt, before, claim))) {
      throw await this.refusal(agent, taskId, attempt);
    }
  }

  async waiting(agent: AgentIdentity, taskId: string, attempt: number, reason: string): Promise<void> {
    const task = await this.held(agent, taskId, attempt);
    await this.operations.markWaiting(task, reason, null);
  }

  async stopped(agent: AgentIdentity, taskId: string, attempt: number): Promise<string | null> {
    return this.operations.rolloutStopped(await this.held(agent, taskId, attempt));
  }

  async output(agent: AgentIdentity, taskId: string, attempt: number, chunk: OutputChunk): Promise<void> {
    await this.hold(agent, taskId, attempt);
    await this.agents.appendOutputChunk(taskId, attempt, chunk.seq, chunk.text);
  }

  /**
   * Records an attempt's outcome with its audit event, once: a second report of the same attempt, or
   * one from an attempt a newer one took over, records nothing and says so.
   */
  async result(agent: AgentIdentity, taskId: string, attempt: number, outcome: UnitActionOutcome): Promise<boolean> {
    const task = await this.ownTask(agent, taskId);
    const fenced: TaskWithContext = { ...task, attempts: attempt };
    const actor: AuditActor = {
      actorTokenId: task.operation.requestedByTokenId,
      actorName: task.operation.requestedBy,
      requestId: task.operation.requestId,
      sourceAddress: null,
    };
    const claim = await this.operations.finish(
      fenced,
      {
        state: outcome.result,
        reason: outcome.reason,
        exitCode: outcome.exitCode,
        before: outcome.before,
        after: outcome.after,
        // Streamed chunks are in the row already; an outcome's own output only when none were.
        output: task.output === null ? outcome.output : undefined,
        ...(outcome.daemonReloaded ? { daemonReloaded: true } : {}),
        diagnostics: outcome.diagnostics ?? null,
      },
      actor,
    );
    if (claim === null) return false;
    this.logger.log(
      { taskId, host: agent.hostName, unit: task.unit, verb: task.verb, state: outcome.result, attempt },
      `${task.verb} ${task.unit ?? ''} on ${agent.hostName} (agent): ${outcome.result} (${outcome.reason})`,
    );
    await this.dispatcher.afterTaskEnd(task.operationId, claim);
    // A task of this host that waited for this one's unit can be claimed now.
    await this.wake.wake(agent.hostId);
    return true;
  }

  /** The host's units as its agent saw them change (or all of them): discovery for agent hosts is live. */
  async reportUnits(agent: AgentIdentity, report: UnitsReport): Promise<void> {
    const leave = await this.reportTurns.enter(AbortSignal.timeout(REPORT_TURN_WAIT_MS)).catch(() => {
      throw new DatabaseBusyError(
        `no turn to store a unit report within ${REPORT_TURN_WAIT_MS} ms (AGENT_REPORT_CONCURRENCY ${this.config.AGENT_REPORT_CONCURRENCY})`,
      );
    });
    try {
      await this.storeReport(agent, report);
    } finally {
      leave();
    }
  }

  private async storeReport(agent: AgentIdentity, report: UnitsReport): Promise<void> {
    const accepted = (report.definitions ?? []).map(acceptReportedDefinition);
    // Texts first, as discovery stores them: a definition hash shown has its text when it was sent.
    const texts = accepted.flatMap(({ definition: { definitionHash }, text }) =>
      text === null || definitionHash === null ? [] : [[definitionHash, text] as const],
    );
    await this.units.storeDefinitionTexts(new Map(texts));
    if (report.full) await this.units.replaceForHost(agent.hostId, report.units);
    else await this.units.applyChanges(agent.hostId, report.units, report.removed);
    await this.units.recordDefinitions(
      agent.hostId,
      accepted.map(({ definition }) => definition),
    );
  }

  async readResults(agent: AgentIdentity, requestId: string, results: ReadResult[]): Promise<void> {
    if (!(await this.reads.answer(agent.hostId, requestId, results)))
      throw new ResourceNotFoundError('read request', requestId);
  }

  private async take(agent: AgentIdentity): Promise<{ command: AgentCommand | null; nextLapseInMs: number | null }> {
    const read = await this.reads.next(agent.hostId);
    if (read) return { command: read, nextLapseInMs: null };
    const { task, nextLapseInMs } = await this.agents.claimNext(agent.hostId, this.config.AGENT_TASK_LEASE_MS);
    return { command: task ? this.taskCommand(task) : null, nextLapseInMs };
  }

  private taskCommand(task: ClaimedTask): AgentCommand {
    return {
      kind: 'task',
      taskId: task.id,
      attempt: task.attempt,
      spec: {
        verb: task.verb as Verb,
        unit: task.unit,
        timeoutMs: task.commandTimeoutMs,
        settleTimeoutMs: Math.min(MAX_SETTLE_MS, task.commandTimeoutMs),
        daemonReload: task.daemonReload as DaemonReloadPolicy,
      },
      earlier: { before: task.before as UnitSnapshot | null, clearedMsAgo: task.commandSentMsAgo },
      leaseMs: this.config.AGENT_TASK_LEASE_MS,
    };
  }

  /** The agent's own task (404 for any other host's: it learns nothing of them). */
  private async ownTask(agent: AgentIdentity, taskId: string): Promise<TaskWithContext> {
    const task = await this.operations.findForRun(taskId);
    if (!task || task.hostId !== agent.hostId) throw new ResourceNotFoundError('task', taskId);
    return task;
  }

  /** The agent's task while `attempt` still holds it: renews the claim, or 409 when it was lost. */
  private async held(agent: AgentIdentity, taskId: string, attempt: number): Promise<TaskWithContext> {
    const task = await this.ownTask(agent, taskId);
    await this.hold(agent, taskId, attempt);
    return { ...task, attempts: attempt };
  }

  /** Renews the claim of `attempt`, one statement when it holds; refused (404 or 409) when it does not. */
  private async hold(agent: AgentIdentity, taskId: string, attempt: number): Promise<void> {
    if (!(await this.agents.renewLease(agent.hostId, taskId, attempt, this.config.AGENT_TASK_LEASE_MS))) {
      throw await this.refusal(agent, taskId, attempt);
    }
  }

  /** Why a call of an attempt was refused: 404 for another host's task (it learns nothing of them), else 409. */
  private async refusal(agent: AgentIdentity, taskId: string, attempt: number): Promise<Error> {
    return (await this.agents.ownsTask(agent.hostId, taskId))
      ? this.lost(taskId, attempt)
      : new ResourceNotFoundError('task', taskId);
  }

  private lost(taskId: string, attempt: number): StateConflictError {
    return new StateConflictError(
      'attempt_superseded',
      `attempt ${attempt} of task ${taskId} no longer holds it (it ended, or a newer attempt took it over): do not act`,
    );
  }
}

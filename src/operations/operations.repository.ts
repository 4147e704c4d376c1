import { Injectable } from '@nestjs/common';
import { ACTIVE_TASK_STATES, AUDIT_ACTION, FAILED_TASK_STATES, unitAction, type Verb } from '@drover/protocol';
import { ResourceNotFoundError } from '../common/errors/domain-errors';
import type { AuditActor } from '../audit/audit-actor';
import { HostTransport, Operation, Prisma, Task, TaskState } from '../generated/prisma/client';
import { createdBefore, CreatedKey } from '../common/pagination/cursor';
import { PrismaService } from '../infra/prisma/prisma.service';
import { countsByOwner } from '../infra/prisma/state-counts';
import type { DaemonReloadPolicy } from '@drover/protocol';
import { storableText } from './task-output';

export type { Operation, Task, TaskState };

/** The states as the database functions take them (arrays bound as parameters). */
const ACTIVE = [...ACTIVE_TASK_STATES];
const FAILED = [...FAILED_TASK_STATES];

function jsonOrNull(value: Prisma.InputJsonValue | null): string | null {
  return value === null ? null : JSON.stringify(value);
}

export interface NewOperation {
  verb: string;
  unit: string | null;
  selector: string | null;
  concurrency: number;
  onConflict: 'wait' | 'reject';
  daemonReload: DaemonReloadPolicy;
  commandTimeoutMs: number;
  trustOnFirstUse: boolean;
  requestedByTokenId: string | null;
  requestedBy: string;
  requestId: string | null;
}

export interface TaskOutcome {
  state: TaskState;
  before: Prisma.InputJsonValue | null;
  reason: string;
  exitCode: number | null;
  after: Prisma.InputJsonValue | null;
  /** undefined: keep what was streamed into the row while the command ran. */
  output: string | null | undefined;
  /** daemon-reload ran before the verb (daemonReload 'auto'): its audit event says so. */
  daemonReloaded?: boolean;
  /** After a failure: the unit's status and journal (see UnitActionOutcome.diagnostics). */
  diagnostics?: string | null;
}

export type TaskWithContext = Task & {
  operation: Operation;
  host: {
    id: string;
    name: string;
    address: string;
    port: number;
    sshUser: string;
    hostKeyFingerprint: string | null;
    transport: HostTransport;
  } | null;
};

/**
 * The host fields acting on a host needs: TaskWithContext's host (`satisfies` keeps the list
 * complete), and the Prisma select of a rollout's hosts.
 */
export const RUN_HOST_FIELDS = {
  id: true,
  name: true,
  address: true,
  port: true,
  sshUser: true,
  hostKeyFingerprint: true,
  transport: true,
} as const satisfies Record<keyof NonNullable<TaskWithContext['host']>, true>;

/**
 * The fields findForRun reads, by table alias: every scalar field of the task and of its operation
 * (Prisma's own lists of them), and the host's above.
 */
const RUN_FIELDS = {
  t: Object.keys(Prisma.TaskScalarFieldEnum),
  o: Object.keys(Prisma.OperationScalarFieldEnum),
  h: Object.keys(RUN_HOST_FIELDS),
} as const;

/** A field's column: the schema maps every camelCase field to its snake_case name. */
const columnOf = (field: string): string => field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);

// Static text (no input): `alias.column AS "alias.field"`, since node-postgres keeps one value per
// result column name.
const RUN_COLUMNS = Prisma.raw(
  Object.entries(RUN_FIELDS)
    .flatMap(([alias, fields]) => fields.map((field) => `${alias}.${columnOf(field)} AS "${alias}.${field}"`))
    .join(', '),
);

/** The fields of one table alias back from a row of RUN_COLUMNS. */
function fieldsOf(row: Record<string, unknown>, alias: keyof typeof RUN_FIELDS): Record<string, unknown> {
  return Object.fromEntries(RUN_FIELDS[alias].map((field) => [field, row[`${alias}.${field}`]]));
}

export type OperationWithTasks = Operation & { tasks: Task[] };

/** Another rollout's hold on a task's unit: its task acted on the unit there, or its health gate watches it. */
export interface UnitHold {
  rolloutId: string;
  hostState: 'acting' | 'gating';
}

/** An attempt at a task, as it started: what earlier attempts left, read as it took the task over. */
export interface StartedAttempt {
  /** The fencing token: each write of this attempt applies only while the task's attempts is this number. */
  attempt: number;
  /** The state an earlier attempt recorded before acting, if any. */
  before: Prisma.JsonValue | null;
  /** How long ago (database clock) an earlier attempt was cleared to send its command; null: none was. */
  commandSentMsAgo: number | null;
}

/** An operation's next tasks, marked dispatched by a claim (see OperationsRepository.claimDispatchable). */
export interface Dispatchable {
  /** The tasks claimed, in position order: they are to be queued now. */
  claimed: string[];
  /** No dispatched task of the operation is left unfinished: what a rollout's next step waits for. */
  idle: boolean;
  rolloutId: string | null;
}

interface ClaimRow {
  claimed: string[];
  idle: boolean;
  rollout_id: string | null;
}

interface StartRow {
  attempts: number;
  before: Prisma.JsonValue | null;
  command_sent_ms_ago: number | null;
}

interface HoldRow {
  rollout_id: string;
  state: 'acting' | 'gating';
}

/** A row of outer joins: each column null when its side found nothing. */
type Joined<Row> = { [Column in keyof Row]: Row[Column] | null };

function startedOf(row: StartRow): StartedAttempt {
  return { attempt: row.attempts, before: row.before, commandSentMsAgo: row.command_sent_ms_ago };
}

/** A claim's row; none (the operation is gone) claims nothing and leaves nothing to wait for. */
function dispatchableOf(row: Joined<ClaimRow> | undefined): Dispatchable {
  return { claimed: row?.claimed ?? [], idle: row?.idle ?? true, rolloutId: row?.rollout_id ?? null };
}

function holdOf(row: HoldRow): UnitHold {
  return { rolloutId: row.rollout_id, hostState: row.state };
}

@Injectable()
export class OperationsRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** Creates the operation, one task per host, and the audit event of the request, atomically. */
  async create(
    operation: NewOperation,
    hosts: { id: string; name: string }[],
    parameters: Prisma.InputJsonObject,
    actor: AuditActor,
  ): Promise<Operation> {
    return this.prisma.$transaction((tx) => this.createIn(tx, operation, hosts, parameters, actor));
  }

  /**
   * As create, inside a caller's transaction (a rollout starts a batch and its operation at once).
   * `hosts` may name a host several times, once per unit, when each entry names its task's unit.
   */
  async createIn(
    tx: Prisma.TransactionClient,
    operation: NewOperation & { rolloutId?: string },
    hosts: { id: string | null; name: string; unit?: string }[],
    parameters: Prisma.InputJsonObject,
    actor: AuditActor,
  ): Promise<Operation> {
    const created = await tx.operation.create({ data: operation });
    // One statement with three array parameters: createMany binds six parameters per task and
    // takes longer than the transaction's timeout for 10,000 hosts.
    await tx.$executeRaw`
      INSERT INTO tasks (id, operation_id, host_id, host_name, verb, unit, position)
      SELECT gen_random_uuid(), ${created.id}::uuid, given.host_id, given.host_name, ${operation.verb},
        given.unit, (given.position - 1)::int
      FROM unnest(${hosts.map((host) => host.id)}::uuid[], ${hosts.map((host) => host.name)}::text[],
        ${hosts.map((host) => host.unit ?? operation.unit)}::text[]) WITH ORDINALITY AS given(host_id, host_name, unit, position)`;
    await tx.auditEvent.create({
      data: {
        ...actor,
        action: AUDIT_ACTION.operationCreate,
        result: 'accepted',
        unit: operation.unit,
        operationId: created.id,
        hostName: hosts.length === 1 ? (hosts[0]?.name ?? null) : null,
        hostId: hosts.length === 1 ? (hosts[0]?.id ?? null) : null,
        parameters: { ...parameters, hosts: hosts.map((host) => host.name) },
      },
    });
    return created;
  }

  /**
   * Ends the tasks of these operations that no worker started yet as cancelled (a rollout that
   * stops starts nothing new), and closes operations left with nothing to do. Running tasks end
   * on their own, within their timeout.
   */
  async cancelQueuedTasks(tx: Prisma.TransactionClient, operationIds: string[], reason: string): Promise<number> {
    if (operationIds.length === 0) return 0;
    const cancelled = await tx.task.updateMany({
      where: { operationId: { in: operationIds }, state: 'queued' },
      data: { state: 'cancelled', reason, finishedAt: new Date() },
    });
    for (const operationId of operationIds) {
      await tx.$executeRaw`SELECT close_operation_if_done(${operationId}::uuid, ${ACTIVE}::"TaskState"[], ${FAILED}::"TaskState"[])`;
    }
    return cancelled.count;
  }

  /**
   * Marks the next tasks of an operation as dispatched, up to its concurrency. Returns those
   * (`claimed`), and whether no dispatched task is left unfinished (`idle`: what a rollout's next
   * step waits for). One call to the database function claim_dispatchable_tasks, which holds the
   * operation's row only while the database works; a task's end makes the same claim in its own
   * call (finish).
   */
  async claimDispatchable(operationId: string): Promise<Dispatchable> {
    const [row] = await this.prisma.rows<ClaimRow>(Prisma.sql`
      SELECT claimed, idle, rollout_id FROM claim_dispatchable_tasks(${operationId}::uuid, ${ACTIVE}::"TaskState"[])`);
    return dispatchableOf(row);
  }

  /**
   * Every dispatched task of the operation that has not finished: the reconciler enqueues those
   * again (harmless, job ids dedupe), so a crash between a claim's commit and its enqueue loses nothing.
   */
  async inFlightTaskIds(operationId: string): Promise<string[]> {
    const rows = await this.prisma.task.findMany({
      where: { operationId, dispatchedAt: { not: null }, state: { in: [...ACTIVE_TASK_STATES] } },
      orderBy: { position: 'asc' },
      select: { id: true },
    });
    return rows.map((row) => row.id);
  }

  /** Operations not finished yet (for the reconciler). */
  async unfinishedOperationIds(): Promise<string[]> {
    const rows = await this.prisma.operation.findMany({
      where: { status: { in: ['queued', 'running'] } },
      select: { id: true },
    });
    return rows.map((row) => row.id);
  }

  /**
   * The task with its operation and host, or null when it does not exist any more. One statement
   * (Prisma's include reads the three tables in three), since every task's job and every agent's
   * report begins with it. node-postgres gives the columns as Prisma would: uuids, enums and text
   * as strings, timestamps as Dates, jsonb parsed (task-end-inventory compares the two).
   */
  async findForRun(taskId: string): Promise<TaskWithContext | null> {
    const [row] = await this.prisma.rows<Record<string, unknown>>(Prisma.sql`
      SELECT ${RUN_COLUMNS}
      FROM tasks t JOIN operations o ON o.id = t.operation_id LEFT JOIN hosts h ON h.id = t.host_id
      WHERE t.id = ${taskId}::uuid`);
    if (!row) return null;
    return {
      ...(fieldsOf(row, 't') as Task),
      operation: fieldsOf(row, 'o') as Operation,
      host: row['h.id'] === null ? null : (fieldsOf(row, 'h') as NonNullable<TaskWithContext['host']>),
    };
  }

  /**
   * Starts (or resumes, after a lost worker) an attempt at a task: takes it over from any earlier
   * attempt, whose later writes then change nothing. Returns null when the task already finished,
   * so a redelivered job does nothing.
   */
  async startAttempt(task: TaskWithContext): Promise<StartedAttempt | null> {
    const [row] = await this.prisma.rows<StartRow>(Prisma.sql`
      WITH ${this.startedSql(task, Prisma.empty)}
      SELECT attempts, before, command_sent_ms_ago FROM started`);
    return row ? startedOf(row) : null;
  }

  /**
   * As startAttempt, unless another rollout holds the task's unit (see unitHolder): then the task
   * is left as it was and the hold is returned. One statement: the first thing every task does.
   */
  async startUnlessHeld(task: TaskWithContext): Promise<{ started: StartedAttempt | null; hold: UnitHold | null }> {
    const [row] = await this.prisma.rows<Joined<StartRow & HoldRow>>(Prisma.sql`
      WITH hold AS (${this.holdSql(task)}),
      ${this.startedSql(task, Prisma.sql`AND NOT EXISTS (SELECT 1 FROM hold)`)}
      SELECT started.attempts, started.before, started.command_sent_ms_ago, hold.rollout_id, hold.state
      FROM (VALUES (1)) AS one (x) LEFT JOIN hold ON true LEFT JOIN started ON true`);
    if (row?.rollout_id && row.state)
      return { started: null, hold: holdOf({ rollout_id: row.rollout_id, state: row.state }) };
    if (!row || row.attempts === null) return { started: null, hold: null };
    return { started: startedOf({ ...row, attempts: row.attempts }), hold: null };
  }

  /**
   * The CTEs `started` (the task taken over, when `guard` allows) and `running` (its operation
   * marked running only when the task was): one statement, so one round trip, and atomic.
   */
  private startedSql(task: TaskWithContext, guard: Prisma.Sql): Prisma.Sql {
    return Prisma.sql`
      started AS (
        UPDATE tasks SET state = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, now())
        WHERE id = ${task.id}::uuid AND state IN ('queued', 'running') ${guard}
        RETURNING attempts, before,
          (EXTRACT(EPOCH FROM now() - command_sent_at) * 1000)::float8 AS command_sent_ms_ago
      ), running AS (
        UPDATE operations SET status = 'running'
        WHERE id = ${task.operationId}::uuid AND status = 'queued' AND EXISTS (SELECT 1 FROM started)
      )`;
  }

  /**
   * Whether another rollout holds the task's unit on its host: from the moment its own task there
   * started until its health gate ended. A unit is acted on by one rollout at a time, and nothing
   * acts on it while a rollout judges it (another restart would look like a crash to the gate).
   */
  async unitHolder(task: TaskWithContext): Promise<UnitHold | null> {
    const [hold] = await this.prisma.rows<HoldRow>(this.holdSql(task));
    return hold ? holdOf(hold) : null;
  }

  private holdSql(task: TaskWithContext): Prisma.Sql {
    if (task.hostId === null || task.unit === null) {
      return Prisma.sql`SELECT NULL::text AS rollout_id, NULL::text AS state WHERE false`;
    }
    return Prisma.sql`
      SELECT h.rollout_id::text AS rollout_id, h.state::text AS state
      FROM rollout_hosts h
      WHERE h.host_id = ${task.hostId}::uuid AND ${task.unit} = ANY (h.units)
        AND h.rollout_id IS DISTINCT FROM ${task.operation.rolloutId}::uuid
        AND (h.state = 'gating' OR (h.state = 'acting' AND EXISTS (
          SELECT 1 FROM tasks t
          WHERE t.operation_id = h.operation_id AND t.host_id = h.host_id AND t.unit = ${task.unit}
            AND t.state NOT IN ('queued', 'cancelled', 'skipped'))))
      ORDER BY h.gate_started_at NULLS FIRST
      LIMIT 1`;
  }

  /**
   * Records what a task that may not act yet waits for; when that changed and the task is a
   * rollout's, the rollout's events say so too (once per change, not per look).
   */
  async markWaiting(task: TaskWithContext, waitingFor: string, heldByRolloutId: string | null): Promise<void> {
    const text = storableText(waitingFor);
    await this.prisma.$transaction(async (tx) => {
      const changed = await tx.$executeRaw`
        UPDATE tasks SET waiting_for = ${text}, waiting_for_rollout_id = ${heldByRolloutId}::uuid,
          waiting_since = COALESCE(waiting_since, now())
        WHERE id = ${task.id}::uuid AND state IN ('queued', 'running') AND waiting_for IS DISTINCT FROM ${text}`;
      if (changed === 0 || task.operation.rolloutId === null) return;
      await tx.rolloutEvent.create({
        data: {
          rolloutId: task.operation.rolloutId,
          type: 'task.waiting',
          data: { host: task.hostName, unit: task.unit, taskId: task.id, waitingFor: text, heldByRolloutId },
        },
      });
    });
  }

  /**
   * How the task's rollout ended, when it was cancelled or aborted (so a task that has not acted yet
   * should not); null while it runs, and for plain operations.
   */
  async rolloutStopped(task: TaskWithContext): Promise<'cancelled' | 'aborted' | null> {
    if (task.operation.rolloutId === null) return null;
    const rollout = await this.prisma.rollout.findUnique({
      where: { id: task.operation.rolloutId },
      select: { status: true },
    });
    return rollout?.status === 'cancelled' || rollout?.status === 'aborted' ? rollout.status : null;
  }

  /** Makes a task claimable by its host's agent (once); false when it was offered already or ended. */
  async offer(taskId: string): Promise<boolean> {
    const offered = await this.prisma.execute(Prisma.sql`
      UPDATE tasks SET offered_at = now() WHERE id = ${taskId}::uuid AND offered_at IS NULL AND state = 'queued'`);
    return offered === 1;
  }

  /**
   * What the worker watching an offered task needs (database clock): how long ago it was offered,
   * how long ago its agent's lease lapsed (negative: still held), how long ago its agent was heard of.
   */
  async agentTaskWatch(
    taskId: string,
  ): Promise<{ offeredMsAgo: number | null; leaseLapsedMsAgo: number | null; agentSeenMsAgo: number | null } | null> {
    const [row] = await this.prisma.rows<{
      offered_ms_ago: number | null;
      lease_lapsed_ms_ago: number | null;
      agent_seen_ms_ago: number | null;
    }>(Prisma.sql`
      SELECT (EXTRACT(EPOCH FROM now() - t.offered_at) * 1000)::float8 AS offered_ms_ago,
        (EXTRACT(EPOCH FROM now() - t.lease_expires_at) * 1000)::float8 AS lease_lapsed_ms_ago,
        (EXTRACT(EPOCH FROM now() - a.last_seen_at) * 1000)::float8 AS agent_seen_ms_ago
      FROM tasks t LEFT JOIN agents a ON a.host_id = t.host_id AND a.revoked_at IS NULL
      WHERE t.id = ${taskId}::uuid`);
    return row
      ? {
          offeredMsAgo: row.offered_ms_ago,
          leaseLapsedMsAgo: row.lease_lapsed_ms_ago,
          agentSeenMsAgo: row.agent_seen_ms_ago,
        }
      : null;
  }

  /** Appends output to a running task (streamed while its command runs), unless another attempt took it. */
  async appendOutput(taskId: string, attempt: number, text: string): Promise<void> {
    await this.prisma.execute(Prisma.sql`
      UPDATE tasks SET output = COALESCE(output, '') || ${storableText(text)}
      WHERE id = ${taskId}::uuid AND state = 'running' AND attempts = ${attempt}`);
  }

  /**
   * Clears an attempt to send its command: records the state before acting (so a later attempt can
   * tell what happened) and when it was cleared. False when another attempt took the task over or
   * it ended: the attempt must not act. For an agent's attempt (`agentClaim`), in the same statement:
   * only a task of the agent's host offered to it, and its claim renewed.
   */
  async clearToAct(
    taskId: string,
    attempt: number,
    before: Prisma.InputJsonValue | null,
    agentClaim?: { hostId: string; leaseMs: number },
  ): Promise<boolean> {
    const renewClaim = agentClaim
      ? Prisma.sql`, lease_expires_at = now() + ${agentClaim.leaseMs} * interval '1 millisecond'`
      : Prisma.empty;
    const claimedByAgent = agentClaim
      ? Prisma.sql` AND host_id = ${agentClaim.hostId}::uuid AND offered_at IS NOT NULL`
      : Prisma.empty;
    const cleared = await this.prisma.execute(Prisma.sql`
      UPDATE tasks SET before = COALESCE(${jsonOrNull(before)}::jsonb, before),
        command_sent_at = now(), waiting_for = NULL, waiting_for_rollout_id = NULL${renewClaim}
      WHERE id = ${taskId}::uuid AND state = 'running' AND attempts = ${attempt}${claimedByAgent}`);
    return cleared === 1;
  }

  /**
   * Ends a task and records its audit event atomically (a result without its audit event cannot
   * exist), then closes the operation if this was its last task: one call to the database function
   * finish_task, so the audit chain's lock is never held across a round trip to this process. The
   * same call keeps the inventory current: the unit's row becomes the state the task left it in,
   * and `contact` (true: the host answered; false: unreachable; null: nothing to tell) its host's;
   * and it claims the operation's next tasks (as claimDispatchable), which it returns.
   * No-op (null) if already ended, or if `task.attempts` is no longer the task's current attempt
   * (another took it over).
   */
  async finish(
    task: TaskWithContext,
    outcome: TaskOutcome,
    actor: AuditActor,
    contact: boolean | null = null,
  ): Promise<Dispatchable | null> {
    const reason = storableText(outcome.reason);
    const event = {
      actor_token_id: actor.actorTokenId,
      actor_name: actor.actorName,
      source_address: actor.sourceAddress,
      request_id: actor.requestId,
      // The verb was checked against VERBS when the task was created.
      action: unitAction(task.verb as Verb),
      result: outcome.state,
      host_id: task.hostId,
      host_name: task.hostName,
      unit: task.unit,
      operation_id: task.operationId,
      task_id: task.id,
      parameters: {
        verb: task.verb,
        attempts: task.attempts,
        daemonReload: task.operation.daemonReload,
        ...(outcome.daemonReloaded ? { daemonReloaded: true } : {}),
      },
      before: outcome.before,
      after: outcome.after,
      reason,
    };
    const [row] = await this.prisma.rows<Joined<ClaimRow> & { ended: boolean }>(Prisma.sql`
      SELECT ended, claimed, idle, rollout_id FROM finish_task_and_claim_next(${task.operationId}::uuid,
        ${task.id}::uuid, ${task.attempts}::int, ${outcome.state}::"TaskState", ${reason},
        ${outcome.exitCode}::int, ${jsonOrNull(outcome.before)}::jsonb, ${jsonOrNull(outcome.after)}::jsonb,
        ${outcome.output === undefined}, ${typeof outcome.output === 'string' ? storableText(outcome.output) : null},
        ${outcome.diagnostics ? storableText(outcome.diagnostics) : null}, ${JSON.stringify(event)}::jsonb,
        ${ACTIVE}::"TaskState"[], ${FAILED}::"TaskState"[], ${contact}::boolean)`);
    return row?.ended === true ? dispatchableOf(row) : null;
  }

  async findWithTasks(id: string): Promise<OperationWithTasks> {
    const operation = await this.prisma.operation.findUnique({
      where: { id },
      include: { tasks: { orderBy: { position: 'asc' } } },
    });
    if (!operation) throw new ResourceNotFoundError('operation', id);
    return operation;
  }

  /** Task counts per state for each operation. */
  async countTasks(operationIds: string[]): Promise<Map<string, Partial<Record<TaskState, number>>>> {
    const groups = await this.prisma.task.groupBy({
      by: ['operationId', 'state'],
      where: { operationId: { in: operationIds } },
      _count: { _all: true },
    });
    return countsByOwner(groups, (group) => group.operationId);
  }

  /** Newest first, keyset-paginated on (createdAt, id). */
  async list(
    filter: {
      status?: Operation['status'] | undefined;
      verb?: string | undefined;
      unit?: string | undefined;
      host?: string | undefined;
    },
    before: CreatedKey | undefined,
    take: number,
  ): Promise<Operation[]> {
    return this.prisma.operation.findMany({
      where: {
        ...(filter.status ? { status: filter.status } : {}),
        ...(filter.verb ? { verb: filter.verb } : {}),
        ...(filter.unit ? { unit: filter.unit } : {}),
        ...(filter.host ? { tasks: { some: { hostName: filter.host } } } : {}),
        ...createdBefore(before),
      },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take,
    });
  }
}

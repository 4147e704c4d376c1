import { Injectable, Logger } from '@nestjs/common';
import { ACTIVE_TASK_STATES, AUDIT_ACTION, FAILED_TASK_STATES, unitAction, type Verb } from '@drover/protocol';
import { ResourceNotFoundError } from '../common/errors/domain-errors';
import type { AuditActor } from '../audit/audit-actor';
import { HostTransport, Operation, Prisma, Task, TaskState } from '../generated/prisma/client';
import { createdBefore, CreatedKey } from '../common/pagination/cursor';
import { PrismaService } from '../infra/prisma/prisma.service';
import { countsByOwner } from '../infra/prisma/state-counts';
import type { DaemonReloadPolicy } from '@drover/protocol';
import { storableText } from './task-output';
import { type Batcher, statementBatcher } from '../common/concurrency/batcher';

export type { Operation, Task, TaskState };

/**
 * The most task reads, starts, clearances or ends one statement takes (see Batcher): enough for a
 * worker's concurrency, few enough that a batch holds its rows only briefly.
 */
const MAX_BATCH = 100;

/** An end left out of its call because another writer held its host's row (see finish). */
const HOST_BUSY = Symbol('host busy');

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

/** A task to start, and whether only when no other rollout holds its unit (startUnlessHeld). */
interface TaskStart {
  task: TaskWithContext;
  unlessHeld: boolean;
}

/** An attempt's clearance to act (clearToAct). */
interface Clearance {
  taskId: string;
  attempt: number;
  before: Prisma.InputJsonValue | null;
  agentClaim: { hostId: string; leaseMs: number } | null;
}

/** A task's end (finish). */
interface TaskEnd {
  task: TaskWithContext;
  outcome: TaskOutcome;
  actor: AuditActor;
  contact: boolean | null;
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
  private readonly logger = new Logger(OperationsRepository.name);
  private readonly reads = this.batcher(
    'task reads',
    (taskIds: readonly string[]) => this.findManyForRun(taskIds),
    (id) => id,
  );
  private readonly starts = this.batcher(
    'task starts',
    (starts: readonly TaskStart[]) => this.startMany(starts),
    ({ task }) => task.id,
  );
  private readonly offers = this.batcher(
    'offers to agents',
    (tasks: readonly TaskWithContext[]) => this.offerMany(tasks),
    (task) => task.id,
  );
  private readonly clearances = this.batcher(
    'clearances to act',
    (clearances: readonly Clearance[]) => this.clearManyToAct(clearances),
    ({ taskId }) => taskId,
  );
  // One end per host in a call (see finish_tasks_and_claim_next: the lock order relies on it).
  private readonly ends = this.batcher(
    'task ends',
    (ends: readonly TaskEnd[]) => this.finishMany(ends),
    ({ task }) => task.hostId ?? `name:${task.hostName}`,
  );

  constructor(private readonly prisma: PrismaService) {}

  /** Statements of one kind made as one for every call in the same turn (see Batcher). */
  private batcher<Item, Result>(
    what: string,
    runMany: (items: readonly Item[]) => Promise<Result[]>,
    keyOf: (item: Item) => string,
  ): Batcher<Item, Result> {
    return statementBatcher(this.logger, what, { runMany, keyOf, maxSize: MAX_BATCH });
  }

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
   * (Prisma's include reads the three tables in three) for every read made in the same turn, since
   * every task's job and every agent's report begins with it. node-postgres gives the columns as
   * Prisma would: uuids, enums and text as strings, timestamps as Dates, jsonb parsed
   * (task-end-inventory compares the two).
   */
  findForRun(taskId: string): Promise<TaskWithContext | null> {
    return this.reads.run(taskId);
  }

  private async findManyForRun(taskIds: readonly string[]): Promise<(TaskWithContext | null)[]> {
    const rows = await this.prisma.rows<Record<string, unknown>>(Prisma.sql`
      SELECT ${RUN_COLUMNS}
      FROM tasks t JOIN operations o ON o.id = t.operation_id LEFT JOIN hosts h ON h.id = t.host_id
      WHERE t.id = ANY (${taskIds}::uuid[])`);
    const found = new Map<unknown, TaskWithContext>(
      rows.map((row) => [
        row['t.id'],
        {
          ...(fieldsOf(row, 't') as Task),
          operation: fieldsOf(row, 'o') as Operation,
          host: row['h.id'] === null ? null : (fieldsOf(row, 'h') as NonNullable<TaskWithContext['host']>),
        },
      ]),
    );
    // PostgreSQL writes uuids in lower case; a caller may not have.
    return taskIds.map((taskId) => found.get(taskId.toLowerCase()) ?? null);
  }

  /**
   * Starts (or resumes, after a lost worker) an attempt at a task: takes it over from any earlier
   * attempt, whose later writes then change nothing. Returns null when the task already finished,
   * so a redelivered job does nothing.
   */
  async startAttempt(task: TaskWithContext): Promise<StartedAttempt | null> {
    return (await this.starts.run({ task, unlessHeld: false })).started;
  }

  /**
   * As startAttempt, unless another rollout holds the task's unit (see holdSql): then the task
   * is left as it was and the hold is returned. The first thing every task does: one statement for
   * every start asked for in the same turn.
   */
  startUnlessHeld(task: TaskWithContext): Promise<{ started: StartedAttempt | null; hold: UnitHold | null }> {
    return this.starts.run({ task, unlessHeld: true });
  }

  /**
   * The starts in one statement, so one round trip, and atomic: each task taken over unless its
   * `unlessHeld` finds a hold, and the operations of those started marked running.
   */
  private async startMany(
    starts: readonly TaskStart[],
  ): Promise<{ started: StartedAttempt | null; hold: UnitHold | null }[]> {
    const column = <Value>(pick: (start: TaskStart) => Value) => starts.map(pick);
    const rows = await this.prisma.rows<Joined<StartRow & HoldRow>>(Prisma.sql`
      WITH input AS (
        SELECT * FROM unnest(${column(({ task }) => task.id)}::uuid[], ${column(({ task }) => task.operationId)}::uuid[],
          ${column(({ task }) => task.hostId)}::uuid[], ${column(({ task }) => task.unit)}::text[],
          ${column(({ task }) => task.operation.rolloutId)}::uuid[], ${column((start) => start.unlessHeld)}::boolean[])
          WITH ORDINALITY AS i (task_id, operation_id, host_id, unit, rollout_id, unless_held, n)
      ), hold AS (
        SELECT i.n, held.rollout_id, held.state
        FROM input i CROSS JOIN LATERAL (${this.holdSql(Prisma.raw('i.host_id'), Prisma.raw('i.unit'), Prisma.raw('i.rollout_id'))}) AS held
        WHERE i.unless_held
      ), started AS (
        UPDATE tasks t SET state = 'running', attempts = t.attempts + 1, started_at = COALESCE(t.started_at, now())
        FROM input i
        WHERE t.id = i.task_id AND t.state IN ('queued', 'running') AND NOT EXISTS (SELECT 1 FROM hold WHERE hold.n = i.n)
        RETURNING i.n, t.attempts, t.before,
          (EXTRACT(EPOCH FROM now() - t.command_sent_at) * 1000)::float8 AS command_sent_ms_ago
      ), running AS (
        UPDATE operations o SET status = 'running'
        WHERE o.id IN (SELECT i.operation_id FROM input i JOIN started ON started.n = i.n) AND o.status = 'queued'
      )
      SELECT started.attempts, started.before, started.command_sent_ms_ago, hold.rollout_id, hold.state
      FROM input i LEFT JOIN hold ON hold.n = i.n LEFT JOIN started ON started.n = i.n
      ORDER BY i.n`);
    return rows.map((row) => {
      if (row.rollout_id && row.state)
        return { started: null, hold: holdOf({ rollout_id: row.rollout_id, state: row.state }) };
      return { started: row.attempts === null ? null : startedOf({ ...row, attempts: row.attempts }), hold: null };
    });
  }

  /**
   * Offers an agent host's task to its agent (it can claim it from now on) unless another rollout
   * holds the task's unit on its host (see holdSql). `offered` is false when the task was offered
   * already or ended, or is held (`hold`). One statement for every offer asked for in the same turn
   * (a batch's tasks are offered together).
   */
  offerUnlessHeld(task: TaskWithContext): Promise<{ offered: boolean; hold: UnitHold | null }> {
    return this.offers.run(task);
  }

  private async offerMany(tasks: readonly TaskWithContext[]): Promise<{ offered: boolean; hold: UnitHold | null }[]> {
    const column = <Value>(pick: (task: TaskWithContext) => Value) => tasks.map(pick);
    const rows = await this.prisma.rows<{ offered: boolean } & Joined<HoldRow>>(Prisma.sql`
      WITH input AS (
        SELECT * FROM unnest(${column((task) => task.id)}::uuid[], ${column((task) => task.hostId)}::uuid[],
          ${column((task) => task.unit)}::text[], ${column((task) => task.operation.rolloutId)}::uuid[])
          WITH ORDINALITY AS i (task_id, host_id, unit, rollout_id, n)
      ), hold AS (
        SELECT i.n, held.rollout_id, held.state
        FROM input i CROSS JOIN LATERAL (${this.holdSql(Prisma.raw('i.host_id'), Prisma.raw('i.unit'), Prisma.raw('i.rollout_id'))}) AS held
      ), offered AS (
        UPDATE tasks t SET offered_at = now()
        FROM input i
        WHERE t.id = i.task_id AND t.offered_at IS NULL AND t.state = 'queued'
          AND NOT EXISTS (SELECT 1 FROM hold WHERE hold.n = i.n)
        RETURNING i.n
      )
      SELECT offered.n IS NOT NULL AS offered, hold.rollout_id, hold.state
      FROM input i LEFT JOIN hold ON hold.n = i.n LEFT JOIN offered ON offered.n = i.n
      ORDER BY i.n`);
    return rows.map((row) => ({
      offered: row.offered,
      hold: row.rollout_id && row.state ? holdOf({ rollout_id: row.rollout_id, state: row.state }) : null,
    }));
  }

  /**
   * The hold on a unit of a host (none when either is null) by a rollout other than `rolloutId`:
   * the expressions given, a task's values or the columns of a statement's input. A rollout holds a
   * unit of a host from the moment its own task there started until its health gate ended: a unit is
   * acted on by one rollout at a time, and nothing acts on it while a rollout judges it (another
   * restart would look like a crash to the gate).
   */
  private holdSql(hostId: Prisma.Sql, unit: Prisma.Sql, rolloutId: Prisma.Sql): Prisma.Sql {
    return Prisma.sql`
      SELECT h.rollout_id::text AS rollout_id, h.state::text AS state
      FROM rollout_hosts h
      WHERE h.host_id = ${hostId} AND ${unit} = ANY (h.units)
        AND h.rollout_id IS DISTINCT FROM ${rolloutId}
        AND (h.state = 'gating' OR (h.state = 'acting' AND EXISTS (
          SELECT 1 FROM tasks t
          WHERE t.operation_id = h.operation_id AND t.host_id = h.host_id AND t.unit = ${unit}
            AND t.state NOT IN ('queued', 'cancelled', 'skipped'))))
      ORDER BY h.gate_started_at NULLS FIRST
      LIMIT 1`;
  }

  /**
   * Records what a task that may not act yet waits for; when that changed and the task is a
   * rollout's, the rollout's events say so too (once per change, not per look). Fenced on
   * `task.attempts`, as every write of an attempt: one taken over meanwhile records nothing.
   */
  async markWaiting(task: TaskWithContext, waitingFor: string, heldByRolloutId: string | null): Promise<void> {
    const text = storableText(waitingFor);
    await this.prisma.$transaction(async (tx) => {
      const changed = await tx.$executeRaw`
        UPDATE tasks SET waiting_for = ${text}, waiting_for_rollout_id = ${heldByRolloutId}::uuid,
          waiting_since = COALESCE(waiting_since, now())
        WHERE id = ${task.id}::uuid AND state IN ('queued', 'running') AND attempts = ${task.attempts}
          AND waiting_for IS DISTINCT FROM ${text}`;
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
   * only a task of the agent's host offered to it, and its claim renewed. One statement for every
   * clearance asked for in the same turn.
   */
  clearToAct(
    taskId: string,
    attempt: number,
    before: Prisma.InputJsonValue | null,
    agentClaim?: { hostId: string; leaseMs: number },
  ): Promise<boolean> {
    return this.clearances.run({ taskId, attempt, before, agentClaim: agentClaim ?? null });
  }

  private async clearManyToAct(clearances: readonly Clearance[]): Promise<boolean[]> {
    const column = <Value>(pick: (clearance: Clearance) => Value) => clearances.map(pick);
    const cleared = await this.prisma.rows<{ n: string }>(Prisma.sql`
      UPDATE tasks t SET before = COALESCE(i.before, t.before), command_sent_at = now(), waiting_for = NULL,
        waiting_for_rollout_id = NULL,
        lease_expires_at = CASE WHEN i.lease_ms IS NULL THEN t.lease_expires_at
          ELSE now() + i.lease_ms * interval '1 millisecond' END
      FROM unnest(${column((clearance) => clearance.taskId)}::uuid[], ${column((clearance) => clearance.attempt)}::int[],
        ${column((clearance) => jsonOrNull(clearance.before))}::jsonb[],
        ${column((clearance) => clearance.agentClaim?.hostId ?? null)}::uuid[],
        ${column((clearance) => clearance.agentClaim?.leaseMs ?? null)}::float8[])
        WITH ORDINALITY AS i (task_id, attempt, before, agent_host_id, lease_ms, n)
      WHERE t.id = i.task_id AND t.state = 'running' AND t.attempts = i.attempt
        AND (i.agent_host_id IS NULL OR (t.host_id = i.agent_host_id AND t.offered_at IS NOT NULL))
      RETURNING i.n`);
    const positions = new Set(cleared.map((row) => Number(row.n)));
    return clearances.map((_, index) => positions.has(index + 1));
  }

  /**
   * Ends a task and records its audit event atomically (a result without its audit event cannot
   * exist), then closes the operation if this was its last task, in the database function
   * finish_task, so the audit chain's lock is never held across a round trip to this process. The
   * same call keeps the inventory current: the unit's row becomes the state the task left it in,
   * and `contact` (true: the host answered; false: unreachable; null: nothing to tell) its host's;
   * and it claims the operation's next tasks (as claimDispatchable), which it returns.
   * No-op (null) if already ended, or if `task.attempts` is no longer the task's current attempt
   * (another took it over). The ends asked for in the same turn, at most one per host, go in one
   * call of finish_tasks_and_claim_next.
   */
  async finish(
    task: TaskWithContext,
    outcome: TaskOutcome,
    actor: AuditActor,
    contact: boolean | null = null,
  ): Promise<Dispatchable | null> {
    const end: TaskEnd = { task, outcome, actor, contact };
    const ended = await this.ends.run(end);
    if (ended !== HOST_BUSY) return ended;
    // Its host's row was held by another writer, so its call left it out (finish_tasks_and_claim_next).
    // Made alone now, outside the batch (whose other ends are answered already), it waits for that
    // row as a single end does; a single end is never left out.
    const [alone] = await this.finishMany([end]);
    return alone === HOST_BUSY ? null : (alone ?? null);
  }

  private async finishMany(ends: readonly TaskEnd[]): Promise<(Dispatchable | null | typeof HOST_BUSY)[]> {
    const items = ends.map(({ task, outcome, actor, contact }) => {
      const reason = storableText(outcome.reason);
      return {
        operation_id: task.operationId,
        task_id: task.id,
        attempt: task.attempts,
        state: outcome.state,
        reason,
        exit_code: outcome.exitCode,
        before: outcome.before,
        after: outcome.after,
        keep_output: outcome.output === undefined,
        output: typeof outcome.output === 'string' ? storableText(outcome.output) : null,
        diagnostics: outcome.diagnostics ? storableText(outcome.diagnostics) : null,
        contact,
        event: {
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
        },
      };
    });
    const rows = await this.prisma.rows<Joined<ClaimRow> & { busy: boolean; ended: boolean | null }>(Prisma.sql`
      SELECT busy, ended, claimed, idle, rollout_id
      FROM finish_tasks_and_claim_next(${JSON.stringify(items)}::jsonb, ${ACTIVE}::"TaskState"[], ${FAILED}::"TaskState"[])
      ORDER BY ordinal`);
    return rows.map((row) => (row.busy ? HOST_BUSY : row.ended === true ? dispatchableOf(row) : null));
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

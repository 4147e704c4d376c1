import { Injectable } from '@nestjs/common';
import {
  AUDIT_ACTION,
  type AuditAction,
  rolloutControlAction,
  type RolloutEventInput,
  type UnitBaseline,
} from '@drover/protocol';
import type { AuditActor } from '../audit/audit-actor';
import { ResourceNotFoundError } from '../common/errors/domain-errors';
import {
  Prisma,
  Rollout,
  RolloutBatch,
  RolloutEvent,
  RolloutHost,
  RolloutHostState,
  RolloutStatus,
} from '../generated/prisma/client';
import { createdBefore, CreatedKey } from '../common/pagination/cursor';
import { PrismaService } from '../infra/prisma/prisma.service';
import { countsByOwner } from '../infra/prisma/state-counts';
import { NewOperation, OperationsRepository, RUN_HOST_FIELDS } from '../operations/operations.repository';
import { Admission, Overlap } from './rollout-admission';
import type { RolloutStrategy } from './dto/rollout.dto';
import { type HostPatch, type LastCheck, type RolloutChange, type RolloutState, supersede } from './rollout-decisions';

export type { Rollout, RolloutBatch, RolloutEvent, RolloutHost, RolloutHostState, RolloutStatus };

export interface UnitState {
  hostId: string;
  name: string;
  activeState: string;
  /** As last discovered: its files changed on disk since systemd read them (null: not known). */
  needDaemonReload: boolean | null;
}

/** Which units to read: one by name, or every unit with a literal prefix and suffix (a glob's bounds). */
export type UnitFilter = { name: string } | { prefix: string; suffix: string };

export interface SshHost {
  id: string;
  name: string;
  address: string;
  port: number;
  sshUser: string;
  hostKeyFingerprint: string | null;
  /** ssh: read over SSH by the worker; agent: read by the host's agent when asked. */
  transport: 'ssh' | 'agent';
}

export type RolloutHostWithHost = RolloutHost & { host: SshHost | null };
export type RolloutWithDetail = Rollout & { hosts: RolloutHost[]; batches: RolloutBatch[] };

export interface NewRollout {
  verb: string;
  unit: string;
  selector: string;
  strategy: Prisma.InputJsonObject;
  total: number;
  maxFailures: number;
  maxUnavailable: number | null;
  deadlineAt: Date | null;
  idempotencyKey: string | null;
  requestHash: string;
  requestedByTokenId: string;
  requestedBy: string;
  requestId: string | null;
}

/**
 * Who asked for a rollout besides its token, when something else decided it (a policy reconcile):
 * recorded as a second audit event in the transaction that creates the rollout, with its id.
 */
export interface RolloutOrigin {
  action: AuditAction;
  unit: string;
  parameters: Prisma.InputJsonObject;
}

/** A task of a batch as the rollout's step needs it. */
export interface BatchTask {
  id: string;
  operationId: string;
  hostName: string;
  hostId: string | null;
  unit: string | null;
  state: string;
  reason: string | null;
  before: Prisma.JsonValue;
  after: Prisma.JsonValue;
  diagnostics: string | null;
}

/** Admissions (creations and retries of rollouts) hold this advisory lock: one at a time, in order. */
export const ADMISSION_LOCK_KEY = 0x64726f7665720001n;

/** The hosts and units a rollout acts on, to find overlaps with others. */
export interface RolloutTarget {
  id: string | null;
  units: string[];
}

/**
 * Unfinished rollouts (or finished ones with hosts in flight) acting on some of these hosts and
 * units, each with the hosts and units shared. Unit names hold no spaces, so each host's units
 * travel as one space-separated string.
 */
async function findOverlaps(
  tx: Prisma.TransactionClient,
  targets: readonly RolloutTarget[],
  exceptRolloutId: string | null,
): Promise<Overlap[]> {
  const mine = targets.filter((target) => target.id !== null && target.units.length > 0);
  if (mine.length === 0) return [];
  const rows = await tx.$queryRaw<
    {
      rollout_id: string;
      status: RolloutStatus;
      admission_seq: bigint;
      host_name: string;
      in_flight: boolean;
      units: string[];
    }[]
  >`
    SELECT theirs.rollout_id::text AS rollout_id, o.status::text AS status, o.admission_seq,
      theirs.host_name, theirs.state IN ('acting', 'gating') AS in_flight,
      ARRAY(SELECT unnest(theirs.units) INTERSECT SELECT unnest(string_to_array(mine.units, ' '))) AS units
    FROM unnest(${mine.map((target) => target.id)}::uuid[], ${mine.map((target) => target.units.join(' '))}::text[])
      AS mine(host_id, units)
    JOIN rollout_hosts theirs
      ON theirs.host_id = mine.host_id AND theirs.units && string_to_array(mine.units, ' ')
    JOIN rollouts o ON o.id = theirs.rollout_id
    WHERE o.id IS DISTINCT FROM ${exceptRolloutId}::uuid
      AND (o.status IN ('queued', 'running', 'paused', 'awaiting_approval') OR theirs.state IN ('acting', 'gating'))
    ORDER BY o.admission_seq, theirs.position`;
  const byRollout = new Map<string, Overlap>();
  for (const row of rows) {
    const overlap = byRollout.get(row.rollout_id) ?? {
      rolloutId: row.rollout_id,
      status: row.status,
      admissionSeq: row.admission_seq,
      hosts: [],
      units: [],
      inFlight: false,
    };
    overlap.hosts.push(row.host_name);
    for (const unit of row.units) if (!overlap.units.includes(unit)) overlap.units.push(unit);
    overlap.inFlight ||= row.in_flight;
    byRollout.set(row.rollout_id, overlap);
  }
  return [...byRollout.values()];
}

/** A host patch of a decision as Prisma writes it (a JSON column set to null is SQL NULL). */
function hostData(set: HostPatch): Prisma.RolloutHostUpdateManyMutationInput {
  const { baseline, lastCheck, ...plain } = set;
  return {
    ...plain,
    ...(baseline === undefined ? {} : { baseline: baseline ?? Prisma.DbNull }),
    ...(lastCheck === undefined ? {} : { lastCheck: lastCheck ?? Prisma.DbNull }),
  };
}

/** Every field of a HostPatch: its column, and how its JSON value becomes the column's (constants, never input). */
const HOST_PATCH_COLUMNS: Record<keyof HostPatch, { column: string; value: string }> = {
  state: { column: 'state', value: `(p.set->>'state')::"RolloutHostState"` },
  reason: { column: 'reason', value: `p.set->>'reason'` },
  gateStartedAt: { column: 'gate_started_at', value: `(p.set->>'gateStartedAt')::timestamptz` },
  healthySince: { column: 'healthy_since', value: `(p.set->>'healthySince')::timestamptz` },
  baseline: { column: 'baseline', value: `NULLIF(p.set->'baseline', 'null'::jsonb)` },
  lastCheck: { column: 'last_check', value: `NULLIF(p.set->'lastCheck', 'null'::jsonb)` },
  finishedAt: { column: 'finished_at', value: `(p.set->>'finishedAt')::timestamptz` },
};
/** `column = its patched value when the patch has the field, else itself`, for every field. */
const HOST_PATCH_ASSIGNMENTS = Prisma.raw(
  Object.entries(HOST_PATCH_COLUMNS)
    .map(([field, { column, value }]) => `${column} = CASE WHEN p.set ? '${field}' THEN ${value} ELSE h.${column} END`)
    .join(',\n'),
);

/**
 * What a rollout's step may do while it holds the rollout's row lock. Every change of a rollout
 * goes through one of these, so steps of any number of workers and control requests never
 * interleave, and the events they append are ordered.
 */
export class LockedRollout {
  private readonly pendingEvents: Prisma.RolloutEventCreateManyInput[] = [];

  constructor(
    private readonly tx: Prisma.TransactionClient,
    private readonly operations: OperationsRepository,
    readonly rollout: Rollout,
  ) {}

  /** The rollout, its hosts and its batches as the decisions read them (rollout-decisions.ts). */
  async state(now = Date.now()): Promise<RolloutState> {
    const [hosts, batches] = await Promise.all([
      this.hosts(),
      this.tx.rolloutBatch.findMany({
        where: { rolloutId: this.rollout.id },
        orderBy: { index: 'asc' },
        select: { id: true, index: true, run: true, hosts: true, finishedAt: true },
      }),
    ]);
    return {
      now,
      rollout: { ...this.rollout, strategy: this.rollout.strategy as unknown as RolloutStrategy },
      hosts: hosts.map((host) => ({
        ...host,
        baseline: host.baseline as unknown as UnitBaseline[] | null,
        lastCheck: host.lastCheck as unknown as LastCheck | null,
      })),
      batches,
    };
  }

  /** Writes a decision's changes in order, and appends its events. */
  async apply(decision: { changes: readonly RolloutChange[]; events: readonly RolloutEventInput[] }): Promise<void> {
    // A step settles many hosts at once (a batch's tasks end together): the changes of one host
    // each that follow each other are written in one statement, merged per host in their order.
    const hostPatches = new Map<string, HostPatch>();
    const writeHostPatches = async () => {
      if (hostPatches.size === 0) return;
      await this.patchHosts(hostPatches);
      hostPatches.clear();
    };
    for (const change of decision.changes) {
      if (change.kind === 'host') {
        hostPatches.set(change.id, { ...hostPatches.get(change.id), ...change.set });
        continue;
      }
      await writeHostPatches();
      switch (change.kind) {
        case 'rollout':
          await this.update(change.set);
          break;
        case 'hosts':
          await this.updateHosts(change.in, hostData(change.set));
          break;
        case 'finishBatch':
          await this.finishBatch(change.batchId);
          break;
        case 'cancelQueuedTasks':
          await this.cancelQueuedTasks(change.operationIds, change.reason);
          break;
        case 'audit':
          await this.audit(
            {
              actorTokenId: this.rollout.requestedByTokenId,
              actorName: this.rollout.requestedBy,
              requestId: this.rollout.requestId,
              sourceAddress: null,
            },
            change.action,
            change.result,
            change.parameters,
            change.reason ?? undefined,
          );
          break;
      }
    }
    await writeHostPatches();
    for (const event of decision.events) this.event(event);
  }

  /**
   * Each host's patch, in one statement. A field absent from a patch keeps its value; present and
   * null, it is cleared (the JSON columns to SQL NULL, as hostData does).
   */
  private async patchHosts(patches: ReadonlyMap<string, HostPatch>): Promise<void> {
    const rows = JSON.stringify([...patches].map(([id, set]) => ({ id, set })));
    const updated = await this.tx.$executeRaw`
      UPDATE rollout_hosts AS h SET ${HOST_PATCH_ASSIGNMENTS}
      FROM jsonb_to_recordset(${rows}::jsonb) AS p(id uuid, set jsonb)
      WHERE h.id = p.id AND h.rollout_id = ${this.rollout.id}::uuid`;
    if (updated !== patches.size) {
      throw new Error(`rollout ${this.rollout.id}: ${patches.size - updated} of its hosts to update were not found`);
    }
  }

  hosts(states?: RolloutHostState[]): Promise<RolloutHost[]> {
    return this.tx.rolloutHost.findMany({
      where: { rolloutId: this.rollout.id, ...(states ? { state: { in: states } } : {}) },
      orderBy: { position: 'asc' },
    });
  }

  async countHosts(states: RolloutHostState[]): Promise<number> {
    return this.tx.rolloutHost.count({ where: { rolloutId: this.rollout.id, state: { in: states } } });
  }

  async batchesOfRun(run: number): Promise<number> {
    return this.tx.rolloutBatch.count({ where: { rolloutId: this.rollout.id, run } });
  }

  async lastBatch(): Promise<RolloutBatch | null> {
    return this.tx.rolloutBatch.findFirst({ where: { rolloutId: this.rollout.id }, orderBy: { index: 'desc' } });
  }

  async update(data: Prisma.RolloutUpdateInput): Promise<void> {
    Object.assign(this.rollout, await this.tx.rollout.update({ where: { id: this.rollout.id }, data }));
  }

  async updateHosts(states: RolloutHostState[], data: Prisma.RolloutHostUpdateManyMutationInput): Promise<number> {
    const updated = await this.tx.rolloutHost.updateMany({
      where: { rolloutId: this.rollout.id, state: { in: states } },
      data,
    });
    return updated.count;
  }

  async finishBatch(batchId: string): Promise<void> {
    await this.tx.rolloutBatch.updateMany({
      where: { id: batchId, finishedAt: null },
      data: { finishedAt: new Date() },
    });
  }

  /** Appends an event; the events of one locked section are written together when it ends. */
  event({ type, data }: RolloutEventInput): void {
    this.pendingEvents.push({ rolloutId: this.rollout.id, type, data });
  }

  /** Writes the events appended so far, in order (one statement: a step may append dozens). */
  async flushEvents(): Promise<void> {
    if (this.pendingEvents.length === 0) return;
    await this.tx.rolloutEvent.createMany({ data: this.pendingEvents.splice(0) });
  }

  async audit(
    actor: AuditActor,
    action: AuditAction,
    result: string,
    parameters: Prisma.InputJsonObject,
    reason?: string,
  ) {
    await this.tx.auditEvent.create({
      data: {
        ...actor,
        action,
        result,
        unit: this.rollout.unit,
        parameters: { rolloutId: this.rollout.id, ...parameters },
        reason: reason ?? null,
      },
    });
  }

  /** The tasks of the given operations not started by any worker yet end as cancelled. */
  cancelQueuedTasks(operationIds: string[], reason: string): Promise<number> {
    return this.operations.cancelQueuedTasks(this.tx, operationIds, reason);
  }

  /** Other rollouts overlapping this one's hosts and units (see findOverlaps). */
  overlaps(): Promise<Overlap[]> {
    return this.hosts().then((hosts) =>
      findOverlaps(
        this.tx,
        hosts.map((host) => ({ id: host.hostId, units: host.units })),
        this.rollout.id,
      ),
    );
  }

  /** Takes a new place at the end of the order of admission (a retry is admitted again). */
  async readmit(): Promise<void> {
    await this.tx.$executeRaw`
      UPDATE rollouts SET admission_seq = nextval('rollouts_admission_seq_seq') WHERE id = ${this.rollout.id}::uuid`;
    Object.assign(this.rollout, await this.tx.rollout.findUniqueOrThrow({ where: { id: this.rollout.id } }));
  }

  /**
   * Starts a batch: its operation (one task per host and unit, all at once, audited as any
   * operation), the batch row, and the hosts marked acting — in one transaction.
   */
  async startBatch(
    hosts: Pick<RolloutHost, 'id' | 'hostId' | 'hostName' | 'units'>[],
    batch: { index: number; run: number; unavailableAtStart: number },
    operation: NewOperation,
    actor: AuditActor,
  ): Promise<string> {
    const tasks = hosts.flatMap((host) => host.units.map((unit) => ({ id: host.hostId, name: host.hostName, unit })));
    const created = await this.operations.createIn(
      this.tx,
      { ...operation, concurrency: Math.max(1, tasks.length), rolloutId: this.rollout.id },
      tasks,
      { rolloutId: this.rollout.id, batch: batch.index, verb: operation.verb, unit: this.rollout.unit },
      actor,
    );
    await this.tx.rolloutBatch.create({
      data: {
        rolloutId: this.rollout.id,
        index: batch.index,
        run: batch.run,
        hosts: hosts.map((host) => host.hostName),
        unavailableAtStart: batch.unavailableAtStart,
        operationId: created.id,
      },
    });
    await this.tx.rolloutHost.updateMany({
      where: { id: { in: hosts.map((host) => host.id) } },
      data: {
        state: 'acting',
        batch: batch.index,
        operationId: created.id,
        reason: null,
        gateStartedAt: null,
        healthySince: null,
        lastCheck: Prisma.DbNull,
        finishedAt: null,
      },
    });
    return created.id;
  }
}

@Injectable()
export class RolloutsRepository {
  constructor(
    private readonly prisma: PrismaService,
    private readonly operations: OperationsRepository,
  ) {}

  /** The last discovered state of the units a filter admits on the given hosts (reads only). */
  async unitStates(hostIds: readonly string[], filter: UnitFilter): Promise<UnitState[]> {
    return this.prisma.unit.findMany({
      where: {
        hostId: { in: [...hostIds] },
        name: 'prefix' in filter ? { startsWith: filter.prefix, endsWith: filter.suffix } : filter.name,
      },
      select: { hostId: true, name: true, activeState: true, needDaemonReload: true },
    });
  }

  /**
   * Admits and creates the rollout, its hosts in order, its first events and its audit event,
   * atomically, holding the admission lock: `decide` is shown the overlapping rollouts and says
   * whether it starts, queues behind them, supersedes them (cancelled here, in the same
   * transaction) or is refused (it throws: nothing is written).
   */
  async create(
    rollout: NewRollout,
    hosts: { id: string; name: string; units: string[] }[],
    actor: AuditActor,
    decide: (overlaps: Overlap[]) => Admission,
    describe: { queued: (blockers: Overlap[]) => string; superseded: (by: string) => string },
    origin?: RolloutOrigin,
  ): Promise<{ rollout: Rollout; superseded: { id: string; quiesced: boolean }[] }> {
    return this.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${ADMISSION_LOCK_KEY})`;
      const admission = decide(await findOverlaps(tx, hosts, null));
      const waitFor =
        admission.kind === 'queue'
          ? admission.blockers
          : admission.kind === 'supersede'
            ? admission.cancel.filter((overlap) => overlap.inFlight)
            : [];
      const created = await tx.rollout.create({
        data: {
          ...rollout,
          status: waitFor.length > 0 ? 'queued' : 'running',
          reason: waitFor.length > 0 ? describe.queued(waitFor) : null,
          blockedBy: waitFor.map((overlap) => overlap.rolloutId),
        },
      });
      const superseded: { id: string; quiesced: boolean }[] = [];
      if (admission.kind === 'supersede') {
        for (const overlap of [...admission.cancel].sort((a, b) => (a.rolloutId < b.rolloutId ? -1 : 1))) {
          const quiesced = await this.lockedIn(tx, overlap.rolloutId, async (older) => {
            const reason = describe.superseded(created.id);
            const decision = supersede(await older.state(), reason, created.id);
            await older.apply(decision);
            await older.audit(
              actor,
              rolloutControlAction('cancel'),
              'ok',
              { status: 'cancelled', supersededBy: created.id },
              reason,
            );
            return decision.quiesced;
          });
          if (quiesced !== null) superseded.push({ id: overlap.rolloutId, quiesced });
        }
      }
      await tx.rolloutHost.createMany({
        data: hosts.map((host, position) => ({
          rolloutId: created.id,
          hostId: host.id,
          hostName: host.name,
          position,
          units: host.units,
        })),
      });
      await tx.rolloutEvent.createMany({
        data: [
          {
            rolloutId: created.id,
            type: 'rollout.created',
            data: {
              status: created.status,
              total: created.total,
              hosts: hosts.map((host) => host.name),
              ...(superseded.length > 0 ? { superseded: superseded.map((older) => older.id) } : {}),
            },
          },
          ...(created.status === 'queued'
            ? [
                {
                  rolloutId: created.id,
                  type: 'rollout.queued',
                  data: { blockedBy: created.blockedBy, reason: created.reason },
                },
              ]
            : []),
        ],
      });
      await tx.auditEvent.create({
        data: {
          ...actor,
          action: AUDIT_ACTION.rolloutCreate,
          result: 'accepted',
          unit: rollout.unit,
          parameters: {
            rolloutId: created.id,
            strategy: rollout.strategy,
            hosts: hosts.map((host) => host.name),
            idempotencyKey: rollout.idempotencyKey,
            status: created.status,
            ...(created.blockedBy.length > 0 ? { blockedBy: created.blockedBy } : {}),
            ...(superseded.length > 0 ? { superseded: superseded.map((older) => older.id) } : {}),
          },
        },
      });
      if (origin) {
        await tx.auditEvent.create({
          data: {
            ...actor,
            action: origin.action,
            result: 'accepted',
            unit: origin.unit,
            parameters: { ...origin.parameters, rolloutId: created.id },
          },
        });
      }
      return { rollout: created, superseded };
    });
  }

  /** Unfinished rollouts overlapping these hosts and units now (a dry run's view; reads only). */
  overlapping(targets: readonly RolloutTarget[]): Promise<Overlap[]> {
    return findOverlaps(this.prisma, targets, null);
  }

  /** Queued rollouts waiting for this one. */
  async queuedBehind(rolloutId: string): Promise<string[]> {
    const rows = await this.prisma.rollout.findMany({
      where: { status: 'queued', blockedBy: { has: rolloutId } },
      select: { id: true },
      orderBy: { admissionSeq: 'asc' },
    });
    return rows.map((row) => row.id);
  }

  findByIdempotencyKey(tokenId: string, key: string): Promise<Rollout | null> {
    return this.prisma.rollout.findUnique({
      where: { requestedByTokenId_idempotencyKey: { requestedByTokenId: tokenId, idempotencyKey: key } },
    });
  }

  async findDetail(id: string): Promise<RolloutWithDetail> {
    const rollout = await this.prisma.rollout.findUnique({
      where: { id },
      include: { hosts: { orderBy: { position: 'asc' } }, batches: { orderBy: { index: 'asc' } } },
    });
    if (!rollout) throw new ResourceNotFoundError('rollout', id);
    return rollout;
  }

  find(id: string): Promise<Rollout | null> {
    return this.prisma.rollout.findUnique({ where: { id } });
  }

  /** Hosts of a rollout in the given states (of these rollout host ids only, if given), with how to reach them. */
  hostsIn(
    rolloutId: string,
    states: readonly RolloutHostState[],
    onlyIds?: readonly string[],
  ): Promise<RolloutHostWithHost[]> {
    return this.prisma.rolloutHost.findMany({
      where: { rolloutId, state: { in: [...states] }, ...(onlyIds ? { id: { in: [...onlyIds] } } : {}) },
      orderBy: { position: 'asc' },
      include: { host: { select: RUN_HOST_FIELDS } },
    });
  }

  /** The tasks of the given operations. */
  tasksOf(operationIds: string[]): Promise<BatchTask[]> {
    return this.prisma.task.findMany({
      where: { operationId: { in: operationIds } },
      select: {
        id: true,
        operationId: true,
        hostName: true,
        hostId: true,
        unit: true,
        state: true,
        reason: true,
        before: true,
        after: true,
        diagnostics: true,
      },
    });
  }

  /**
   * Runs `work` holding the rollout's row lock (FOR UPDATE) in one transaction; null when the
   * rollout does not exist.
   */
  async locked<T>(
    id: string,
    work: (locked: LockedRollout) => Promise<T>,
    options: { admission?: boolean } = {},
  ): Promise<T | null> {
    return this.prisma.$transaction(
      async (tx) => {
        // The admission lock before the row lock, in the order creations take them.
        if (options.admission) await tx.$executeRaw`SELECT pg_advisory_xact_lock(${ADMISSION_LOCK_KEY})`;
        return this.lockedIn(tx, id, work);
      },
      { timeout: 30_000 },
    );
  }

  private async lockedIn<T>(
    tx: Prisma.TransactionClient,
    id: string,
    work: (locked: LockedRollout) => Promise<T>,
  ): Promise<T | null> {
    const [row] = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM rollouts WHERE id = ${id}::uuid FOR UPDATE`;
    if (!row) return null;
    const rollout = await tx.rollout.findUniqueOrThrow({ where: { id } });
    const locked = new LockedRollout(tx, this.operations, rollout);
    const result = await work(locked);
    await locked.flushEvents();
    return result;
  }

  /** Host counts per state for each rollout. */
  async countHosts(rolloutIds: string[]): Promise<Map<string, Partial<Record<RolloutHostState, number>>>> {
    const groups = await this.prisma.rolloutHost.groupBy({
      by: ['rolloutId', 'state'],
      where: { rolloutId: { in: rolloutIds } },
      _count: { _all: true },
    });
    return countsByOwner(groups, (group) => group.rolloutId);
  }

  /** Newest first, keyset-paginated on (createdAt, id). */
  list(
    filter: { status?: RolloutStatus | undefined; verb?: string | undefined; unit?: string | undefined },
    before: CreatedKey | undefined,
    take: number,
  ): Promise<Rollout[]> {
    return this.prisma.rollout.findMany({
      where: {
        ...(filter.status ? { status: filter.status } : {}),
        ...(filter.verb ? { verb: filter.verb } : {}),
        ...(filter.unit ? { unit: filter.unit } : {}),
        ...createdBefore(before),
      },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take,
    });
  }

  /** Rollouts a step may still have work for: not finished, or finished with hosts still in flight. */
  async unsettledIds(): Promise<string[]> {
    const rows = await this.prisma.rollout.findMany({
      where: {
        OR: [
          { status: { in: ['queued', 'running', 'paused', 'awaiting_approval'] } },
          { hosts: { some: { state: { in: ['acting', 'gating'] } } } },
        ],
      },
      select: { id: true },
    });
    return rows.map((row) => row.id);
  }

  /** Whether the rollout is finished with no host in flight: no step will write to it again. */
  async isSettled(id: string): Promise<boolean> {
    const rollout = await this.prisma.rollout.findUnique({
      where: { id },
      select: { status: true, _count: { select: { hosts: { where: { state: { in: ['acting', 'gating'] } } } } } },
    });
    if (!rollout) return true;
    return ['succeeded', 'aborted', 'cancelled'].includes(rollout.status) && rollout._count.hosts === 0;
  }

  /** The id of the rollout's newest event (0 when it has none). */
  async lastEventId(rolloutId: string): Promise<bigint> {
    const newest = await this.prisma.rolloutEvent.findFirst({
      where: { rolloutId },
      orderBy: { id: 'desc' },
      select: { id: true },
    });
    return newest?.id ?? 0n;
  }

  /** Events of a rollout after an id, oldest first. */
  eventsAfter(rolloutId: string, afterId: bigint, take: number): Promise<RolloutEvent[]> {
    return this.prisma.rolloutEvent.findMany({
      where: { rolloutId, id: { gt: afterId } },
      orderBy: { id: 'asc' },
      take,
    });
  }
}

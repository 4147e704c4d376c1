import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { auditActorOf } from '../audit/audit-actor';
import type { RequestActor } from '../common/auth/auth.decorators';
import { createdCursorKey, decodeCreatedCursor, Page, toPage } from '../common/pagination/cursor';
import { isUniqueViolation } from '../infra/prisma/prisma-errors';
import { JobProducer } from '../infra/queue/job-producer';
import { ResourceNotFoundError, StateConflictError, UnprocessableError } from '../common/errors/domain-errors';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import type { Host } from '../hosts/hosts.repository';
import { HostsService } from '../hosts/hosts.service';
import { ProbesRepository } from '../probes/probes.repository';
import { assertMayActOn, BoundsTarget, reloadFirstAction } from '../tokens/token-bounds';
import type { Principal } from '../common/auth/principal';
import { daemonReloadEffect, VERBS_CHANGING_OTHER_UNITS } from '@drover/systemd';
import {
  ACTED_ROLLOUT_HOST_STATES,
  compileUnitGlob,
  matchesUnitGlob,
  ROLLOUT_HOST_STATES,
  type RolloutHostState,
} from '@drover/protocol';
import {
  type ListRolloutsQuery,
  type RolloutPlan,
  type RolloutResponse,
  type RolloutStrategy,
  type RolloutSummary,
} from './dto/rollout.dto';
import {
  estimatedMinimumDurationMs,
  failureBudget,
  globLiteralBounds,
  isUnitGlob,
  orderHosts,
  planBatches,
  unavailabilityCap,
} from './planner';
import { admit, describeOverlaps, queuedReason } from './rollout-admission';
import { commandProbeNames, probeProblems } from './rollout-authority';
import { EVENT_PAGE, RolloutEventFeed } from './rollout-event-feed';
import {
  Rollout,
  RolloutEvent,
  RolloutOrigin,
  RolloutsRepository,
  RolloutWithDetail,
  UnitState,
} from './rollouts.repository';
import { STOPPING_VERBS } from './rollout-rules';

const NO_HOSTS = Object.fromEntries(ROLLOUT_HOST_STATES.map((state) => [state, 0])) as Record<RolloutHostState, number>;

/** JSON with object keys sorted, so equal requests hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function toSummary(rollout: Rollout, counts: Partial<Record<RolloutHostState, number>>): RolloutSummary {
  return {
    id: rollout.id,
    verb: rollout.verb,
    unit: rollout.unit,
    selector: rollout.selector,
    status: rollout.status,
    reason: rollout.reason,
    blockedBy: rollout.blockedBy,
    total: rollout.total,
    maxFailures: rollout.maxFailures,
    maxUnavailable: rollout.maxUnavailable,
    runs: rollout.runs,
    counts: { ...NO_HOSTS, ...counts },
    idempotencyKey: rollout.idempotencyKey,
    requestedBy: rollout.requestedBy,
    createdAt: rollout.createdAt.toISOString(),
    updatedAt: rollout.updatedAt.toISOString(),
    finishedAt: rollout.finishedAt?.toISOString() ?? null,
  };
}

export function toRolloutResponse(rollout: RolloutWithDetail): RolloutResponse {
  const counts: Partial<Record<RolloutHostState, number>> = {};
  for (const host of rollout.hosts) counts[host.state] = (counts[host.state] ?? 0) + 1;
  return {
    ...toSummary(rollout, counts),
    strategy: rollout.strategy as unknown as RolloutStrategy,
    approvedAt: rollout.approvedAt?.toISOString() ?? null,
    approvedBy: rollout.approvedBy,
    deadlineAt: rollout.deadlineAt?.toISOString() ?? null,
    nextBatchAt: rollout.nextBatchAt?.toISOString() ?? null,
    hosts: rollout.hosts.map((host) => ({
      name: host.hostName,
      position: host.position,
      units: host.units,
      state: host.state,
      batch: host.batch,
      reason: host.reason,
      operationId: host.operationId,
      healthySince: host.healthySince?.toISOString() ?? null,
      lastCheck: host.lastCheck as Record<string, unknown> | null,
      finishedAt: host.finishedAt?.toISOString() ?? null,
    })),
    batches: rollout.batches.map((batch) => ({
      index: batch.index,
      run: batch.run,
      hosts: batch.hosts,
      unavailableAtStart: batch.unavailableAtStart,
      operationId: batch.operationId,
      startedAt: batch.startedAt.toISOString(),
      finishedAt: batch.finishedAt?.toISOString() ?? null,
    })),
  };
}

export interface RolloutEventMessage {
  id: string;
  type: string;
  data: Record<string, unknown>;
}

function toEventMessage(event: RolloutEvent): RolloutEventMessage {
  return {
    id: event.id.toString(),
    type: event.type,
    data: { ...(event.data as Record<string, unknown>), at: event.createdAt.toISOString() },
  };
}

interface TargetHost {
  id: string;
  name: string;
  labels: Record<string, string>;
  units: UnitState[];
}

function boundsTarget(host: Host): BoundsTarget {
  return { name: host.name, labels: host.labels as Record<string, string> };
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** A host's units summed up: active only when all are; a unit never discovered is `unknown`. */
function unitStateOf(host: TargetHost): string {
  if (host.units.length === 0) return 'unknown';
  return host.units.find((unit) => unit.activeState !== 'active')?.activeState ?? 'active';
}

@Injectable()
export class RolloutsService {
  private readonly logger = new Logger(RolloutsService.name);

  constructor(
    private readonly hostsService: HostsService,
    private readonly rollouts: RolloutsRepository,
    private readonly probes: ProbesRepository,
    private readonly producer: JobProducer,
    private readonly eventFeed: RolloutEventFeed,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * Starts a rollout, or with an Idempotency-Key already used by this token returns the rollout it
   * started (same request) or refuses (another request). Nothing is written unless the plan is ok.
   */
  async create(
    strategy: RolloutStrategy,
    idempotencyKey: string | undefined,
    actor: RequestActor,
    principal: Principal,
    origin?: RolloutOrigin,
  ): Promise<{ rollout: RolloutResponse; replayed: boolean }> {
    const requestHash = createHash('sha256').update(canonicalJson(strategy)).digest('hex');
    if (idempotencyKey !== undefined) {
      const replay = await this.replay(actor.tokenId, idempotencyKey, requestHash);
      if (replay) return replay;
    }
    const { plan, targets } = await this.resolve(strategy, principal);
    if (!plan.ok) throw new UnprocessableError('rollout_cannot_start', 'strategy', plan.problems.join('; '));
    let created: Rollout;
    let superseded: { id: string; quiesced: boolean }[];
    try {
      ({ rollout: created, superseded } = await this.rollouts.create(
        {
          verb: strategy.verb,
          unit: strategy.unit,
          selector: strategy.selector,
          strategy: JSON.parse(JSON.stringify(strategy)) as RolloutStrategy,
          total: plan.total,
          maxFailures: plan.failureBudget.maxFailures,
          maxUnavailable: plan.maxUnavailable.allowed,
          deadlineAt: strategy.deadlineMs === undefined ? null : new Date(Date.now() + strategy.deadlineMs),
          idempotencyKey: idempotencyKey ?? null,
          requestHash,
          requestedByTokenId: actor.tokenId,
          requestedBy: actor.tokenName,
          requestId: actor.requestId,
        },
        targets,
        auditActorOf(actor),
        (overlaps) => {
          const admission = admit(strategy.onOverlap, overlaps);
          if (admission.kind === 'reject') {
            throw new StateConflictError(
              'rollout_overlaps',
              `an unfinished rollout acts on some of the same hosts and units: ${describeOverlaps(admission.blockers)}; ` +
                "wait for it, cancel it, or send onOverlap 'queue' (wait behind it) or 'supersede' (cancel it first)",
              'onOverlap',
            );
          }
          return admission;
        },
        { queued: queuedReason, superseded: (by) => `cancelled: superseded by rollout ${by}` },
        origin,
      ));
    } catch (error) {
      // The same key sent twice at once: the other request created it.
      const replay =
        idempotencyKey !== undefined && isUniqueViolation(error)
          ? await this.replay(actor.tokenId, idempotencyKey, requestHash)
          : null;
      if (replay) return replay;
      throw error;
    }
    for (const older of superseded) await (older.quiesced ? this.cameToRest(older.id) : this.wake(older.id));
    await this.wake(created.id);
    return { rollout: await this.get(created.id), replayed: false };
  }

  private async replay(
    tokenId: string,
    idempotencyKey: string,
    requestHash: string,
  ): Promise<{ rollout: RolloutResponse; replayed: boolean } | null> {
    const existing = await this.rollouts.findByIdempotencyKey(tokenId, idempotencyKey);
    if (!existing) return null;
    if (existing.requestHash !== requestHash) {
      throw new StateConflictError(
        'idempotency_key_reused',
        `Idempotency-Key '${idempotencyKey}' was used for another request (rollout ${existing.id}); use a new key for a new rollout`,
        'Idempotency-Key',
      );
    }
    return { rollout: await this.get(existing.id), replayed: true };
  }

  /**
   * A finished rollout's last host came to rest: the rollouts queued behind it look again at once,
   * and its hosts get the look at their units every action is followed by (not earlier, so
   * discoveries do not compete with the batches still acting).
   */
  async cameToRest(id: string): Promise<void> {
    for (const queued of await this.rollouts.queuedBehind(id)) await this.wake(queued);
    const rollout = await this.rollouts.find(id);
    if (!rollout) return;
    const strategy = rollout.strategy as unknown as RolloutStrategy;
    const otherUnitFiles = VERBS_CHANGING_OTHER_UNITS.includes(strategy.verb) || strategy.daemonReload === 'auto';
    const acted = await this.rollouts.hostsIn(id, ACTED_ROLLOUT_HOST_STATES);
    for (const host of acted) if (host.host) await this.producer.discoverAfterAction(host.host.id, otherUnitFiles);
  }

  /** Queues the rollout's next step; if Redis is away the reconciler does it shortly. */
  async wake(id: string): Promise<void> {
    try {
      await this.producer.wakeRollout(id);
    } catch (error) {
      this.logger.error({ rolloutId: id, err: error }, 'could not queue the rollout step; the reconciler will');
    }
  }

  /**
   * The rollout's events after `afterId`, oldest first, as they are written, for one token (which
   * may hold only so many streams open): replays the table, then takes new events from the
   * rollout's source shared by every follower in this process (woken by NOTIFY, no polling per
   * client). Ends once the rollout is settled and every event was sent, or when `signal` aborts.
   */
  async *follow(
    id: string,
    afterId: bigint,
    tokenId: string,
    signal: AbortSignal,
  ): AsyncGenerator<RolloutEventMessage> {
    if (!(await this.rollouts.find(id))) throw new ResourceNotFoundError('rollout', id);
    const release = this.eventFeed.openStream(tokenId);
    const { follower, leave } = await this.eventFeed.follow(id).catch((error: unknown) => {
      release();
      throw error;
    });
    try {
      await follower.ready;
      let last = afterId;
      for (;;) {
        const events = await this.rollouts.eventsAfter(id, last, EVENT_PAGE);
        for (const event of events) {
          last = event.id;
          yield toEventMessage(event);
        }
        if (events.length < EVENT_PAGE || signal.aborted) break;
      }
      for (let item = await follower.next(signal); item !== 'end'; item = await follower.next(signal)) {
        // The source hands out what it reads; part of it may already be in the replay.
        if (item.id <= last) continue;
        last = item.id;
        yield toEventMessage(item);
      }
    } finally {
      leave();
      release();
    }
  }

  async get(id: string): Promise<RolloutResponse> {
    return toRolloutResponse(await this.rollouts.findDetail(id));
  }

  async list(query: ListRolloutsQuery): Promise<Page<RolloutSummary>> {
    const rows = await this.rollouts.list(query, decodeCreatedCursor(query.cursor), query.limit + 1);
    const counts = await this.rollouts.countHosts(rows.slice(0, query.limit).map((rollout) => rollout.id));
    return toPage(rows, query.limit, (rollout) => toSummary(rollout, counts.get(rollout.id) ?? {}), createdCursorKey);
  }

  /**
   * What a rollout would do now, from the inventory and the last discovered unit states: hosts in
   * order, batches, budgets, and why it could not start if so. Reads only, so it is not audited.
   */
  async plan(strategy: RolloutStrategy, principal: Principal): Promise<RolloutPlan> {
    return (await this.resolve(strategy, principal)).plan;
  }

  /** The plan, and the hosts (ids and units) a rollout started now would act on, in order. */
  private async resolve(
    strategy: RolloutStrategy,
    principal: Principal,
  ): Promise<{ plan: RolloutPlan; targets: { id: string; name: string; units: string[] }[] }> {
    const matched = await this.hostsService.resolveTargets(strategy.selector);
    const only = strategy.onlyHosts === undefined ? null : new Set(strategy.onlyHosts);
    const selected = only === null ? matched : matched.filter((host) => only.has(host.name));
    const matchedNames = new Set(matched.map((host) => host.name));
    const unmatched = (strategy.onlyHosts ?? []).filter((name) => !matchedNames.has(name));
    const glob = isUnitGlob(strategy.unit);
    const states = await this.rollouts.unitStates(
      selected.map((host) => host.id),
      glob ? globLiteralBounds(strategy.unit) : { name: strategy.unit },
    );
    const pattern = glob ? compileUnitGlob(strategy.unit) : null;
    const matching = pattern ? states.filter((state) => matchesUnitGlob(pattern, state.name)) : states;
    const actedUnits = glob ? [...new Set(matching.map((state) => state.name))] : [strategy.unit];
    assertMayActOn(principal, selected.map(boundsTarget), { verb: strategy.verb, units: actedUnits });
    const reload = reloadFirstAction(strategy.daemonReload);
    if (reload) assertMayActOn(principal, selected.map(boundsTarget), reload);
    const probeNames = commandProbeNames(strategy.healthGate.probes);
    const catalogue = await this.probes.findByNames(probeNames);

    const unitsByHost = new Map<string, UnitState[]>();
    for (const state of matching) {
      const units = unitsByHost.get(state.hostId);
      if (units) units.push(state);
      else unitsByHost.set(state.hostId, [state]);
    }
    const hosts = selected.map((host): TargetHost => ({
      id: host.id,
      name: host.name,
      labels: host.labels as Record<string, string>,
      units: (unitsByHost.get(host.id) ?? []).sort(byName),
    }));
    // An exact unit is acted on even where it was never discovered; a glob only names what it matched.
    const skipped = glob ? hosts.filter((host) => host.units.length === 0) : [];
    const ordered = orderHosts(glob ? hosts.filter((host) => host.units.length > 0) : hosts, strategy.order);
    const total = ordered.length;
    const alreadyUnavailable = ordered.filter((host) => unitStateOf(host) !== 'active').map((host) => host.name);
    const needsDaemonReload = (host: TargetHost) => host.units.some((unit) => unit.needDaemonReload === true);
    const reloadHosts = ordered.filter(needsDaemonReload).map((host) => host.name);
    const cap = unavailabilityCap(strategy.maxUnavailable, total, alreadyUnavailable.length);

    const problems = probeProblems(strategy.healthGate.probes, catalogue, actedUnits);
    if (unmatched.length > 0) {
      problems.push(`onlyHosts names hosts the selector does not match (or unknown): ${unmatched.join(', ')}`);
    }
    if (total === 0) problems.push(`no selected host has a discovered unit matching '${strategy.unit}'`);
    // Hosts already down are acted on first and take no room under maxUnavailable (acting on them
    // cannot take anything more down), as a run does; without a limit the run counts nothing first.
    const { batches } = planBatches(
      ordered.map((host) => host.name),
      {
        batches: strategy.batches,
        cap: cap.allowed,
        down: cap.allowed === null ? undefined : new Set(alreadyUnavailable),
      },
    );
    const estimate = estimatedMinimumDurationMs(
      batches.length,
      strategy.healthGate.minHealthyTimeMs,
      strategy.pauseBetweenBatchesMs,
    );
    if (strategy.maxUnavailable !== undefined && STOPPING_VERBS.includes(strategy.verb)) {
      problems.push(
        `maxUnavailable limits how many units a rollout takes down at once while they come back; ${strategy.verb} ` +
          'leaves them down by design, so it cannot apply (limit a stop with batch sizes)',
      );
    }
    if (strategy.deadlineMs !== undefined && estimate > strategy.deadlineMs) {
      problems.push(`the rollout needs at least ${estimate} ms, more than deadlineMs (${strategy.deadlineMs})`);
    }
    const batchOf = new Map(batches.flatMap((batch) => batch.hosts.map((name) => [name, batch.index] as const)));

    const unitsOf = (host: TargetHost) => (glob ? host.units.map((unit) => unit.name) : [strategy.unit]);
    const targets = ordered.map((host) => ({ id: host.id, name: host.name, units: unitsOf(host) }));
    const overlaps = await this.rollouts.overlapping(targets);
    const plan: RolloutPlan = {
      ok: problems.length === 0,
      problems,
      verb: strategy.verb,
      unit: strategy.unit,
      selector: strategy.selector,
      total,
      hosts: ordered.map((host) => ({
        name: host.name,
        batch: batchOf.get(host.name) ?? null,
        units: unitsOf(host),
        unitState: unitStateOf(host),
        available: unitStateOf(host) === 'active',
        needsDaemonReload: needsDaemonReload(host),
      })),
      skipped: skipped.map((host) => ({
        name: host.name,
        reason: `no discovered unit matches '${strategy.unit}'`,
      })),
      alreadyUnavailable,
      daemonReload: {
        policy: strategy.daemonReload,
        hosts: reloadHosts,
        effect: daemonReloadEffect(strategy.daemonReload, strategy.verb, reloadHosts.length),
      },
      batches,
      failureBudget: failureBudget(total, strategy.maxFailures),
      maxUnavailable: cap,
      healthGate: strategy.healthGate,
      probeCommands: probeNames.flatMap((name) => {
        const entry = catalogue.get(name);
        return entry ? [{ name, argv: entry.argv, timeoutMs: entry.timeoutMs }] : [];
      }),
      pauseBetweenBatchesMs: strategy.pauseBetweenBatchesMs,
      approveAfterCanary: strategy.approveAfterCanary,
      taskTimeoutMs: strategy.taskTimeoutMs ?? this.config.SSH_COMMAND_TIMEOUT_MS,
      deadlineMs: strategy.deadlineMs ?? null,
      estimatedMinimumDurationMs: estimate,
      onOverlap: strategy.onOverlap,
      overlaps: overlaps.map(({ rolloutId, status, hosts: shared, units }) => ({
        rolloutId,
        status,
        hosts: shared,
        units,
      })),
    };
    return { plan, targets };
  }
}

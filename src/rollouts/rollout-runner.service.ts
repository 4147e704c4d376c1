import { Inject, Injectable, Logger } from '@nestjs/common';
import type { AuditActor } from '../audit/audit-actor';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { Prisma } from '../generated/prisma/client';
import { JobDeferred } from '../infra/queue/job-deferred';
import { JobProducer } from '../infra/queue/job-producer';
import { SshError } from '../infra/ssh/ssh-errors';
import { SshExecutor, SshTarget } from '../infra/ssh/ssh-executor';
import { SshHostAdapter } from '../infra/ssh/ssh-host-adapter';
import { DispatcherService } from '../operations/dispatcher.service';
import { AUDIT_ACTION, isActingRollout, type RolloutStatus, type UnitSnapshot } from '@drover/protocol';
import { readUnit } from '@drover/systemd';
import { ProbeCommand, ProbesRepository } from '../probes/probes.repository';
import type { RolloutStrategy } from './dto/rollout.dto';
import { blockersOf, queuedReason } from './rollout-admission';
import { runNetworkProbe } from './probes';
import {
  baselineOf,
  failureBudgetExceeded,
  judgeGate,
  nextBatchSize,
  UnitBaseline,
  unitGateProblem,
  UnitReading,
} from './rollout-rules';
import {
  BatchTask,
  LockedRollout,
  Rollout,
  RolloutHost,
  RolloutHostWithHost,
  RolloutsRepository,
  SshHost,
} from './rollouts.repository';
import { RolloutsService } from './rollouts.service';
import { commandProbeNames } from './rollout-authority';
import { RolloutAuthorityService } from './rollout-authority.service';

/** How often hosts in their health gate are checked. */
const GATE_CHECK_INTERVAL_MS = 1_000;
/** How often a step looks at a batch whose tasks run (a task ending wakes it sooner). */
const ACTING_POLL_MS = 1_000;
/** How often a batch waiting for the availability limit re-checks the fleet. */
const AVAILABILITY_POLL_MS = 2_000;
/** The soonest a host is checked again (checks take a round trip anyway). */
const MIN_RECHECK_MS = 20;
/** Upper bound of one `systemctl show` of a health check or availability census. */
const CHECK_TIMEOUT_MS = 10_000;
/** How often a queued rollout looks at its blockers (the end of one wakes it sooner). */
const QUEUED_POLL_MS = 5_000;

interface GateCheck {
  fatal: string[];
  failing: string[];
  units: Record<string, { activeState: string; subState: string; mainPid: number | null; nRestarts: number | null }>;
}

/** What the locked part of a step decided: whether to plan a batch, and when to look again. */
interface Advance {
  wantsBatch: boolean;
  nextStepInMs: number | null;
  /** This step saw the rollout's last host come to rest after it ended: nothing will act again. */
  quiesced?: boolean;
  /** The operation of a batch planned under the lock, to dispatch once it is committed. */
  operationId?: string;
}

function requesterOf(rollout: Rollout): AuditActor {
  return {
    actorTokenId: rollout.requestedByTokenId,
    actorName: rollout.requestedBy,
    requestId: rollout.requestId,
    sourceAddress: null,
  };
}

function targetOf(host: SshHost): SshTarget {
  return { hostId: host.id, ...host };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What the health gate holds each unit of a host to: its state right after its task. */
function baselinesOf(tasks: BatchTask[]): UnitBaseline[] {
  return tasks.flatMap((task) =>
    task.after && task.unit ? [baselineOf(task.unit, task.after as unknown as UnitSnapshot)] : [],
  );
}

function describeTask(task: BatchTask): string {
  return `${task.unit ?? '(host)'}: ${task.state}${task.reason ? ` (${task.reason})` : ''}`;
}

/**
 * Takes rollouts forward one short step at a time. A step reads the rollout from the database,
 * talks to hosts only outside transactions (health checks, the availability census), and makes
 * every decision holding the rollout's row lock, so any worker can take any step, two steps never
 * decide at once, and a worker killed mid-step leaves nothing half-done: the next step re-reads.
 */
@Injectable()
export class RolloutRunnerService {
  private readonly logger = new Logger(RolloutRunnerService.name);

  constructor(
    private readonly rollouts: RolloutsRepository,
    private readonly rolloutsService: RolloutsService,
    private readonly dispatcher: DispatcherService,
    private readonly producer: JobProducer,
    private readonly ssh: SshExecutor,
    private readonly authority: RolloutAuthorityService,
    private readonly probes: ProbesRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Wakes every rollout a step may have work for (covers step jobs lost with Redis or a crash). */
  async reconcile(): Promise<number> {
    const ids = await this.rollouts.unsettledIds();
    for (const id of ids) await this.producer.wakeRollout(id);
    return ids.length;
  }

  async step(rolloutId: string): Promise<void> {
    // Wake-ups from here on are about changes this step may not see: they make it run again.
    await this.producer.takeWakeSignal(this.producer.rolloutWakeSignal(rolloutId));
    const rollout = await this.rollouts.find(rolloutId);
    if (!rollout) return;
    if (rollout.status === 'queued') {
      const left = await this.rollouts.locked(rolloutId, (locked) => this.leaveQueue(locked));
      if (left === 'quiesced') await this.rolloutsService.cameToRest(rolloutId);
      if (left !== 'started') {
        if (left === 'queued') throw new JobDeferred(QUEUED_POLL_MS, this.producer.rolloutWakeSignal(rolloutId));
        return;
      }
      return this.step(rolloutId);
    }
    const strategy = rollout.strategy as unknown as RolloutStrategy;

    const ended = await this.endedHosts(rolloutId);
    const active = isActingRollout(rollout.status);
    const gating = active ? await this.rollouts.hostsIn(rolloutId, ['gating']) : [];
    // Hosts whose tasks all succeeded enter their gate in this step: their first check is made
    // now too, so a healthy host goes from acting to done in one locked section.
    const entering = active
      ? ended.flatMap(({ host, tasks }) =>
          tasks.every((task) => task.state === 'succeeded')
            ? [{ ...host, baseline: baselinesOf(tasks) as unknown as Prisma.JsonArray, lastCheck: null }]
            : [],
        )
      : [];
    const checking = [...gating, ...entering];
    // The catalogue as it is now: a probe changed meanwhile runs as changed, a deleted one fails.
    const catalogue =
      checking.length === 0 ? new Map() : await this.probes.findByNames(commandProbeNames(strategy.healthGate.probes));
    const checks = new Map(
      await Promise.all(checking.map(async (host) => [host.id, await this.check(host, strategy, catalogue)] as const)),
    );
    let advance = await this.rollouts.locked(rolloutId, async (locked) => {
      const settled = await this.settle(locked, ended);
      return this.advance(locked, strategy, checks, settled);
    });
    if (advance?.operationId) await this.dispatcher.dispatch(advance.operationId);
    if (advance?.quiesced) await this.rolloutsService.cameToRest(rolloutId);
    if (advance?.wantsBatch) advance = await this.startBatch(rolloutId, strategy);
    if (advance?.nextStepInMs !== null && advance?.nextStepInMs !== undefined) {
      throw new JobDeferred(Math.max(1, advance.nextStepInMs), this.producer.rolloutWakeSignal(rolloutId));
    }
  }

  /**
   * A queued rollout starts once no overlapping rollout admitted before it is unfinished and none
   * has hosts in flight on the shared hosts (first come, first served). Its deadline runs meanwhile.
   */
  private async leaveQueue(locked: LockedRollout): Promise<'started' | 'queued' | 'quiesced' | 'gone'> {
    const { rollout } = locked;
    if (rollout.status !== 'queued') return 'gone';
    const blockers = blockersOf(rollout.admissionSeq, await locked.overlaps());
    if (rollout.deadlineAt && rollout.deadlineAt.getTime() <= Date.now()) {
      await this.end(
        locked,
        'aborted',
        `the deadline (${rollout.deadlineAt.toISOString()}) passed while it was ${rollout.reason ?? 'queued'}`,
      );
      return 'quiesced';
    }
    if (blockers.length > 0) {
      const blockedBy = blockers.map((blocker) => blocker.rolloutId);
      if (blockedBy.join() !== rollout.blockedBy.join()) {
        const reason = queuedReason(blockers);
        await locked.update({ blockedBy, reason });
        locked.event('rollout.queued', { blockedBy, reason });
      }
      return 'queued';
    }
    const waitedFor = rollout.blockedBy;
    await locked.update({ status: 'running', reason: null, blockedBy: [] });
    // A retried rollout's hosts that were acted on but not proven healthy are judged again now.
    await locked.regateInterrupted();
    locked.event('rollout.started', { waitedFor });
    return 'started';
  }

  /** The hosts still acting whose batch tasks have all ended, with those tasks. */
  private async endedHosts(rolloutId: string): Promise<{ host: RolloutHostWithHost; tasks: BatchTask[] }[]> {
    const acting = await this.rollouts.hostsIn(rolloutId, ['acting']);
    const operationIds = [...new Set(acting.flatMap((host) => (host.operationId ? [host.operationId] : [])))];
    if (operationIds.length === 0) return [];
    const tasks = await this.rollouts.tasksOf(operationIds);
    return acting.flatMap((host) => {
      const own = tasks.filter((task) => task.operationId === host.operationId && task.hostName === host.hostName);
      const done = own.length > 0 && own.every((task) => task.state !== 'queued' && task.state !== 'running');
      return done ? [{ host, tasks: own }] : [];
    });
  }

  /** Hosts whose batch tasks all ended move on: to their health gate, or failed. Returns how many. */
  private async settle(locked: LockedRollout, ended: { host: RolloutHost; tasks: BatchTask[] }[]): Promise<number> {
    if (ended.length === 0) return 0;
    const stillActing = new Set((await locked.hosts(['acting'])).map((host) => host.id));
    let count = 0;
    for (const { host, tasks } of ended) {
      if (!stillActing.has(host.id)) continue;
      await this.hostActed(locked, host, tasks);
      count += 1;
    }
    return count;
  }

  private async hostActed(locked: LockedRollout, host: RolloutHost, tasks: BatchTask[]): Promise<void> {
    for (const task of tasks) {
      const before = task.before as { mainPid?: number | null } | null;
      const after = task.after as { mainPid?: number | null } | null;
      locked.event('task.finished', {
        host: host.hostName,
        unit: task.unit,
        taskId: task.id,
        state: task.state,
        reason: task.reason,
        mainPidBefore: before?.mainPid ?? null,
        mainPidAfter: after?.mainPid ?? null,
      });
    }
    const unsuccessful = tasks.filter((task) => task.state !== 'succeeded');
    if (tasks.every((task) => task.state === 'cancelled')) {
      // Its tasks never started (the rollout ended first): nothing was done to this host.
      const reason = tasks.map(describeTask).join('; ');
      await locked.updateHost(host.id, { state: 'cancelled', reason, finishedAt: new Date() });
      locked.event('host.cancelled', { host: host.hostName, batch: host.batch, reason });
      return;
    }
    if (unsuccessful.length > 0) {
      const reason = unsuccessful.map(describeTask).join('; ');
      await locked.updateHost(host.id, { state: 'failed', reason, finishedAt: new Date() });
      locked.event('host.failed', { host: host.hostName, batch: host.batch, reason });
      return;
    }
    if (!isActingRollout(locked.rollout.status)) {
      const reason = `acted on, but the rollout was ${locked.rollout.status} before its health gate`;
      await locked.updateHost(host.id, { state: 'interrupted', reason, finishedAt: new Date() });
      locked.event('host.interrupted', { host: host.hostName, reason });
      return;
    }
    const baseline = baselinesOf(tasks);
    await locked.updateHost(host.id, {
      state: 'gating',
      gateStartedAt: new Date(),
      healthySince: null,
      lastCheck: Prisma.DbNull,
      baseline: baseline as unknown as Prisma.InputJsonArray,
    });
    locked.event('host.gating', { host: host.hostName, batch: host.batch, baseline } as never);
  }

  /** One health check of a host: its units against their baseline, then the probes. */
  private async check(
    host: RolloutHostWithHost,
    strategy: RolloutStrategy,
    catalogue: ReadonlyMap<string, ProbeCommand>,
  ): Promise<GateCheck> {
    const result: GateCheck = { fatal: [], failing: [], units: {} };
    if (!host.host) {
      result.fatal.push(`${host.hostName} was removed from the inventory`);
      return result;
    }
    const target = targetOf(host.host);
    const baselines = (host.baseline ?? []) as unknown as UnitBaseline[];
    // The gate's first check takes the units as their task read them right after acting (that
    // reading is the baseline, moments old); every later check reads them on the host again.
    const readUnit = (baseline: UnitBaseline): Promise<UnitReading> =>
      host.lastCheck === null ? Promise.resolve(baseline) : this.show(target, baseline.unit);
    for (const baseline of baselines) {
      try {
        const now = await readUnit(baseline);
        result.units[baseline.unit] = {
          activeState: now.activeState,
          subState: now.subState,
          mainPid: now.mainPid,
          nRestarts: now.nRestarts,
        };
        const problem = unitGateProblem(strategy.verb, baseline, now);
        if (problem) result.fatal.push(problem);
      } catch (error) {
        result.failing.push(`could not read ${baseline.unit}: ${messageOf(error)}`);
      }
    }
    for (const probe of strategy.healthGate.probes) {
      if (probe.type === 'command') {
        const entry = catalogue.get(probe.name);
        if (!entry) {
          result.failing.push(`probe '${probe.name}' is no longer in the catalogue`);
          continue;
        }
        try {
          const ran = await this.ssh.exec(target, entry.argv, { timeoutMs: entry.timeoutMs });
          if (ran.exitCode !== 0) {
            const said = (ran.stderr.trim() || ran.stdout.trim()).split('\n').slice(-1)[0] ?? '';
            result.failing.push(`probe '${probe.name}' exited ${ran.exitCode ?? ran.signal}${said ? `: ${said}` : ''}`);
          }
        } catch (error) {
          result.failing.push(`probe '${probe.name}': ${messageOf(error)}`);
        }
      } else {
        const problem = await runNetworkProbe(host.host.address, probe);
        if (problem) result.failing.push(problem);
      }
    }
    return result;
  }

  private async show(target: SshTarget, unit: string): Promise<UnitSnapshot> {
    return readUnit(new SshHostAdapter(this.ssh, target), unit, CHECK_TIMEOUT_MS);
  }

  /**
   * The locked part of a step: gate verdicts, the failure budget, the deadline, the end of a
   * batch, approval, completion. Returns whether a new batch should be planned.
   */
  private async advance(
    locked: LockedRollout,
    strategy: RolloutStrategy,
    checks: Map<string, GateCheck>,
    hostsSettled: number,
  ): Promise<Advance> {
    const now = Date.now();
    const gating = await locked.hosts(['gating']);
    const wasActive = isActingRollout(locked.rollout.status);
    // A host that just entered its gate is checked at once; one that passes its checks, when its
    // minHealthyTime is up (or sooner, to catch a crash).
    let nextCheckInMs = GATE_CHECK_INTERVAL_MS;
    for (const host of gating) {
      if (!isActingRollout(locked.rollout.status)) {
        const reason = `acted on, but the rollout was ${locked.rollout.status} before its health gate passed`;
        await locked.updateHost(host.id, { state: 'interrupted', reason, finishedAt: new Date() });
        locked.event('host.interrupted', { host: host.hostName, reason });
        continue;
      }
      const check = checks.get(host.id);
      const recheckInMs = check ? await this.judge(locked, host, check, strategy, now) : 0;
      if (recheckInMs !== null) nextCheckInMs = Math.min(nextCheckInMs, recheckInMs);
    }

    if (isActingRollout(locked.rollout.status)) {
      const failed = await locked.countHosts(['failed']);
      if (failureBudgetExceeded(failed, locked.rollout.maxFailures)) {
        const names = (await locked.hosts(['failed'])).map((host) => `${host.hostName} (${host.reason ?? 'failed'})`);
        await this.end(
          locked,
          'aborted',
          `${failed} host(s) failed, more than maxFailures (${locked.rollout.maxFailures}): ${names.join('; ')}`,
        );
      } else if (locked.rollout.deadlineAt && locked.rollout.deadlineAt.getTime() <= now) {
        await this.end(locked, 'aborted', `the deadline (${locked.rollout.deadlineAt.toISOString()}) passed`);
      }
    }

    const inFlight = await locked.hosts(['acting', 'gating']);
    if (inFlight.length > 0) {
      const gatingNow = inFlight.some((host) => host.state === 'gating');
      return { wantsBatch: false, nextStepInMs: gatingNow ? nextCheckInMs : ACTING_POLL_MS };
    }

    const pending = await locked.countHosts(['pending']);
    await this.closeBatch(locked, strategy, pending, now);
    const status = locked.rollout.status;
    if (status !== 'running') {
      const cameToRest = wasActive || hostsSettled > 0 || gating.length > 0;
      return { wantsBatch: false, nextStepInMs: null, quiesced: !isActingRollout(status) && cameToRest };
    }
    if (pending === 0) {
      const failed = await locked.countHosts(['failed']);
      await this.end(
        locked,
        'succeeded',
        failed > 0 ? `${failed} host(s) failed, within maxFailures (${locked.rollout.maxFailures})` : null,
      );
      return { wantsBatch: false, nextStepInMs: null, quiesced: true };
    }
    const waitMs = (locked.rollout.nextBatchAt?.getTime() ?? 0) - now;
    if (waitMs > 0) return { wantsBatch: false, nextStepInMs: waitMs };
    // Without an availability limit there is nothing to count on the hosts first: plan it now.
    if (locked.rollout.maxUnavailable === null) return this.planBatch(locked, strategy, 0);
    return { wantsBatch: true, nextStepInMs: null };
  }

  private async judge(
    locked: LockedRollout,
    host: RolloutHost,
    check: GateCheck,
    strategy: RolloutStrategy,
    now: number,
  ): Promise<number | null> {
    const verdict = judgeGate({
      now,
      gateStartedAt: host.gateStartedAt?.getTime() ?? now,
      healthySince: host.healthySince?.getTime() ?? null,
      minHealthyTimeMs: strategy.healthGate.minHealthyTimeMs,
      timeoutMs: strategy.healthGate.timeoutMs,
      fatal: check.fatal,
      failing: check.failing,
    });
    const lastCheck = {
      at: new Date(now).toISOString(),
      healthy: verdict.outcome !== 'failed' && check.failing.length === 0,
      problems: [...check.fatal, ...check.failing],
      units: check.units,
    };
    if (verdict.outcome === 'failed') {
      await locked.updateHost(host.id, { state: 'failed', reason: verdict.reason, lastCheck, finishedAt: new Date() });
      locked.event('host.failed', { host: host.hostName, batch: host.batch, reason: verdict.reason });
      return null;
    }
    if (verdict.outcome === 'passed') {
      await locked.updateHost(host.id, {
        state: 'succeeded',
        reason: `healthy for ${now - verdict.healthySince} ms`,
        healthySince: new Date(verdict.healthySince),
        lastCheck,
        finishedAt: new Date(),
      });
      locked.event('host.succeeded', { host: host.hostName, batch: host.batch, units: check.units });
      return null;
    }
    const previous = host.lastCheck as { healthy?: boolean; problems?: string[] } | null;
    await locked.updateHost(host.id, {
      healthySince: verdict.healthySince === null ? null : new Date(verdict.healthySince),
      lastCheck,
    });
    // Every change of the verdict is an event; the same verdict polled again is not.
    if (previous?.healthy !== lastCheck.healthy || previous.problems?.join('\n') !== lastCheck.problems.join('\n')) {
      locked.event('gate.check', {
        host: host.hostName,
        healthy: lastCheck.healthy,
        problems: lastCheck.problems,
      });
    }
    const healthyAt =
      verdict.healthySince === null ? null : verdict.healthySince + strategy.healthGate.minHealthyTimeMs;
    return healthyAt === null
      ? GATE_CHECK_INTERVAL_MS
      : Math.max(MIN_RECHECK_MS, Math.min(GATE_CHECK_INTERVAL_MS, healthyAt - now));
  }

  /** A batch whose hosts all ended: record it, and wait for the pause or an approval. */
  private async closeBatch(locked: LockedRollout, strategy: RolloutStrategy, pending: number, now: number) {
    const batch = await locked.lastBatch();
    if (!batch || batch.finishedAt !== null) return;
    await locked.finishBatch(batch.id);
    const hosts = (await locked.hosts()).filter(
      (host) => batch.hosts.includes(host.hostName) && host.batch === batch.index,
    );
    locked.event('batch.finished', {
      index: batch.index,
      run: batch.run,
      succeeded: hosts.filter((host) => host.state === 'succeeded').map((host) => host.hostName),
      failed: hosts.filter((host) => host.state === 'failed').map((host) => host.hostName),
    });
    if (pending === 0 || locked.rollout.status !== 'running') return;
    const canaryDone = batch.index === (await this.firstBatchIndexOfRun(locked, batch.run));
    if (strategy.approveAfterCanary && canaryDone && locked.rollout.approvedAt === null) {
      const reason = `the canary batch (${batch.hosts.join(', ')}) is done: approve to continue`;
      await locked.update({ status: 'awaiting_approval', reason });
      locked.event('rollout.awaiting_approval', { reason });
      return;
    }
    if (strategy.pauseBetweenBatchesMs > 0) {
      const nextBatchAt = new Date(now + strategy.pauseBetweenBatchesMs);
      await locked.update({ nextBatchAt });
      locked.event('rollout.pausing_between_batches', { until: nextBatchAt.toISOString() });
    }
  }

  private async firstBatchIndexOfRun(locked: LockedRollout, run: number): Promise<number> {
    const earlier = await locked.batchesOfRun(run);
    const last = await locked.lastBatch();
    return (last?.index ?? 0) - earlier + 1;
  }

  /** Ends the rollout: nothing new starts, queued tasks are cancelled, in-flight ones finish. */
  private async end(locked: LockedRollout, status: RolloutStatus, reason: string | null): Promise<void> {
    await locked.update({ status, reason, finishedAt: new Date(), nextBatchAt: null, blockedBy: [] });
    if (status !== 'succeeded') {
      await locked.updateHosts(['pending'], { state: 'cancelled', reason: `not started: the rollout was ${status}` });
      const inFlight = await locked.hosts(['acting']);
      await locked.cancelQueuedTasks(
        [...new Set(inFlight.flatMap((host) => (host.operationId ? [host.operationId] : [])))],
        `the rollout was ${status}`,
      );
    }
    locked.event('rollout.finished', { status, reason });
    await locked.audit(
      requesterOf(locked.rollout),
      AUDIT_ACTION.rolloutFinish,
      status,
      { runs: locked.rollout.runs },
      reason ?? undefined,
    );
    this.logger.log({ rolloutId: locked.rollout.id, status, reason }, `rollout ${locked.rollout.id} ${status}`);
  }

  /**
   * Plans and starts the next batch: counts the units down right now across the rollout's hosts
   * (over SSH, outside any transaction), then, holding the lock and only if nothing changed the
   * decision meanwhile, creates the batch's operation and dispatches it.
   */
  private async startBatch(rolloutId: string, strategy: RolloutStrategy): Promise<Advance> {
    const rollout = await this.rollouts.find(rolloutId);
    if (!rollout) return { wantsBatch: false, nextStepInMs: null };
    const downNow = rollout.maxUnavailable === null ? 0 : await this.countDown(rolloutId);
    const started = await this.rollouts.locked(rolloutId, (locked) => this.planBatch(locked, strategy, downNow));
    if (started?.operationId) await this.dispatcher.dispatch(started.operationId);
    if (started?.quiesced) await this.rolloutsService.cameToRest(rolloutId);
    return started ?? { wantsBatch: false, nextStepInMs: null };
  }

  /** The locked part of starting a batch, given how many units are down right now. */
  private async planBatch(locked: LockedRollout, strategy: RolloutStrategy, downNow: number): Promise<Advance> {
    const { rollout: current } = locked;
    if (current.status !== 'running' || (current.nextBatchAt?.getTime() ?? 0) > Date.now()) {
      return { wantsBatch: false, nextStepInMs: ACTING_POLL_MS };
    }
    if ((await locked.countHosts(['acting', 'gating'])) > 0) return { wantsBatch: false, nextStepInMs: ACTING_POLL_MS };
    const pending = await locked.hosts(['pending']);
    const batchOfRun = await locked.batchesOfRun(current.runs);
    const size = nextBatchSize({
      sizes: strategy.batches.sizes ?? [strategy.batches.size ?? 1],
      batchOfRun,
      total: current.total,
      remaining: pending.length,
      maxUnavailable: current.maxUnavailable,
      downNow,
    });
    if (size === 0) {
      const reason =
        `waiting: maxUnavailable allows ${current.maxUnavailable} host(s) down at once and ${downNow} ` +
        `already are; the next batch starts when units come back`;
      if (current.reason !== reason) {
        await locked.update({ reason });
        locked.event('rollout.waiting', { reason, downNow });
      }
      return { wantsBatch: false, nextStepInMs: AVAILABILITY_POLL_MS };
    }
    const hosts = pending.slice(0, size);
    const index = ((await locked.lastBatch())?.index ?? -1) + 1;
    const lost = await this.authority.problem(current, hosts);
    if (lost !== null) {
      // Nothing is in flight (checked above): the rollout comes to rest here.
      await this.end(locked, 'aborted', `stopped before batch ${index}: ${lost}`);
      return { wantsBatch: false, nextStepInMs: null, quiesced: true };
    }
    const operationId = await locked.startBatch(
      hosts,
      { index, run: current.runs, unavailableAtStart: downNow },
      {
        verb: current.verb,
        unit: current.unit,
        selector: current.selector,
        concurrency: hosts.length,
        onConflict: 'wait',
        // Rollouts started before the policy existed act as they did then.
        daemonReload: strategy.daemonReload ?? 'ignore',
        commandTimeoutMs: strategy.taskTimeoutMs ?? this.config.SSH_COMMAND_TIMEOUT_MS,
        trustOnFirstUse: false,
        requestedByTokenId: current.requestedByTokenId,
        requestedBy: current.requestedBy,
        requestId: current.requestId,
      },
      requesterOf(current),
    );
    if (current.reason?.startsWith('waiting:')) await locked.update({ reason: null });
    locked.event('batch.started', {
      index,
      run: current.runs,
      hosts: hosts.map((host) => host.hostName),
      unavailableAtStart: downNow,
      operationId,
    });
    return { wantsBatch: false, nextStepInMs: ACTING_POLL_MS, operationId };
  }

  /** Hosts of the rollout with a unit not active right now (unreachable counts as down). */
  private async countDown(rolloutId: string): Promise<number> {
    const hosts = await this.rollouts.hostsIn(rolloutId, [
      'pending',
      'succeeded',
      'failed',
      'interrupted',
      'cancelled',
    ]);
    const down = await Promise.all(
      hosts.map(async (host) => {
        if (!host.host) return true;
        const target = targetOf(host.host);
        for (const unit of host.units) {
          try {
            if ((await this.show(target, unit)).activeState !== 'active') return true;
          } catch (error) {
            if (!(error instanceof SshError)) this.logger.warn({ err: error, host: host.hostName }, 'census failed');
            return true;
          }
        }
        return false;
      }),
    );
    return down.filter(Boolean).length;
  }
}

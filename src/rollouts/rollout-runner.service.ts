import { Inject, Injectable, Logger } from '@nestjs/common';
import { isActingRollout, type ReadItem, type UnitBaseline, type UnitSnapshot } from '@drover/protocol';
import { AgentReads } from '../agents/agent-reads';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { JobDeferred } from '../infra/queue/job-deferred';
import { JobProducer } from '../infra/queue/job-producer';
import { SshError } from '../infra/ssh/ssh-errors';
import { SshExecutor, SshTarget } from '../infra/ssh/ssh-executor';
import { SshHostAdapter } from '../infra/ssh/ssh-host-adapter';
import { DispatcherService } from '../operations/dispatcher.service';
import { type Diagnostics, readDiagnostics, readUnit } from '@drover/systemd';
import { ProbeCommand, ProbesRepository } from '../probes/probes.repository';
import type { RolloutStrategy } from './dto/rollout.dto';
import { runNetworkProbe } from './probes';
import {
  advance,
  baselinesOf,
  batchRefused,
  batchStarted,
  type Decision,
  type EndedTask,
  type GateReading,
  leaveQueue,
  likelyNextBatch,
  planBatch,
} from './rollout-decisions';
import { judgeGate, unitGateProblem, type UnitReading } from './rollout-rules';
import { BatchTask, LockedRollout, RolloutHostWithHost, RolloutsRepository, SshHost } from './rollouts.repository';
import { RolloutsService } from './rollouts.service';
import { commandProbeNames } from './rollout-authority';
import { RolloutAuthorityService } from './rollout-authority.service';

/** Upper bound of one `systemctl show` of a health check or availability census. */
const CHECK_TIMEOUT_MS = 10_000;

/** What a locked section of a step left to do once it committed. */
interface Outcome {
  decision: Decision;
  /** The operation of a batch started under the lock, to dispatch once it is committed. */
  operationId?: string;
  /** The rollout hosts the batch after that one will most likely take (see likelyNextBatch). */
  likelyNext?: string[];
}

function targetOf(host: SshHost): SshTarget {
  return { hostId: host.id, ...host };
}

/** What a probe command printed and how it exited, as the gate judges it. */
interface ProbeRun {
  exitCode: number | null;
  said: string;
}

/** How the gate and the census read a host, whatever reaches it: units, catalogue probes, a failure's trail. */
interface HostReader {
  unit(unit: string): Promise<UnitSnapshot>;
  probe(entry: ProbeCommand): Promise<ProbeRun>;
  diagnose(unit: string, secondsAgo: number): Promise<Diagnostics>;
}

/** A failed gate's journal starts this long before the gate began: the action that preceded it. */
const GATE_DIAGNOSTICS_LEAD_S = 30;

function lastLine(text: string): string {
  return text.trim().split('\n').slice(-1)[0] ?? '';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function endedTaskOf(task: BatchTask): EndedTask {
  return {
    ...task,
    before: task.before as unknown as EndedTask['before'],
    after: task.after as unknown as UnitSnapshot | null,
  };
}

/**
 * Takes rollouts forward one short step at a time. A step reads the rollout from the database,
 * talks to hosts only outside transactions (health checks, the availability census), and makes
 * every decision holding the rollout's row lock, so any worker can take any step, two steps never
 * decide at once, and a worker killed mid-step leaves nothing half-done: the next step re-reads.
 * The decisions themselves are pure functions (rollout-decisions.ts): this service reads what they
 * need, applies what they return, and does the I/O.
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
    private readonly agentReads: AgentReads,
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
      const left = await this.rollouts.locked(rolloutId, async (locked) => {
        const decision = leaveQueue(await locked.state(), await locked.overlaps());
        await this.apply(locked, decision);
        return decision;
      });
      if (left?.quiesced) await this.rolloutsService.cameToRest(rolloutId);
      if (left?.outcome === 'started') return this.step(rolloutId);
      return this.deferIf(rolloutId, left);
    }
    const strategy = rollout.strategy as unknown as RolloutStrategy;

    const ended = await this.endedHosts(rolloutId);
    const acting = isActingRollout(rollout.status);
    const gating = acting ? await this.rollouts.hostsIn(rolloutId, ['gating']) : [];
    // Hosts whose tasks all succeeded enter their gate in this step: their first check is made
    // now too, so a healthy host goes from acting to done in one locked section.
    const entering = acting
      ? ended.flatMap(({ host, tasks }) =>
          tasks.every((task) => task.state === 'succeeded')
            ? [{ ...host, baseline: baselinesOf(tasks), lastCheck: null }]
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
    let outcome = await this.rollouts.locked(rolloutId, async (locked) =>
      this.proceed(
        locked,
        advance(await locked.state(), { ended: ended.map(({ host, tasks }) => ({ id: host.id, tasks })), checks }),
      ),
    );
    if (outcome) await this.afterCommit(rolloutId, outcome);
    if (outcome?.decision.wantsCensus) {
      // Counts the units down right now across the rollout's hosts (over SSH, outside any
      // transaction), then, holding the lock and only if nothing changed the decision meanwhile,
      // starts the batch.
      const down = await this.downHosts(rolloutId);
      outcome = await this.rollouts.locked(rolloutId, async (locked) =>
        this.proceed(locked, planBatch(await locked.state(), down)),
      );
      if (outcome) await this.afterCommit(rolloutId, outcome);
    }
    return this.deferIf(rolloutId, outcome?.decision ?? null);
  }

  /** Writes a decision; when it proposes a batch, starts it if the rollout's token still may. */
  private async proceed(locked: LockedRollout, decision: Decision): Promise<Outcome> {
    await this.apply(locked, decision);
    const { proposal } = decision;
    if (!proposal) return { decision };
    const hosts = decision.state.hosts.filter((host) => proposal.hostIds.includes(host.id));
    const lost = await this.authority.problem(locked.rollout, hosts);
    if (lost !== null) {
      // Nothing is in flight (a batch is proposed only then): the rollout comes to rest here.
      const refused = batchRefused(decision.state, proposal, lost);
      await this.apply(locked, refused);
      return { decision: refused };
    }
    const { rollout } = locked;
    const operationId = await locked.startBatch(
      hosts,
      { index: proposal.index, run: proposal.run, unavailableAtStart: proposal.unavailableAtStart },
      {
        verb: rollout.verb,
        unit: rollout.unit,
        selector: rollout.selector,
        concurrency: hosts.length,
        onConflict: 'wait',
        // Rollouts started before the policy existed act as they did then.
        daemonReload: decision.state.rollout.strategy.daemonReload ?? 'ignore',
        commandTimeoutMs: decision.state.rollout.strategy.taskTimeoutMs ?? this.config.SSH_COMMAND_TIMEOUT_MS,
        trustOnFirstUse: false,
        requestedByTokenId: rollout.requestedByTokenId,
        requestedBy: rollout.requestedBy,
        requestId: rollout.requestId,
      },
      {
        actorTokenId: rollout.requestedByTokenId,
        actorName: rollout.requestedBy,
        requestId: rollout.requestId,
        sourceAddress: null,
      },
    );
    const started = batchStarted(decision.state, proposal, operationId);
    await this.apply(locked, started);
    return { decision: started, operationId, likelyNext: likelyNextBatch(decision.state, proposal) };
  }

  private async apply(locked: LockedRollout, decision: Decision): Promise<void> {
    await locked.apply(decision);
    if (decision.ended) {
      const { status, reason } = decision.ended;
      this.logger.log({ rolloutId: locked.rollout.id, status, reason }, `rollout ${locked.rollout.id} ${status}`);
    }
  }

  private async afterCommit(rolloutId: string, outcome: Outcome): Promise<void> {
    if (outcome.operationId) await this.dispatcher.dispatch(outcome.operationId);
    if (outcome.likelyNext?.length) void this.connectAhead(rolloutId, outcome.likelyNext);
    if (outcome.decision.quiesced) await this.rolloutsService.cameToRest(rolloutId);
  }

  /**
   * Opens the SSH connections of the next batch's likely hosts while this batch acts, so that a
   * worker new to them does not pay their handshakes batch after batch (a script connecting to the
   * whole fleet first does not). Best effort and never awaited: a host that cannot be reached or
   * shows another key fails its own task later, with its own error.
   */
  private async connectAhead(rolloutId: string, rolloutHostIds: string[]): Promise<void> {
    try {
      const pending = await this.rollouts.hostsIn(rolloutId, ['pending'], rolloutHostIds);
      const ahead = pending.flatMap(({ host }) => (host?.transport === 'ssh' ? [host] : []));
      await Promise.all(
        ahead.map((host) =>
          this.ssh.warm(targetOf(host)).catch((error: unknown) => {
            this.logger.debug({ rolloutId, host: host.name, err: error }, 'could not connect ahead');
          }),
        ),
      );
    } catch (error) {
      this.logger.warn({ rolloutId, err: error }, 'could not look up the next batch to connect ahead');
    }
  }

  /** Asks for the next step when the decision wants one. */
  private deferIf(rolloutId: string, decision: Decision | null): void {
    const inMs = decision?.nextStepInMs;
    if (inMs === null || inMs === undefined) return;
    throw new JobDeferred(Math.max(1, inMs), this.producer.rolloutWakeSignal(rolloutId));
  }

  /** The hosts still acting whose batch tasks have all ended, with those tasks. */
  private async endedHosts(rolloutId: string): Promise<{ host: RolloutHostWithHost; tasks: EndedTask[] }[]> {
    const acting = await this.rollouts.hostsIn(rolloutId, ['acting']);
    const operationIds = [...new Set(acting.flatMap((host) => (host.operationId ? [host.operationId] : [])))];
    if (operationIds.length === 0) return [];
    const tasks = await this.rollouts.tasksOf(operationIds);
    return acting.flatMap((host) => {
      const own = tasks.filter((task) => task.operationId === host.operationId && task.hostName === host.hostName);
      const done = own.length > 0 && own.every((task) => task.state !== 'queued' && task.state !== 'running');
      return done ? [{ host, tasks: own.map(endedTaskOf) }] : [];
    });
  }

  /** One health check of a host: its units against their baseline, then the probes. */
  private async check(
    host: RolloutHostWithHost,
    strategy: RolloutStrategy,
    catalogue: ReadonlyMap<string, ProbeCommand>,
  ): Promise<GateReading> {
    const result: GateReading = { fatal: [], failing: [], units: {} };
    if (!host.host) {
      result.fatal.push(`${host.hostName} was removed from the inventory`);
      return result;
    }
    const baselines = (host.baseline ?? []) as unknown as UnitBaseline[];
    // The gate's first check takes the units as their task read them right after acting (that
    // reading is the baseline, moments old); every later check reads them on the host again.
    const commandProbes = strategy.healthGate.probes.flatMap((probe) => {
      const entry = probe.type === 'command' ? catalogue.get(probe.name) : undefined;
      return entry ? [entry] : [];
    });
    const reader = this.readerFor(
      host.host,
      host.lastCheck === null ? [] : baselines.map((b) => b.unit),
      commandProbes,
    );
    for (const baseline of baselines) {
      try {
        const now: UnitReading = host.lastCheck === null ? baseline : await reader.unit(baseline.unit);
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
          const ran = await reader.probe(entry);
          if (ran.exitCode !== 0) {
            result.failing.push(
              `probe '${probe.name}' exited ${ran.exitCode ?? 'by a signal'}${ran.said ? `: ${ran.said}` : ''}`,
            );
          }
        } catch (error) {
          result.failing.push(`probe '${probe.name}': ${messageOf(error)}`);
        }
      } else {
        const problem = await runNetworkProbe(host.host.address, probe);
        if (problem) result.failing.push(problem);
      }
    }
    if (this.failsTheGate(host, strategy, result)) {
      result.diagnostics = await this.diagnose(reader, host, baselines[0]?.unit ?? null);
    }
    return result;
  }

  /** Whether this reading fails the host's gate, as the decision will judge it (rollout-rules). */
  private failsTheGate(host: RolloutHostWithHost, strategy: RolloutStrategy, reading: GateReading): boolean {
    const now = Date.now();
    return (
      judgeGate({
        now,
        gateStartedAt: host.gateStartedAt?.getTime() ?? now,
        healthySince: host.healthySince?.getTime() ?? null,
        minHealthyTimeMs: strategy.healthGate.minHealthyTimeMs,
        timeoutMs: strategy.healthGate.timeoutMs,
        fatal: reading.fatal,
        failing: reading.failing,
      }).outcome === 'failed'
    );
  }

  /**
   * A host failing its gate: its unit's status and journal from a little before the gate began (the
   * restart that preceded it), for the host.failed event. Best effort: the host may be what failed.
   */
  private async diagnose(reader: HostReader, host: RolloutHostWithHost, unit: string | null): Promise<string | null> {
    if (unit === null) return null;
    const gateAgeMs = Date.now() - (host.gateStartedAt?.getTime() ?? Date.now());
    try {
      return (await reader.diagnose(unit, gateAgeMs / 1000 + GATE_DIAGNOSTICS_LEAD_S)).text;
    } catch (error) {
      this.logger.warn({ err: error, host: host.hostName, unit }, 'could not read the unit after its gate failed');
      return null;
    }
  }

  /**
   * Reads a host over SSH one command at a time, or asks its agent for everything at once (units
   * to read, probes to run) and answers from its reply: the gate is judged here either way.
   */
  private readerFor(host: SshHost, units: string[], probes: ProbeCommand[]): HostReader {
    if (host.transport === 'ssh') {
      const target = targetOf(host);
      return {
        unit: (unit) => this.show(target, unit),
        probe: async (entry) => {
          const ran = await this.ssh.exec(target, entry.argv, { timeoutMs: entry.timeoutMs });
          return { exitCode: ran.exitCode, said: lastLine(ran.stderr) || lastLine(ran.stdout) };
        },
        diagnose: (unit, secondsAgo) =>
          readDiagnostics(new SshHostAdapter(this.ssh, target), unit, { secondsAgo }, CHECK_TIMEOUT_MS),
      };
    }
    const items: ReadItem[] = [
      ...units.map((unit): ReadItem => ({ kind: 'unit', unit })),
      ...probes.map((entry): ReadItem => ({
        kind: 'probe',
        name: entry.name,
        argv: entry.argv,
        timeoutMs: entry.timeoutMs,
      })),
    ];
    const longestMs = Math.max(CHECK_TIMEOUT_MS, ...probes.map((entry) => entry.timeoutMs));
    const answers =
      items.length === 0
        ? Promise.resolve([])
        : this.agentReads.read(host.id, host.name, items, longestMs + CHECK_TIMEOUT_MS);
    // Not awaited here: a host that does not answer fails each read that needed it, not the check.
    answers.catch(() => undefined);
    const answered = async <T>(pick: (results: Awaited<typeof answers>) => T | undefined, what: string): Promise<T> => {
      const results = await answers;
      const found = pick(results);
      if (found !== undefined) return found;
      const index = items.findIndex((item) => (item.kind === 'probe' ? item.name : item.unit) === what);
      const failed = results.find((result) => result.kind === 'error' && result.item === index);
      throw new Error(failed?.kind === 'error' ? failed.message : `the agent of ${host.name} did not report ${what}`);
    };
    return {
      unit: (unit) =>
        answered((results) => {
          const found = results.find((result) => result.kind === 'unit' && result.unit === unit);
          return found?.kind === 'unit' ? found.snapshot : undefined;
        }, unit),
      probe: (entry) =>
        answered((results) => {
          const found = results.find((result) => result.kind === 'probe' && result.name === entry.name);
          return found?.kind === 'probe' ? { exitCode: found.exitCode, said: lastLine(found.output) } : undefined;
        }, entry.name),
      diagnose: async (unit, secondsAgo) => {
        const [read] = await this.agentReads.read(
          host.id,
          host.name,
          [{ kind: 'diagnostics', unit, secondsAgo: Math.min(86_400, Math.ceil(secondsAgo)) }],
          CHECK_TIMEOUT_MS,
        );
        if (read?.kind !== 'diagnostics') throw new Error(`the agent of ${host.name} could not read ${unit}`);
        return { text: read.text, summary: read.summary };
      },
    };
  }

  private async show(target: SshTarget, unit: string): Promise<UnitSnapshot> {
    return readUnit(new SshHostAdapter(this.ssh, target), unit, CHECK_TIMEOUT_MS);
  }

  /**
   * The hosts of the rollout (by rollout host id) with a unit not active right now; unreachable
   * counts as down. Hosts in flight are the batch's own, not counted.
   */
  private async downHosts(rolloutId: string): Promise<Set<string>> {
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
        const reader = this.readerFor(host.host, host.units, []);
        for (const unit of host.units) {
          try {
            if ((await reader.unit(unit)).activeState !== 'active') return true;
          } catch (error) {
            if (!(error instanceof SshError)) this.logger.warn({ err: error, host: host.hostName }, 'census failed');
            return true;
          }
        }
        return false;
      }),
    );
    return new Set(hosts.filter((_, index) => down[index]).map((host) => host.id));
  }
}

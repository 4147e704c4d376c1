import { Inject, Injectable } from '@nestjs/common';
import { UnprocessableError } from '../common/errors/domain-errors';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import type { Host } from '../hosts/hosts.repository';
import { HostsService } from '../hosts/hosts.service';
import { assertMayActOn, BoundsTarget } from '../tokens/token-bounds';
import type { Principal } from '../tokens/tokens.service';
import { compileUnitGlob, matchesUnitGlob } from '../tokens/unit-glob';
import type { RolloutPlan, RolloutStrategy } from './dto/rollout.dto';
import {
  estimatedMinimumDurationMs,
  failureBudget,
  globLiteralBounds,
  isUnitGlob,
  orderHosts,
  planBatches,
  unavailabilityCap,
} from './planner';
import { RolloutsRepository, UnitState } from './rollouts.repository';

/** How many host names a problem spells out before it just counts the rest. */
const HOSTS_NAMED = 5;

interface TargetHost {
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

function nameSome(names: readonly string[]): string {
  const more = names.length > HOSTS_NAMED ? ` and ${names.length - HOSTS_NAMED} more` : '';
  return `${names.slice(0, HOSTS_NAMED).join(', ')}${more}`;
}

/** A host's units summed up: active only when all are; a unit never discovered is `unknown`. */
function unitStateOf(host: TargetHost): string {
  if (host.units.length === 0) return 'unknown';
  return host.units.find((unit) => unit.activeState !== 'active')?.activeState ?? 'active';
}

@Injectable()
export class RolloutsService {
  constructor(
    private readonly hostsService: HostsService,
    private readonly rollouts: RolloutsRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * What a rollout would do now, from the inventory and the last discovered unit states: hosts in
   * order, batches, budgets, and why it could not start if so. Reads only, so it is not audited.
   */
  async plan(strategy: RolloutStrategy, principal: Principal): Promise<RolloutPlan> {
    const selected = await this.hostsService.resolveTargets(strategy.selector);
    if (selected.length === 0) {
      throw new UnprocessableError(
        'selector_matches_nothing',
        'selector',
        `selector '${strategy.selector}' matches no host`,
      );
    }
    const glob = isUnitGlob(strategy.unit);
    const states = await this.rollouts.unitStates(
      selected.map((host) => host.id),
      glob ? globLiteralBounds(strategy.unit) : { name: strategy.unit },
    );
    const pattern = glob ? compileUnitGlob(strategy.unit) : null;
    const matching = pattern ? states.filter((state) => matchesUnitGlob(pattern, state.name)) : states;
    this.assertMayRollOut(principal, selected, glob ? matching.map((state) => state.name) : [strategy.unit]);

    const unitsByHost = new Map<string, UnitState[]>();
    for (const state of matching) {
      const units = unitsByHost.get(state.hostId);
      if (units) units.push(state);
      else unitsByHost.set(state.hostId, [state]);
    }
    const hosts = selected.map((host): TargetHost => ({
      name: host.name,
      labels: host.labels as Record<string, string>,
      units: (unitsByHost.get(host.id) ?? []).sort(byName),
    }));
    // An exact unit is acted on even where it was never discovered; a glob only names what it matched.
    const skipped = glob ? hosts.filter((host) => host.units.length === 0) : [];
    const ordered = orderHosts(glob ? hosts.filter((host) => host.units.length > 0) : hosts, strategy.order);
    const total = ordered.length;
    const alreadyUnavailable = ordered.filter((host) => unitStateOf(host) !== 'active').map((host) => host.name);
    const cap = unavailabilityCap(strategy.maxUnavailable, total, alreadyUnavailable.length);

    const problems: string[] = [];
    if (total === 0) problems.push(`no selected host has a discovered unit matching '${strategy.unit}'`);
    const cannotStart = cap.effectiveBatchCap !== null && cap.effectiveBatchCap < 1;
    if (cannotStart) {
      problems.push(
        `maxUnavailable allows ${cap.allowed} host(s) down at once and ${cap.alreadyDown} already are ` +
          `(${nameSome(alreadyUnavailable)}), so no batch can start until their units are active again`,
      );
    }
    const { batches } = cannotStart
      ? { batches: [] }
      : planBatches(
          ordered.map((host) => host.name),
          { batches: strategy.batches, cap: cap.effectiveBatchCap },
        );
    const estimate = estimatedMinimumDurationMs(
      batches.length,
      strategy.healthGate.minHealthyTimeMs,
      strategy.pauseBetweenBatchesMs,
    );
    if (strategy.deadlineMs !== undefined && estimate > strategy.deadlineMs) {
      problems.push(`the rollout needs at least ${estimate} ms, more than deadlineMs (${strategy.deadlineMs})`);
    }
    const batchOf = new Map(batches.flatMap((batch) => batch.hosts.map((name) => [name, batch.index] as const)));

    return {
      ok: problems.length === 0,
      problems,
      verb: strategy.verb,
      unit: strategy.unit,
      selector: strategy.selector,
      total,
      hosts: ordered.map((host) => ({
        name: host.name,
        batch: batchOf.get(host.name) ?? null,
        units: glob ? host.units.map((unit) => unit.name) : [strategy.unit],
        unitState: unitStateOf(host),
        available: unitStateOf(host) === 'active',
      })),
      skipped: skipped.map((host) => ({
        name: host.name,
        reason: `no discovered unit matches '${strategy.unit}'`,
      })),
      alreadyUnavailable,
      batches,
      failureBudget: failureBudget(total, strategy.maxFailures),
      maxUnavailable: cap,
      healthGate: strategy.healthGate,
      pauseBetweenBatchesMs: strategy.pauseBetweenBatchesMs,
      approveAfterCanary: strategy.approveAfterCanary,
      taskTimeoutMs: strategy.taskTimeoutMs ?? this.config.SSH_COMMAND_TIMEOUT_MS,
      deadlineMs: strategy.deadlineMs ?? null,
      estimatedMinimumDurationMs: estimate,
    };
  }

  /**
   * Token bounds, as for operations: every selected host, and every unit the rollout would act on
   * (for a glob, the units it matched). A glob matching nothing acts on no unit, so only hosts count.
   */
  private assertMayRollOut(principal: Principal, selected: Host[], units: string[]): void {
    const targets = selected.map(boundsTarget);
    const distinct = [...new Set(units)];
    if (distinct.length === 0) assertMayActOn({ hostSelector: principal.hostSelector, unitGlob: null }, targets, null);
    for (const unit of distinct) assertMayActOn(principal, targets, unit);
  }
}

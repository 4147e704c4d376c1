import { Injectable } from '@nestjs/common';
import { HostsRepository } from '../hosts/hosts.repository';
import type { Verb } from '@drover/protocol';
import { ProbesRepository } from '../probes/probes.repository';
import { TokensRepository } from '../tokens/tokens.repository';
import type { RolloutStrategy } from './dto/rollout.dto';
import { reloadFirstAction } from '../tokens/token-bounds';
import { actingTokenProblem, commandProbeNames, probeProblems } from './rollout-authority';
import type { Rollout } from './rollouts.repository';

/** The hosts a rollout is about to act on, as its rows name them. */
export interface HostsToAct {
  hostId: string | null;
  units: string[];
}

/**
 * A rollout acts for whoever started it, for as long as it runs: before every batch, and before a
 * control request lets it go on, the token it was started with must still be allowed to do what
 * comes next, exactly as a new request by that token would be.
 */
@Injectable()
export class RolloutAuthorityService {
  constructor(
    private readonly tokens: TokensRepository,
    private readonly hosts: HostsRepository,
    private readonly probes: ProbesRepository,
  ) {}

  /**
   * Why the rollout may not act on these hosts now, or null: its token (revoked, expired, deleted,
   * scope, bounds against the hosts' labels now), and the catalogue probes its gate names (deleted,
   * or no longer for these units). Hosts gone from the inventory are left to their tasks to report.
   */
  async problem(rollout: Rollout, hosts: readonly HostsToAct[], now = new Date()): Promise<string | null> {
    const token =
      rollout.requestedByTokenId === null ? null : await this.tokens.findOptional(rollout.requestedByTokenId);
    const current = await this.hosts.findByIds(hosts.flatMap((host) => (host.hostId === null ? [] : [host.hostId])));
    const targets = current.map((host) => ({ name: host.name, labels: host.labels as Record<string, string> }));
    const units = [...new Set(hosts.flatMap((host) => host.units))];
    const strategy = rollout.strategy as unknown as RolloutStrategy;
    const reload = reloadFirstAction(strategy.daemonReload ?? 'ignore');
    for (const action of [{ verb: rollout.verb as Verb, units }, ...(reload ? [reload] : [])]) {
      const tokenProblem = actingTokenProblem(token, now, targets, action);
      if (tokenProblem !== null) return tokenProblem;
    }
    const { probes } = strategy.healthGate;
    const problems = probeProblems(probes, await this.probes.findByNames(commandProbeNames(probes)), units);
    return problems.length === 0 ? null : problems.join('; ');
  }
}

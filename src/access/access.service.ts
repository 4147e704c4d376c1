import { Injectable } from '@nestjs/common';
import { AUDIT_ACTION } from '@drover/protocol';
import type { AuditActor } from '../audit/audit-actor';
import { AuditRepository } from '../audit/audit.repository';
import { UnprocessableError } from '../common/errors/domain-errors';
import { HostsService } from '../hosts/hosts.service';
import { ProbesRepository } from '../probes/probes.repository';
import type { PolkitFile, PolkitRequest } from './dto/polkit.dto';
import type { SudoersFile, SudoersRequest } from './dto/sudoers.dto';
import { POLKIT_RULES_PATH, renderPolkitRules } from './polkit';
import { defaultSudoersGroup, renderSudoers, sudoersPath } from './sudoers';

/**
 * Least-privilege access for drover on the hosts (its SSH user, its agent's user): generated rules,
 * never installed by drover.
 */
@Injectable()
export class AccessService {
  constructor(
    private readonly hosts: HostsService,
    private readonly audit: AuditRepository,
    private readonly probes: ProbesRepository,
  ) {}

  async sudoers(request: SudoersRequest, actor: AuditActor): Promise<SudoersFile> {
    const catalogue = await this.probes.findByNames(request.probes);
    const probeCommands = request.probes.map((name, index) => {
      const probe = catalogue.get(name);
      if (!probe)
        throw new UnprocessableError('probe_not_found', `probes[${index}]`, `no probe '${name}' in the catalogue`);
      return { name, argv: probe.argv };
    });
    const content = renderSudoers({ ...request, probeCommands });
    // renderSudoers has refused an input without a usable group, so one exists here.
    const path = sudoersPath(request.group ?? defaultSudoersGroup(request.user)!);
    const hosts = request.selector === undefined ? undefined : await this.targetNames(request.selector);
    // Who was handed which root rules is part of the history, even though drover installs nothing.
    await this.audit.append({
      ...actor,
      action: AUDIT_ACTION.sudoersGenerate,
      result: 'succeeded',
      parameters: { ...request, path, hosts: hosts ?? null },
    });
    return hosts === undefined ? { path, content } : { path, content, hosts };
  }

  async polkit(request: PolkitRequest, actor: AuditActor): Promise<PolkitFile> {
    const content = renderPolkitRules(request);
    const hosts = request.selector === undefined ? undefined : await this.targetNames(request.selector);
    // Who was handed which rules for the agent is part of the history, as for sudoers.
    await this.audit.append({
      ...actor,
      action: AUDIT_ACTION.polkitGenerate,
      result: 'succeeded',
      parameters: { ...request, path: POLKIT_RULES_PATH, hosts: hosts ?? null },
    });
    return hosts === undefined ? { path: POLKIT_RULES_PATH, content } : { path: POLKIT_RULES_PATH, content, hosts };
  }

  private async targetNames(selector: string): Promise<string[]> {
    const targets = await this.hosts.resolveTargets(selector);
    return targets.map((host) => host.name);
  }
}

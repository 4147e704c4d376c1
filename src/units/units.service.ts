import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { decodeCursor, Page, toPage } from '../common/pagination/cursor';
import { AUDIT_ACTION, parseSelector } from '@drover/protocol';
import { DRIFT_SAMPLE_HOSTS, type UnitDriftResponse, type UnitResponse } from './dto/unit.dto';
import { RequestValidationError } from '../common/errors/domain-errors';
import { unifiedDiff } from './unified-diff';
import type { AuditActor } from '../audit/audit-actor';
import { AuditRepository } from '../audit/audit.repository';
import { HostsRepository } from '../hosts/hosts.repository';
import { JobProducer } from '../infra/queue/job-producer';
import { assertMayActOn } from '../tokens/token-bounds';
import type { Principal } from '../common/auth/principal';
import { UnitsRepository, UnitWithHost } from './units.repository';

const unitCursorSchema = z.object({ unit: z.string() });
const hostCursorSchema = z.object({ host: z.string() });

function toUnitResponse(unit: UnitWithHost): UnitResponse {
  return {
    hostName: unit.host.name,
    name: unit.name,
    description: unit.description,
    loadState: unit.loadState,
    activeState: unit.activeState,
    subState: unit.subState,
    unitFileState: unit.unitFileState,
    mainPid: unit.mainPid,
    refreshedAt: unit.refreshedAt.toISOString(),
    fragmentPath: unit.fragmentPath,
    dropInPaths: unit.dropInPaths,
    serviceType: unit.serviceType,
    restart: unit.restart,
    definitionHash: unit.definitionHash,
    needDaemonReload: unit.needDaemonReload,
    nRestarts: unit.nRestarts,
    restartsGrewBy: unit.restartsGrewBy,
  };
}

/** The group a hash (or prefix) names: one group, or a 400 naming the query field. */
function groupNamed(hashes: readonly string[], field: 'from' | 'to', prefix: string): string {
  const matches = hashes.filter((hash) => hash.startsWith(prefix));
  if (matches.length === 1) return matches[0]!;
  throw new RequestValidationError([
    {
      field,
      message:
        matches.length === 0
          ? `no group of these hosts has a definition hash starting with ${prefix}`
          : `${prefix} starts ${matches.length} definition hashes: give more digits`,
    },
  ]);
}

@Injectable()
export class UnitsService {
  constructor(
    private readonly units: UnitsRepository,
    private readonly hosts: HostsRepository,
    private readonly producer: JobProducer,
    private readonly audit: AuditRepository,
  ) {}

  /** Queues a discovery of the host's units (deduplicated: one waiting discovery per host). */
  async requestDiscovery(
    hostName: string,
    actor: AuditActor,
    principal: Principal,
  ): Promise<{ hostName: string; queued: true }> {
    const host = await this.hosts.findByName(hostName);
    assertMayActOn(principal, [{ name: host.name, labels: host.labels as Record<string, string> }], {
      verb: 'discover',
    });
    await this.audit.append({
      ...actor,
      action: AUDIT_ACTION.hostDiscover,
      result: 'queued',
      hostId: host.id,
      hostName: host.name,
      parameters: {},
    });
    await this.producer.discoverHost(host.id);
    return { hostName: host.name, queued: true };
  }

  async listForHost(
    hostName: string,
    query: { limit: number; cursor?: string | undefined },
  ): Promise<Page<UnitResponse>> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, unitCursorSchema).unit;
    const rows = await this.units.listForHost(hostName, after, query.limit + 1);
    return toPage(rows, query.limit, toUnitResponse, (unit) => ({ unit: unit.name }));
  }

  /**
   * How one unit's definition differs across the hosts a selector matches: groups by definition
   * hash, and the diff between two of them (the largest two unless `from`/`to` name others).
   */
  async driftOf(
    unit: string,
    query: { selector?: string | undefined; from?: string | undefined; to?: string | undefined },
  ): Promise<UnitDriftResponse> {
    const selector = parseSelector(query.selector ?? '');
    const drift = await this.units.driftOf(unit, selector, DRIFT_SAMPLE_HOSTS);
    const known = drift.groups.flatMap((group) => group.definitionHash ?? []);
    const from = query.from === undefined ? known[0] : groupNamed(known, 'from', query.from);
    const to = query.to === undefined ? known.find((hash) => hash !== from) : groupNamed(known, 'to', query.to);
    let diff: UnitDriftResponse['diff'] = null;
    let diffUnavailable: string | null = null;
    if (from === undefined || to === undefined) {
      diffUnavailable = `these hosts have ${known.length === 0 ? 'no known definition' : 'one definition'} of ${unit}`;
    } else if (from === to) {
      diffUnavailable = 'from and to name the same group';
    } else {
      const [fromText, toText] = await Promise.all([this.units.definitionText(from), this.units.definitionText(to)]);
      if (fromText === null || toText === null) {
        diffUnavailable = `the text of definition ${fromText === null ? from : to} is not stored yet (the next discovery of one of its hosts reads it)`;
      } else {
        diff = { from, to, text: unifiedDiff(fromText, toText, from, to) };
      }
    }
    return {
      unit,
      selector: query.selector ?? '',
      hosts: drift.groups.reduce((sum, group) => sum + group.hosts, 0),
      groups: drift.groups,
      absent: drift.absent,
      needDaemonReload: drift.needDaemonReload,
      flapping: drift.flapping.map((row) => ({ ...row, refreshedAt: row.refreshedAt.toISOString() })),
      diff,
      diffUnavailable,
    };
  }

  async listByName(query: {
    name: string;
    selector?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<UnitResponse>> {
    const selector = parseSelector(query.selector ?? '');
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, hostCursorSchema).host;
    const rows = await this.units.listByName(query.name, selector, after, query.limit + 1);
    return toPage(rows, query.limit, toUnitResponse, (unit) => ({ host: unit.host.name }));
  }
}

import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { decodeCursor, Page, toPage } from '../common/pagination/cursor';
import { AUDIT_ACTION, parseSelector } from '@drover/protocol';
import type { UnitResponse } from './dto/unit.dto';
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
  };
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

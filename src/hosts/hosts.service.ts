import { Injectable } from '@nestjs/common';
import type { AuditActor } from '../audit/audit-actor';
import { z } from 'zod';
import { UnprocessableError } from '../common/errors/domain-errors';
import { decodeCursor, Page, toPage } from '../common/pagination/cursor';
import { parseSelector } from '@drover/protocol';
import type { BulkUpsertResult, HostInput, HostResponse, HostUpdate } from './dto/host.dto';
import { Host, HostsRepository } from './hosts.repository';

const hostCursorSchema = z.object({ name: z.string() });

export interface ListHostsQuery {
  selector?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

export function toHostResponse(host: Host): HostResponse {
  return {
    id: host.id,
    name: host.name,
    address: host.address,
    port: host.port,
    transport: host.transport,
    sshUser: host.sshUser,
    hostKeyFingerprint: host.hostKeyFingerprint,
    labels: host.labels as Record<string, string>,
    status: host.status,
    lastSeenAt: host.lastSeenAt?.toISOString() ?? null,
    createdAt: host.createdAt.toISOString(),
    updatedAt: host.updatedAt.toISOString(),
  };
}

@Injectable()
export class HostsService {
  constructor(private readonly hosts: HostsRepository) {}

  async create(input: HostInput, actor: AuditActor): Promise<HostResponse> {
    return toHostResponse(await this.hosts.create(input, actor));
  }

  async get(name: string): Promise<HostResponse> {
    return toHostResponse(await this.hosts.findByName(name));
  }

  async update(name: string, changes: HostUpdate, actor: AuditActor): Promise<HostResponse> {
    return toHostResponse(await this.hosts.update(name, changes, actor));
  }

  delete(name: string, actor: AuditActor): Promise<void> {
    return this.hosts.delete(name, actor);
  }

  async list(query: ListHostsQuery): Promise<Page<HostResponse>> {
    const selector = parseSelector(query.selector ?? '');
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, hostCursorSchema).name;
    const rows = await this.hosts.list(selector, after, query.limit + 1);
    return toPage(rows, query.limit, toHostResponse, (host) => ({ name: host.name }));
  }

  /** Every host a selector matches, by name; a selector that matches none is a 422 naming the field. */
  async resolveTargets(selectorText: string): Promise<Host[]> {
    const hosts = await this.hosts.findAllMatching(parseSelector(selectorText));
    if (hosts.length === 0) {
      throw new UnprocessableError(
        'selector_matches_nothing',
        'selector',
        `selector '${selectorText}' matches no host`,
      );
    }
    return hosts;
  }

  async bulkUpsert(hosts: HostInput[], actor: AuditActor): Promise<BulkUpsertResult> {
    const { created, updated } = await this.hosts.bulkUpsert(hosts, actor);
    return { total: hosts.length, created, updated, unchanged: hosts.length - created - updated };
  }
}

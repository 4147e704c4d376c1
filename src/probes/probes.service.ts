import { Injectable } from '@nestjs/common';
import type { AuditActor } from '../audit/audit-actor';
import { decodeCursor, Page, toPage } from '../common/pagination/cursor';
import { z } from 'zod';
import type { ListProbesQuery, ProbeResponse, PutProbeRequest } from './dto/probe.dto';
import { ProbeCommand, ProbesRepository } from './probes.repository';

const probeCursorSchema = z.object({ name: z.string() });

export function toProbeResponse(probe: ProbeCommand): ProbeResponse {
  return {
    name: probe.name,
    description: probe.description,
    argv: probe.argv,
    timeoutMs: probe.timeoutMs,
    unitGlob: probe.unitGlob,
    createdBy: probe.createdBy,
    updatedBy: probe.updatedBy,
    createdAt: probe.createdAt.toISOString(),
    updatedAt: probe.updatedAt.toISOString(),
  };
}

/** The probe catalogue: the commands rollouts may run on hosts as health probes, by name. */
@Injectable()
export class ProbesService {
  constructor(private readonly probes: ProbesRepository) {}

  async put(
    name: string,
    request: PutProbeRequest,
    actor: AuditActor,
  ): Promise<{ probe: ProbeResponse; created: boolean }> {
    const { probe, created } = await this.probes.put(name, request, actor);
    return { probe: toProbeResponse(probe), created };
  }

  async get(name: string): Promise<ProbeResponse> {
    return toProbeResponse(await this.probes.findByName(name));
  }

  async list(query: ListProbesQuery): Promise<Page<ProbeResponse>> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, probeCursorSchema).name;
    const rows = await this.probes.list(after, query.limit + 1);
    return toPage(rows, query.limit, toProbeResponse, (probe) => ({ name: probe.name }));
  }

  delete(name: string, actor: AuditActor): Promise<void> {
    return this.probes.delete(name, actor);
  }
}

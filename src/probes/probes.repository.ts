import { Injectable } from '@nestjs/common';
import { AUDIT_ACTION } from '@drover/protocol';
import { AuditActor, auditActorColumns } from '../audit/audit-actor';
import { ResourceNotFoundError, StateConflictError } from '../common/errors/domain-errors';
import { Prisma, ProbeCommand } from '../generated/prisma/client';
import { isUniqueViolation } from '../infra/prisma/prisma-errors';
import { PrismaService } from '../infra/prisma/prisma.service';

export type { ProbeCommand };

export interface ProbeDefinition {
  argv: string[];
  description: string;
  timeoutMs: number;
  unitGlob: string | null;
}

/** What an audit event keeps of a probe: everything that decides what runs on the hosts. */
function definitionOf(probe: ProbeDefinition): Prisma.InputJsonObject {
  return { argv: probe.argv, description: probe.description, timeoutMs: probe.timeoutMs, unitGlob: probe.unitGlob };
}

@Injectable()
export class ProbesRepository {
  constructor(private readonly prisma: PrismaService) {}

  async findByName(name: string): Promise<ProbeCommand> {
    const probe = await this.prisma.probeCommand.findUnique({ where: { name } });
    if (!probe) throw new ResourceNotFoundError('probe', name);
    return probe;
  }

  /** The probes of these names that exist (missing names are simply absent from the map). */
  async findByNames(names: readonly string[]): Promise<Map<string, ProbeCommand>> {
    if (names.length === 0) return new Map();
    const rows = await this.prisma.probeCommand.findMany({ where: { name: { in: [...new Set(names)] } } });
    return new Map(rows.map((probe) => [probe.name, probe]));
  }

  /** Up to `take` probes ordered by name, strictly after `afterName`. */
  list(afterName: string | undefined, take: number): Promise<ProbeCommand[]> {
    return this.prisma.probeCommand.findMany({
      where: afterName === undefined ? {} : { name: { gt: afterName } },
      orderBy: { name: 'asc' },
      take,
    });
  }

  /**
   * Creates or replaces a probe with its `probe.create` / `probe.update` audit event (the old and
   * the new definition), atomically. The row is locked while it is replaced, so two changes at once
   * are recorded one after the other, each with the definition it replaced.
   */
  async put(
    name: string,
    definition: ProbeDefinition,
    actor: AuditActor,
  ): Promise<{ probe: ProbeCommand; created: boolean }> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        const [existing] = await tx.$queryRaw<ProbeDefinition[]>`
          SELECT description, argv, timeout_ms AS "timeoutMs", unit_glob AS "unitGlob"
          FROM probe_commands WHERE name = ${name} FOR UPDATE`;
        const probe = existing
          ? await tx.probeCommand.update({ where: { name }, data: { ...definition, updatedBy: actor.actorName } })
          : await tx.probeCommand.create({
              data: { name, ...definition, createdBy: actor.actorName, updatedBy: actor.actorName },
            });
        await tx.auditEvent.create({
          data: {
            ...auditActorColumns(actor),
            action: existing ? AUDIT_ACTION.probeUpdate : AUDIT_ACTION.probeCreate,
            result: 'succeeded',
            parameters: { name },
            ...(existing ? { before: definitionOf(existing) } : {}),
            after: definitionOf(probe),
          },
        });
        return { probe, created: !existing };
      });
    } catch (error) {
      // Two first definitions of one name at once: the other committed first.
      if (isUniqueViolation(error)) {
        throw new StateConflictError(
          'probe_changed',
          `probe '${name}' was created concurrently: send the request again`,
        );
      }
      throw error;
    }
  }

  /** Deletes a probe with its `probe.delete` audit event (the definition it had), atomically. */
  async delete(name: string, actor: AuditActor): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      const [deleted] = await tx.$queryRaw<ProbeDefinition[]>`
        DELETE FROM probe_commands WHERE name = ${name}
        RETURNING description, argv, timeout_ms AS "timeoutMs", unit_glob AS "unitGlob"`;
      if (!deleted) throw new ResourceNotFoundError('probe', name);
      await tx.auditEvent.create({
        data: {
          ...auditActorColumns(actor),
          action: AUDIT_ACTION.probeDelete,
          result: 'succeeded',
          parameters: { name },
          before: definitionOf(deleted),
        },
      });
    });
  }
}

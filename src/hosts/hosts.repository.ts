import { Injectable } from '@nestjs/common';
import { ResourceConflictError, ResourceNotFoundError } from '../common/errors/domain-errors';
import { AUDIT_ACTION, type Selector } from '@drover/protocol';
import { Host, Prisma } from '../generated/prisma/client';
import { isRecordNotFound, isUniqueViolation } from '../infra/prisma/prisma-errors';
import { PrismaService } from '../infra/prisma/prisma.service';
import { selectorSql } from '../infra/prisma/selector-sql';
import type { AuditActor } from '../audit/audit-actor';
import type { HostInput, HostUpdate } from './dto/host.dto';

export type { Host };

export interface BulkUpsertCounts {
  created: number;
  updated: number;
}

@Injectable()
export class HostsRepository {
  constructor(private readonly prisma: PrismaService) {}

  async create(host: HostInput, actor: AuditActor): Promise<Host> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        const created = await tx.host.create({ data: host });
        await tx.auditEvent.create({
          data: {
            ...actor,
            action: AUDIT_ACTION.hostCreate,
            result: 'succeeded',
            hostId: created.id,
            hostName: created.name,
            parameters: host,
          },
        });
        return created;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ResourceConflictError('host', 'name', host.name);
      throw error;
    }
  }

  async findByName(name: string): Promise<Host> {
    const host = await this.prisma.host.findUnique({ where: { name } });
    if (!host) throw new ResourceNotFoundError('host', name);
    return host;
  }

  async update(name: string, changes: HostUpdate, actor: AuditActor): Promise<Host> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        const updated = await tx.host.update({ where: { name }, data: changes });
        await tx.auditEvent.create({
          data: {
            ...actor,
            action: AUDIT_ACTION.hostUpdate,
            result: 'succeeded',
            hostId: updated.id,
            hostName: name,
            parameters: changes,
          },
        });
        return updated;
      });
    } catch (error) {
      if (isRecordNotFound(error)) throw new ResourceNotFoundError('host', name);
      throw error;
    }
  }

  async delete(name: string, actor: AuditActor): Promise<void> {
    try {
      await this.prisma.$transaction(async (tx) => {
        const deleted = await tx.host.delete({ where: { name } });
        await tx.auditEvent.create({
          data: {
            ...actor,
            action: AUDIT_ACTION.hostDelete,
            result: 'succeeded',
            hostId: deleted.id,
            hostName: name,
            parameters: {},
          },
        });
      });
    } catch (error) {
      if (isRecordNotFound(error)) throw new ResourceNotFoundError('host', name);
      throw error;
    }
  }

  /** Up to `take` hosts matching the selector, ordered by name, strictly after `afterName`. */
  list(selector: Selector, afterName: string | undefined, take: number): Promise<Host[]> {
    return this.matching(selector, afterName, take);
  }

  /** Every host matching the selector, ordered by name (targets of an operation). */
  findAllMatching(selector: Selector): Promise<Host[]> {
    return this.matching(selector);
  }

  /**
   * Hosts matching the selector by name, in one statement. A selector is SQL on the labels column,
   * which Prisma's query builder cannot express; reading the ids first and then the rows by id
   * cost a second query over the whole page of ids, most of a 1,000-host page's time.
   */
  private matching(selector: Selector, afterName?: string, take?: number): Promise<Host[]> {
    const after = afterName === undefined ? Prisma.sql`TRUE` : Prisma.sql`name > ${afterName}`;
    const limit = take === undefined ? Prisma.empty : Prisma.sql`LIMIT ${take}`;
    return this.prisma.rows<Host>(Prisma.sql`
      SELECT id, name, address, port, transport, ssh_user AS "sshUser",
             host_key_fingerprint AS "hostKeyFingerprint", labels, status,
             last_seen_at AS "lastSeenAt", created_at AS "createdAt", updated_at AS "updatedAt"
      FROM hosts
      WHERE ${selectorSql(selector, Prisma.sql`labels`)} AND ${after}
      ORDER BY name
      ${limit}`);
  }

  async findById(id: string): Promise<Host | null> {
    return this.prisma.host.findUnique({ where: { id } });
  }

  /** The hosts of these ids that still exist. */
  async findByIds(ids: readonly string[]): Promise<Host[]> {
    return this.prisma.host.findMany({ where: { id: { in: [...ids] } } });
  }

  async allIds(): Promise<string[]> {
    const rows = await this.prisma.host.findMany({ where: { transport: 'ssh' }, select: { id: true } });
    return rows.map((row) => row.id);
  }

  /** What the last contact with the host showed. */
  async recordContact(id: string, reachable: boolean): Promise<void> {
    await this.prisma.host.updateMany({
      where: { id },
      data: reachable ? { status: 'reachable', lastSeenAt: new Date() } : { status: 'unreachable' },
    });
  }

  /**
   * Pins a host key learned on first use, only if none is pinned yet, with its audit event in the
   * same transaction. Returns false when another key was pinned meanwhile.
   */
  async pinFirstHostKey(
    id: string,
    fingerprint: string,
    audit: AuditActor & { operationId: string },
  ): Promise<boolean> {
    return this.prisma.$transaction(async (tx) => {
      const pinned = await tx.host.updateManyAndReturn({
        where: { id, hostKeyFingerprint: null },
        data: { hostKeyFingerprint: fingerprint },
        select: { name: true },
      });
      const host = pinned[0];
      if (!host) return false;
      await tx.auditEvent.create({
        data: {
          ...audit,
          action: AUDIT_ACTION.hostTrustFirstKey,
          result: 'succeeded',
          hostId: id,
          hostName: host.name,
          parameters: { hostKeyFingerprint: fingerprint },
        },
      });
      return true;
    });
  }

  /**
   * Creates or replaces hosts by name in one statement (one transaction). Rows already exactly as
   * given are not written at all, so repeating a payload changes nothing, not even updated_at.
   */
  async bulkUpsert(hosts: HostInput[], actor: AuditActor): Promise<BulkUpsertCounts> {
    return this.prisma.$transaction(async (tx) => {
      const written = await tx.$queryRaw<{ name: string; inserted: boolean }[]>`
      WITH input AS (
        SELECT * FROM unnest(
          ${hosts.map((host) => host.name)}::text[],
          ${hosts.map((host) => host.address)}::text[],
          ${hosts.map((host) => host.port)}::int[],
          ${hosts.map((host) => host.transport)}::text[],
          ${hosts.map((host) => host.sshUser)}::text[],
          ${hosts.map((host) => host.hostKeyFingerprint)}::text[],
          ${hosts.map((host) => JSON.stringify(host.labels))}::text[]
        ) AS given(name, address, port, transport, ssh_user, host_key_fingerprint, labels)
      ), written AS (
        INSERT INTO hosts AS existing (id, name, address, port, transport, ssh_user, host_key_fingerprint, labels)
        SELECT gen_random_uuid(), name, address, port, transport::"HostTransport", ssh_user, host_key_fingerprint, labels::jsonb
        FROM input
        ON CONFLICT (name) DO UPDATE SET
          address = EXCLUDED.address,
          port = EXCLUDED.port,
          transport = EXCLUDED.transport,
          ssh_user = EXCLUDED.ssh_user,
          host_key_fingerprint = EXCLUDED.host_key_fingerprint,
          labels = EXCLUDED.labels,
          updated_at = CURRENT_TIMESTAMP
        WHERE (existing.address, existing.port, existing.transport, existing.ssh_user, existing.host_key_fingerprint, existing.labels)
          IS DISTINCT FROM (EXCLUDED.address, EXCLUDED.port, EXCLUDED.transport, EXCLUDED.ssh_user, EXCLUDED.host_key_fingerprint, EXCLUDED.labels)
        RETURNING existing.name, (xmax = 0) AS inserted
      )
      SELECT name, inserted FROM written`;
      const created = written.filter((row) => row.inserted).map((row) => row.name);
      const updated = written.filter((row) => !row.inserted).map((row) => row.name);
      await tx.auditEvent.create({
        data: {
          ...actor,
          action: AUDIT_ACTION.hostBulkUpsert,
          result: 'succeeded',
          parameters: { total: hosts.length, created, updated, unchanged: hosts.length - written.length },
        },
      });
      return { created: created.length, updated: updated.length };
    });
  }
}

import { Injectable } from '@nestjs/common';
import { type Selector } from '@drover/protocol';
import { Prisma } from '../generated/prisma/client';
import { PrismaService } from '../infra/prisma/prisma.service';
import { selectorSql } from '../infra/prisma/selector-sql';
import type { AuditFilter } from './dto/audit.dto';

export interface AuditRow {
  seq: bigint;
  occurred_at: Date;
  actor_token_id: string | null;
  actor_name: string;
  source_address: string | null;
  request_id: string | null;
  action: string;
  result: string;
  host_name: string | null;
  unit: string | null;
  operation_id: string | null;
  task_id: string | null;
  parameters: unknown;
  before: unknown;
  after: unknown;
  reason: string | null;
  prev_hash: string;
  hash: string;
}

export interface ChainCheckRow {
  seq: bigint;
  hash: string;
  prev_hash: string;
  expected_hash: string;
  previous_hash: string | null;
  previous_seq: bigint | null;
}

const COLUMNS = Prisma.sql`seq, occurred_at, actor_token_id::text, actor_name, source_address, request_id, action, result,
  host_name, unit, operation_id::text, task_id::text, parameters, before, after, reason, prev_hash, hash`;

@Injectable()
export class AuditRepository {
  constructor(private readonly prisma: PrismaService) {}

  private where(filter: AuditFilter, selector: Selector | null, beforeSeq: bigint | null): Prisma.Sql {
    const conditions: Prisma.Sql[] = [];
    if (filter.actor !== undefined) conditions.push(Prisma.sql`actor_name = ${filter.actor}`);
    if (filter.host !== undefined) conditions.push(Prisma.sql`host_name = ${filter.host}`);
    if (selector !== null) {
      conditions.push(
        Prisma.sql`host_name IN (SELECT name FROM hosts WHERE ${selectorSql(selector, Prisma.sql`labels`)})`,
      );
    }
    if (filter.unit !== undefined) conditions.push(Prisma.sql`unit = ${filter.unit}`);
    if (filter.action !== undefined) conditions.push(Prisma.sql`action = ${filter.action}`);
    if (filter.result !== undefined) conditions.push(Prisma.sql`result = ${filter.result}`);
    if (filter.operationId !== undefined) conditions.push(Prisma.sql`operation_id = ${filter.operationId}::uuid`);
    // Time bounds become a seq window (occurred_at never goes backwards along seq: the chain
    // trigger sees to it), so every filter keeps walking a (…, seq) index newest first instead of
    // scanning for the window (bench/results/audit-query.md: one day on 1M events 436 → 4 ms p95).
    if (filter.from !== undefined) {
      conditions.push(
        Prisma.sql`seq >= (SELECT seq FROM audit_events WHERE occurred_at >= ${new Date(filter.from)} ORDER BY occurred_at, seq LIMIT 1)`,
      );
    }
    if (filter.to !== undefined) {
      conditions.push(
        Prisma.sql`seq <= (SELECT seq FROM audit_events WHERE occurred_at < ${new Date(filter.to)} ORDER BY occurred_at DESC, seq DESC LIMIT 1)`,
      );
    }
    if (filter.q !== undefined) {
      const pattern = `%${filter.q.replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
      conditions.push(Prisma.sql`parameters::text ILIKE ${pattern}`);
    }
    if (beforeSeq !== null) conditions.push(Prisma.sql`seq < ${beforeSeq}`);
    return conditions.length === 0 ? Prisma.sql`TRUE` : Prisma.join(conditions, ' AND ');
  }

  /** Up to `take` events matching the filter, newest first, older than `beforeSeq`. */
  find(filter: AuditFilter, selector: Selector | null, beforeSeq: bigint | null, take: number): Promise<AuditRow[]> {
    return this.prisma.$queryRaw<AuditRow[]>`
      SELECT ${COLUMNS} FROM audit_events
      WHERE ${this.where(filter, selector, beforeSeq)}
      ORDER BY seq DESC
      LIMIT ${take}`;
  }

  /** Recomputes each event's hash in the range (the database's own canonical form) and its link. */
  checkChain(fromSeq: bigint, toSeq: bigint): Promise<ChainCheckRow[]> {
    return this.prisma.$queryRaw<ChainCheckRow[]>`
      SELECT e.seq, e.hash, e.prev_hash, audit_event_hash(e.prev_hash, e) AS expected_hash,
             previous.hash AS previous_hash, previous.seq AS previous_seq
      FROM audit_events e
      LEFT JOIN audit_events previous ON previous.seq = e.seq - 1
      WHERE e.seq BETWEEN ${fromSeq} AND ${toSeq}
      ORDER BY e.seq`;
  }

  /** Records an event that stands alone (e.g. a refused request), outside any other change. */
  async append(event: Prisma.AuditEventUncheckedCreateInput): Promise<void> {
    await this.prisma.auditEvent.create({ data: event });
  }

  async seqRange(): Promise<{ first: bigint | null; last: bigint | null }> {
    const [row] = await this.prisma.$queryRaw<{ first: bigint | null; last: bigint | null }[]>`
      SELECT min(seq) AS first, max(seq) AS last FROM audit_events`;
    return row ?? { first: null, last: null };
  }
}

import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { decodeCursor, encodeCursor, Page } from '../common/pagination/cursor';
import { parseSelector } from '@drover/protocol';
import type { UnitSnapshot } from '@drover/protocol';
import { MetricsService } from '../infra/metrics/metrics.service';
import { AuditRepository, AuditRow } from './audit.repository';
import type { AuditEventResponse, AuditFilter, AuditVerification } from './dto/audit.dto';

const auditCursorSchema = z.object({ seq: z.string().regex(/^\d+$/) });
const GENESIS_HASH = '0'.repeat(64);
const EXPORT_BATCH = 1_000;
const VERIFY_BATCH = 5_000;

const CSV_COLUMNS = [
  'seq',
  'occurredAt',
  'actorName',
  'actorTokenId',
  'sourceAddress',
  'requestId',
  'action',
  'result',
  'hostName',
  'unit',
  'operationId',
  'taskId',
  'reason',
  'parameters',
  'before',
  'after',
  'prevHash',
  'hash',
] as const satisfies readonly (keyof AuditEventResponse)[];

function toEvent(row: AuditRow): AuditEventResponse {
  return {
    seq: Number(row.seq),
    occurredAt: row.occurred_at.toISOString(),
    actorTokenId: row.actor_token_id,
    actorName: row.actor_name,
    sourceAddress: row.source_address,
    requestId: row.request_id,
    action: row.action,
    result: row.result,
    hostName: row.host_name,
    unit: row.unit,
    operationId: row.operation_id,
    taskId: row.task_id,
    parameters: row.parameters as Record<string, unknown>,
    // Only task outcomes write these, from parseSnapshot.
    before: (row.before ?? null) as UnitSnapshot | null,
    after: (row.after ?? null) as UnitSnapshot | null,
    reason: row.reason,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/** RFC 4180: quote a field when it holds a comma, quote or line break; double inner quotes. */
function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : JSON.stringify(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

@Injectable()
export class AuditService {
  constructor(
    private readonly audit: AuditRepository,
    private readonly metrics: MetricsService,
  ) {}

  async list(filter: AuditFilter & { limit: number; cursor?: string | undefined }): Promise<Page<AuditEventResponse>> {
    const selector = filter.selector === undefined ? null : parseSelector(filter.selector);
    const before = filter.cursor === undefined ? null : BigInt(decodeCursor(filter.cursor, auditCursorSchema).seq);
    const rows = await this.audit.find(filter, selector, before, filter.limit + 1);
    const page = rows.slice(0, filter.limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toEvent),
      nextCursor: rows.length > filter.limit && last ? encodeCursor({ seq: last.seq.toString() }) : null,
    };
  }

  /**
   * Every event matching the filter, newest first, as JSON lines or CSV, produced a batch at a
   * time so memory stays flat however many millions of rows match.
   */
  async *export(filter: AuditFilter, format: 'jsonl' | 'csv'): AsyncGenerator<string> {
    const selector = filter.selector === undefined ? null : parseSelector(filter.selector);
    this.metrics.auditExportsInFlight.inc();
    try {
      if (format === 'csv') yield `${CSV_COLUMNS.join(',')}\r\n`;
      let before: bigint | null = null;
      for (;;) {
        const rows = await this.audit.find(filter, selector, before, EXPORT_BATCH);
        if (rows.length === 0) return;
        const events = rows.map(toEvent);
        yield format === 'csv'
          ? events.map((event) => `${CSV_COLUMNS.map((column) => csvField(event[column])).join(',')}\r\n`).join('')
          : events.map((event) => `${JSON.stringify(event)}\n`).join('');
        before = rows[rows.length - 1]!.seq;
      }
    } finally {
      // Runs when the export ends and when the consumer stops early (client gone).
      this.metrics.auditExportsInFlight.dec();
    }
  }

  /**
   * Recomputes the hash chain over a range and names the first event that does not match: its
   * content was changed (hash differs), or the link to its predecessor was (prevHash differs or
   * the predecessor is missing).
   */
  async verify(fromSeq?: number, toSeq?: number): Promise<AuditVerification> {
    const range = await this.audit.seqRange();
    if (range.first === null || range.last === null) {
      return { ok: true, checked: 0, fromSeq: null, toSeq: null, firstBroken: null, lastHash: null };
    }
    const from = fromSeq === undefined ? range.first : BigInt(fromSeq);
    // Nothing exists beyond the newest event: walking the empty seqs after it would take minutes
    // for a toSeq near 2^53 and then report them all missing.
    const to = toSeq === undefined || BigInt(toSeq) > range.last ? range.last : BigInt(toSeq);
    let checked = 0;
    let expectedSeq = from;
    let lastHash: string | null = null;
    for (let start = from; start <= to; start += BigInt(VERIFY_BATCH)) {
      const end = start + BigInt(VERIFY_BATCH) - 1n < to ? start + BigInt(VERIFY_BATCH) - 1n : to;
      for (const row of await this.audit.checkChain(start, end)) {
        const broken = (reason: string): AuditVerification => ({
          ok: false,
          checked,
          fromSeq: Number(from),
          toSeq: Number(to),
          firstBroken: { seq: Number(row.seq), reason },
          lastHash,
        });
        if (row.seq !== expectedSeq) {
          return {
            ...broken(`event ${expectedSeq} is missing`),
            firstBroken: { seq: Number(expectedSeq), reason: `event ${expectedSeq} is missing` },
          };
        }
        if (row.expected_hash !== row.hash)
          return broken('its content does not match its hash (the event was altered)');
        const previousHash = row.seq === 1n ? GENESIS_HASH : row.previous_hash;
        if (previousHash === null) return broken(`its predecessor ${row.seq - 1n} is missing`);
        if (row.prev_hash !== previousHash)
          return broken('its prevHash does not match the hash of the event before it');
        checked += 1;
        expectedSeq = row.seq + 1n;
        lastHash = row.hash;
      }
    }
    if (expectedSeq <= to) {
      return {
        ok: false,
        checked,
        fromSeq: Number(from),
        toSeq: Number(to),
        firstBroken: { seq: Number(expectedSeq), reason: `event ${expectedSeq} is missing` },
        lastHash,
      };
    }
    return { ok: true, checked, fromSeq: Number(from), toSeq: Number(to), firstBroken: null, lastHash };
  }
}

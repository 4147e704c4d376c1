import { z } from 'zod';
import { InvalidCursorError } from '../errors/domain-errors';

/**
 * Opaque keyset cursors: the sort key of the last item of a page, as base64url JSON. Clients pass
 * them back unchanged; anything else is a 400, never a silently restarted listing.
 */
export function encodeCursor(key: Record<string, string>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor<S extends z.ZodType>(cursor: string, schema: S): z.output<S> {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError();
  }
  const result = schema.safeParse(decoded);
  if (!result.success) throw new InvalidCursorError();
  return result.data;
}

export const pageQueryShape = {
  limit: z.coerce.number().int().min(1).max(1000).default(100).describe('Items per page (1-1000)'),
  cursor: z.string().max(2048).optional().describe('The nextCursor of the previous page'),
};

export function pageSchema<T extends z.ZodType>(item: T) {
  return z.object({
    items: z.array(item),
    nextCursor: z.string().nullable().describe('Pass as cursor to get the next page; null on the last page'),
  });
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Builds a page from up to limit+1 rows: the extra row only says whether another page exists. */
export function toPage<Row, Item>(
  rows: Row[],
  limit: number,
  toItem: (row: Row) => Item,
  cursorKey: (row: Row) => Record<string, string>,
): Page<Item> {
  const pageRows = rows.slice(0, limit);
  const last = pageRows[pageRows.length - 1];
  return {
    items: pageRows.map(toItem),
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(cursorKey(last)) : null,
  };
}

/** The sort key of listings newest first: creation time, then the id to order equal times. */
export interface CreatedKey {
  createdAt: Date;
  id: string;
}

const createdCursorSchema = z.object({ createdAt: z.iso.datetime(), id: z.uuid() });

export function decodeCreatedCursor(cursor: string | undefined): CreatedKey | undefined {
  if (cursor === undefined) return undefined;
  const key = decodeCursor(cursor, createdCursorSchema);
  return { createdAt: new Date(key.createdAt), id: key.id };
}

/** The where-clause of the page after `before` in a listing newest first. */
export function createdBefore(before: CreatedKey | undefined) {
  return before
    ? { OR: [{ createdAt: { lt: before.createdAt } }, { createdAt: before.createdAt, id: { lt: before.id } }] }
    : {};
}

export function createdCursorKey(row: CreatedKey): Record<string, string> {
  return { createdAt: row.createdAt.toISOString(), id: row.id };
}

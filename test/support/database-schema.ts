import type { ExpectedSchema } from './prisma-schema';
import { query } from './database';

const RUNNER_TABLE = '_prisma_migrations';

/** Reads the same facts as ExpectedSchema from PostgreSQL's catalogs. */
export async function actualSchema(url: string): Promise<ExpectedSchema> {
  const enums = await query<{ name: string; values: string[] }>(
    url,
    `SELECT t.typname AS name, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text[] AS values
     FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' GROUP BY t.typname`,
  );
  const columns = await query<{ table: string; column: string; type: string; notnull: boolean; hasdefault: boolean }>(
    url,
    `SELECT c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AS notnull, a.atthasdef AS hasdefault
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND c.relname <> $1`,
    [RUNNER_TABLE],
  );
  const indexes = await query<{
    name: string;
    table: string;
    primary: boolean;
    unique: boolean;
    method: string;
    columns: string[];
    opclasses: string[];
  }>(
    url,
    `SELECT i.relname AS name, t.relname AS table, x.indisprimary AS primary, x.indisunique AS unique, am.amname AS method,
            array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS columns,
            array(SELECT CASE WHEN oc.opcdefault THEN 'default' ELSE oc.opcname END
                  FROM unnest(x.indclass) WITH ORDINALITY k(oid, ord) JOIN pg_opclass oc ON oc.oid = k.oid ORDER BY k.ord)::text[] AS opclasses
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
     JOIN pg_am am ON am.oid = i.relam JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE n.nspname = 'public' AND t.relname <> $1`,
    [RUNNER_TABLE],
  );
  const foreignKeys = await query<{ name: string; definition: string }>(
    url,
    `SELECT conname AS name, pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE contype = 'f'`,
  );

  const actual: ExpectedSchema = {
    enums: new Map(enums.map((row) => [row.name, row.values])),
    columns: new Map(),
    indexes: new Map(),
    foreignKeys: new Map(),
  };
  for (const row of columns) {
    const table = actual.columns.get(row.table) ?? new Map<string, string>();
    table.set(
      row.column,
      `${row.type} ${row.notnull ? 'NOT NULL' : 'NULL'} ${row.hasdefault ? 'DEFAULT' : 'NODEFAULT'}`,
    );
    actual.columns.set(row.table, table);
  }
  for (const row of indexes) {
    const kind = row.primary ? 'primary' : row.unique ? 'unique' : 'normal';
    actual.indexes.set(
      row.name,
      `${kind} ${row.method} on ${row.table}(${row.columns.join(',')}) ops ${row.opclasses.join(',')}`,
    );
  }
  for (const row of foreignKeys) {
    const match = /^FOREIGN KEY \(([^)]+)\) REFERENCES (\S+)\(([^)]+)\)(.*)$/.exec(row.definition);
    if (!match) throw new Error(`unexpected foreign key definition ${row.definition}`);
    const [, from = '', target = '', to = '', rest = ''] = match;
    const onDelete = /ON DELETE (CASCADE|RESTRICT|SET NULL|SET DEFAULT)/.exec(rest)?.[1] ?? 'NO ACTION';
    const onUpdate = /ON UPDATE (CASCADE|RESTRICT|SET NULL|SET DEFAULT)/.exec(rest)?.[1] ?? 'NO ACTION';
    const clean = (text: string) => text.replaceAll('"', '').replaceAll(' ', '');
    actual.foreignKeys.set(
      row.name,
      `(${clean(from)}) -> ${clean(target)}(${clean(to)}) on delete ${onDelete.toLowerCase().replace(' ', '')} on update ${onUpdate.toLowerCase()}`,
    );
  }
  return actual;
}

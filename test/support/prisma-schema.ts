import { readFileSync } from 'node:fs';
import path from 'node:path';
import { getDMMF } from '@prisma/get-dmmf';

/**
 * What PostgreSQL must contain for prisma/schema.prisma, derived from Prisma's own parser (DMMF)
 * with Prisma Migrate's naming and type rules, so a hand-written migration cannot drift silently.
 */
export interface ExpectedSchema {
  enums: Map<string, string[]>;
  /** table → column → "<format_type> NULL|NOT NULL DEFAULT|NODEFAULT" */
  columns: Map<string, Map<string, string>>;
  /** index or constraint name → description */
  indexes: Map<string, string>;
  foreignKeys: Map<string, string>;
}

type Dmmf = Exclude<ReturnType<typeof getDMMF>, { type: string; reason: string }>;
type Model = Dmmf['datamodel']['models'][number];
type Field = Model['fields'][number];

const SCALAR_TYPES: Record<string, string> = {
  String: 'text',
  Int: 'integer',
  BigInt: 'bigint',
  Boolean: 'boolean',
  DateTime: 'timestamp(3) without time zone',
  Json: 'jsonb',
  Float: 'double precision',
  Decimal: 'numeric(65,30)',
  Bytes: 'bytea',
};

function nativeType(name: string, args: string[]): string {
  switch (name) {
    case 'Uuid':
      return 'uuid';
    case 'Text':
      return 'text';
    case 'VarChar':
      return `character varying(${args[0]})`;
    case 'Char':
      return `character(${args[0]})`;
    case 'Timestamptz':
      return `timestamp(${args[0] ?? 6}) with time zone`;
    case 'Timestamp':
      return `timestamp(${args[0] ?? 6}) without time zone`;
    default:
      throw new Error(`add native type ${name} to test/support/prisma-schema.ts`);
  }
}

function columnType(field: Field, enumNames: Set<string>): string {
  const [native, nativeArgs] = (field.nativeType as [string, string[]] | null | undefined) ?? [];
  const base = native
    ? nativeType(native, nativeArgs ?? [])
    : enumNames.has(field.type)
      ? `"${field.type}"`
      : SCALAR_TYPES[field.type];
  if (!base) throw new Error(`no column type for ${field.name}: ${field.type}`);
  return field.isList ? `${base}[]` : base;
}

/** Prisma puts a default in the database for literals and now(); uuid()/cuid() are client-side. */
function hasDatabaseDefault(field: Field): boolean {
  if (!field.hasDefaultValue) return false;
  const value = field.default as { name?: string } | string | number | boolean | undefined;
  if (typeof value === 'object' && value !== null && 'name' in value) {
    return value.name === 'now' || value.name === 'autoincrement' || value.name === 'dbgenerated';
  }
  return true;
}

export function expectedSchema(schemaPath = path.resolve(__dirname, '../../../prisma/schema.prisma')): ExpectedSchema {
  const dmmf = getDMMF({ datamodel: readFileSync(schemaPath, 'utf8') });
  if ('reason' in dmmf) throw new Error(`schema.prisma does not parse: ${dmmf.reason}`);
  const { models, enums, indexes } = dmmf.datamodel;
  const enumNames = new Set(enums.map((entry) => entry.dbName ?? entry.name));
  const modelByName = new Map(models.map((model) => [model.name, model]));
  const tableOf = (model: Model) => model.dbName ?? model.name;
  const columnOf = (model: Model, fieldName: string) => {
    const field = model.fields.find((candidate) => candidate.name === fieldName);
    if (!field) throw new Error(`${model.name}.${fieldName} not found`);
    return field.dbName ?? field.name;
  };

  const expected: ExpectedSchema = {
    enums: new Map(
      enums.map((entry) => [entry.dbName ?? entry.name, entry.values.map((value) => value.dbName ?? value.name)]),
    ),
    columns: new Map(),
    indexes: new Map(),
    foreignKeys: new Map(),
  };

  for (const model of models) {
    const columns = new Map<string, string>();
    for (const field of model.fields) {
      if (field.kind === 'object') {
        if (field.relationFromFields && field.relationFromFields.length > 0) {
          const target = modelByName.get(field.type);
          if (!target) throw new Error(`relation target ${field.type} not found`);
          const from = field.relationFromFields.map((name) => columnOf(model, name));
          const to = (field.relationToFields ?? []).map((name) => columnOf(target, name));
          const onDelete = (field.relationOnDelete ?? (field.isRequired ? 'Restrict' : 'SetNull')).toString();
          expected.foreignKeys.set(
            `${tableOf(model)}_${from.join('_')}_fkey`,
            `(${from.join(',')}) -> ${tableOf(target)}(${to.join(',')}) on delete ${onDelete.toLowerCase()} on update cascade`,
          );
        }
        continue;
      }
      const nullability = field.isRequired && !field.isList ? 'NOT NULL' : 'NULL';
      const defaultFlag = hasDatabaseDefault(field) ? 'DEFAULT' : 'NODEFAULT';
      columns.set(field.dbName ?? field.name, `${columnType(field, enumNames)} ${nullability} ${defaultFlag}`);
    }
    expected.columns.set(tableOf(model), columns);
  }

  for (const index of indexes) {
    const model = modelByName.get(index.model);
    if (!model) throw new Error(`index on unknown model ${index.model}`);
    const table = tableOf(model);
    const columns = index.fields.map((field) => columnOf(model, field.name));
    const opclasses = index.fields.map((field) => (field as { operatorClass?: string }).operatorClass ?? 'default');
    const method = ((index as { algorithm?: string }).algorithm ?? 'BTree').toLowerCase();
    const suffix = index.type === 'id' ? 'pkey' : index.type === 'unique' ? 'key' : 'idx';
    const name = index.dbName ?? (index.type === 'id' ? `${table}_pkey` : `${table}_${columns.join('_')}_${suffix}`);
    expected.indexes.set(
      name,
      `${index.type === 'id' ? 'primary' : index.type} ${method} on ${table}(${columns.join(',')}) ops ${opclasses
        .map((op) => op.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase())
        .join(',')}`,
    );
  }
  return expected;
}

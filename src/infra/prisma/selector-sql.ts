import { type Requirement, type Selector } from '@drover/protocol';
import { Prisma } from '../../generated/prisma/client';

// `@>` and `?` are served by the GIN index on hosts.labels (the default jsonb_ops class, which,
// unlike jsonb_path_ops, indexes keys too); the function jsonb_exists() would not be.
function hasLabel(column: Prisma.Sql, key: string, value: string): Prisma.Sql {
  return Prisma.sql`${column} @> ${JSON.stringify({ [key]: value })}::jsonb`;
}

function anyLabel(column: Prisma.Sql, key: string, values: string[]): Prisma.Sql {
  return Prisma.sql`(${Prisma.join(
    values.map((value) => hasLabel(column, key, value)),
    ' OR ',
  )})`;
}

function requirementSql(column: Prisma.Sql, requirement: Requirement): Prisma.Sql {
  switch (requirement.operator) {
    case 'exists':
      return Prisma.sql`${column} ? ${requirement.key}`;
    case 'notExists':
      return Prisma.sql`NOT (${column} ? ${requirement.key})`;
    case 'equals':
      return hasLabel(column, requirement.key, requirement.value);
    case 'notEquals':
      return Prisma.sql`NOT ${hasLabel(column, requirement.key, requirement.value)}`;
    case 'in':
      return anyLabel(column, requirement.key, requirement.values);
    case 'notIn':
      return Prisma.sql`NOT ${anyLabel(column, requirement.key, requirement.values)}`;
  }
}

/**
 * Translates a parsed selector into a parameterised SQL condition on a jsonb label column.
 * Every key and value is a bound parameter; no selector text is ever spliced into SQL.
 */
export function selectorSql(selector: Selector, column: Prisma.Sql): Prisma.Sql {
  if (selector.length === 0) return Prisma.sql`TRUE`;
  return Prisma.join(
    selector.map((requirement) => requirementSql(column, requirement)),
    ' AND ',
  );
}

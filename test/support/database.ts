import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { testEnv } from './env';

export function databaseUrl(database: string): string {
  const url = new URL(testEnv.postgresServerUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function admin<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: databaseUrl('postgres') });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A private database for one test file: a copy of the migrated template (fast, isolated). */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const name = `${testEnv.databasePrefix}${randomBytes(6).toString('hex')}`;
  const template = options.migrated === false ? 'template0' : testEnv.templateDatabase;
  await admin((client) => client.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`));
  return {
    name,
    url: databaseUrl(name),
    drop: () => admin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}

/** Runs one query on a test database (for assertions on raw rows and catalog tables). */
export async function query<Row extends Record<string, unknown>>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<Row[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<Row>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** How many rows a table holds (a table name of the test's own, never user input). */
export async function countRows(url: string, table: string): Promise<number> {
  return Number((await query<{ n: string }>(url, `SELECT count(*) AS n FROM ${table}`))[0]?.n);
}

/** `count` new hosts inserted by SQL (random names with `prefix`), reached over `transport`: their ids and names. */
export function insertHosts(
  url: string,
  count: number,
  prefix: string,
  transport: 'ssh' | 'agent' = 'ssh',
): Promise<{ id: string; name: string }[]> {
  return query<{ id: string; name: string }>(
    url,
    `INSERT INTO hosts (id, name, address, transport)
     SELECT gen_random_uuid(), $2 || md5(random()::text), '10.0.' || (n / 250) || '.' || (n % 250 + 1), $3::"HostTransport"
     FROM generate_series(1, $1::int) n
     RETURNING id::text, name`,
    [count, prefix, transport],
  );
}

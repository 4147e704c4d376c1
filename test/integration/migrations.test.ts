import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { migrate, MIGRATIONS_DIR, readMigrations } from '../../src/infra/prisma/migrator';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { actualSchema } from '../support/database-schema';
import { expectedSchema } from '../support/prisma-schema';

interface MigrationRow extends Record<string, unknown> {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  applied_steps_count: number;
  logs: string | null;
}

describe('SQL migration runner', () => {
  const databases: TestDatabase[] = [];
  let scratch: string;

  async function emptyDatabase(): Promise<TestDatabase> {
    const database = await createTestDatabase({ migrated: false });
    databases.push(database);
    return database;
  }

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'drover-migrations-'));
  });
  after(async () => {
    await Promise.all(databases.map((database) => database.drop()));
    await rm(scratch, { recursive: true, force: true });
  });

  it("applies every migration once with Prisma Migrate's bookkeeping", async () => {
    const database = await emptyDatabase();
    const files = await readMigrations();
    assert.ok(files.length > 0);
    assert.deepEqual(
      await migrate(database.url),
      files.map((file) => file.name),
    );

    const rows = await query<MigrationRow>(
      database.url,
      'SELECT migration_name, checksum, finished_at, applied_steps_count, logs FROM _prisma_migrations ORDER BY migration_name',
    );
    assert.equal(rows.length, files.length);
    for (const [index, file] of files.entries()) {
      const sql = await readFile(path.join(MIGRATIONS_DIR, file.name, 'migration.sql'));
      assert.equal(rows[index]?.migration_name, file.name);
      assert.equal(rows[index]?.checksum, createHash('sha256').update(sql).digest('hex'));
      assert.ok(rows[index]?.finished_at instanceof Date);
      assert.equal(rows[index]?.applied_steps_count, 1);
    }
    assert.deepEqual(await migrate(database.url), [], 'a second run applies nothing');
  });

  it('lets concurrent runners (several API replicas starting) apply each migration exactly once', async () => {
    const database = await emptyDatabase();
    const results = await Promise.all([migrate(database.url), migrate(database.url), migrate(database.url)]);
    const files = await readMigrations();
    assert.deepEqual(results.flat().sort(), files.map((file) => file.name).sort());
    const rows = await query(database.url, 'SELECT 1 FROM _prisma_migrations');
    assert.equal(rows.length, files.length);
  });

  it('refuses a migration edited after it was applied', async () => {
    const database = await emptyDatabase();
    const directory = path.join(scratch, 'edited');
    await cp(MIGRATIONS_DIR, directory, { recursive: true });
    await migrate(database.url, directory);
    const [first] = await readMigrations(directory);
    await writeFile(path.join(directory, first!.name, 'migration.sql'), `${first!.sql}\n-- edited\n`);
    await assert.rejects(migrate(database.url, directory), /was edited after it was applied/);
  });

  it('records a failed migration, rolls its changes back and refuses to continue past it', async () => {
    const database = await emptyDatabase();
    const directory = path.join(scratch, 'failing');
    await cp(MIGRATIONS_DIR, directory, { recursive: true });
    await mkdir(path.join(directory, '29990101000000_broken'));
    await writeFile(
      path.join(directory, '29990101000000_broken', 'migration.sql'),
      'CREATE TABLE half_done (id int);\nSELECT no_such_function();\n',
    );
    await assert.rejects(migrate(database.url, directory), /29990101000000_broken failed: .*no_such_function/);
    const tables = await query(database.url, `SELECT 1 FROM pg_tables WHERE tablename = 'half_done'`);
    assert.equal(tables.length, 0, 'the failed migration left nothing behind');
    const [row] = await query<MigrationRow>(
      database.url,
      `SELECT migration_name, checksum, finished_at, applied_steps_count, logs FROM _prisma_migrations WHERE migration_name = '29990101000000_broken'`,
    );
    assert.equal(row?.finished_at, null);
    assert.match(row?.logs ?? '', /no_such_function/);
    await assert.rejects(migrate(database.url, directory), /started but did not finish/);
  });

  it('produces exactly the schema that prisma/schema.prisma describes', async () => {
    const database = await emptyDatabase();
    await migrate(database.url);
    const expected = expectedSchema();
    const actual = await actualSchema(database.url);
    assert.deepEqual(actual.enums, expected.enums, 'enums');
    assert.deepEqual(
      [...actual.columns.keys()].sort(),
      [...expected.columns.keys()].sort(),
      'tables (besides _prisma_migrations)',
    );
    for (const [table, columns] of expected.columns) {
      assert.deepEqual(actual.columns.get(table), columns, `columns of ${table}`);
    }
    assert.deepEqual(actual.indexes, expected.indexes, 'indexes, unique constraints and primary keys');
    assert.deepEqual(actual.foreignKeys, expected.foreignKeys, 'foreign keys');
  });
});

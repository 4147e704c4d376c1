/**
 * Audit query benchmark: seeds a scratch PostgreSQL database with a large, hash-chained audit
 * history (through the real chain trigger), then times the audit query API's typical queries,
 * chain verification and export through the product code (AuditService → AuditRepository →
 * PrismaService), and explains each query's plan.
 *
 *   npm run bench:audit                      # build, then run with the defaults below
 *   node dist/bench/audit-query.js --events 100000 --keep --out /tmp/audit-query.md
 *
 * Options: --events N (default 1,000,000), --hosts N (2,000), --batch N (50,000 per INSERT),
 * --runs N (50 timed runs per query), --warmup N (5), --keep (leave the scratch database),
 * --no-candidates (skip trying the proposed indexes), --out FILE (also write the report there).
 * BENCH_POSTGRES_URL overrides the server to use (any database on it; the scratch one is created).
 *
 * Speed targets live here, not in tests: a miss is reported, never an assertion.
 */
import 'reflect-metadata';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';
import { AuditRepository } from '../src/audit/audit.repository';
import { AuditService } from '../src/audit/audit.service';
import { parseConfig } from '../src/config/config.schema';
import { Prisma } from '../src/generated/prisma/client';
import { MetricsService } from '../src/infra/metrics/metrics.service';
import { migrate } from '../src/infra/prisma/migrator';
import { PrismaService } from '../src/infra/prisma/prisma.service';

const SCRATCH_DATABASE = 'drover_bench_audit';
const SERVER_URLS = [
  'postgresql://drover:drover@127.0.0.1:5432/postgres',
  'postgresql://postgres@127.0.0.1:5432/postgres',
];
const TARGET_P95_MS = 20;
const DAY_MS = 86_400_000;
const HISTORY_DAYS = 90;
/** The history ends here (fixed, so every run seeds the same rows). */
const HISTORY_END = Date.parse('2026-11-01T00:00:00.000Z');
const HISTORY_START = HISTORY_END - HISTORY_DAYS * DAY_MS;
/** Consecutive events that make up one operation (an operation.create and its tasks' events). */
const OPERATION_BLOCK = 40;

const ROLES = ['web', 'api', 'db', 'cache', 'worker'] as const;
const ENVS = ['prod', 'staging', 'dev'] as const;
const UNITS = [
  'nginx.service',
  'haproxy.service',
  'postgresql.service',
  'redis-server.service',
  'memcached.service',
  'rabbitmq-server.service',
  'app-api.service',
  'app-worker.service',
  'app-scheduler.service',
  'node-exporter.service',
  'prometheus.service',
  'grafana-server.service',
  'ssh.service',
  'cron.service',
  'rsyslog.service',
  'chrony.service',
  'docker.service',
  'containerd.service',
  'kubelet.service',
  'fluent-bit.service',
] as const;
const AUTOMATION_ACTORS = [
  'ci-deploy',
  'ci-nightly',
  'argo-sync',
  'terraform',
  'ansible-runner',
  'spinnaker',
  'autoscaler',
  'patch-bot',
  'cert-rotator',
  'chaos-monkey',
];
const PEOPLE = [
  'alice',
  'bob',
  'carol',
  'dave',
  'erin',
  'frank',
  'grace',
  'heidi',
  'ivan',
  'judy',
  'karl',
  'laura',
  'mallory',
  'niaj',
  'olivia',
  'peggy',
  'quentin',
  'rupert',
  'sybil',
  'trent',
  'ursula',
  'victor',
  'walter',
  'xavier',
  'yolanda',
  'zoe',
  'amir',
  'bea',
  'chen',
  'dmitri',
  'elif',
  'farah',
  'goran',
  'hana',
  'ines',
  'jonas',
  'kenji',
  'lena',
  'mateo',
  'nadia',
];
const ACTORS = [...AUTOMATION_ACTORS, ...PEOPLE.map((name) => `sre-${name}`)];

// ---------------------------------------------------------------------------------------------
// options and output

interface Options {
  events: number;
  hosts: number;
  batch: number;
  runs: number;
  warmup: number;
  keep: boolean;
  candidates: boolean;
  out: string | null;
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    events: 1_000_000,
    hosts: 2_000,
    batch: 50_000,
    runs: 50,
    warmup: 5,
    keep: false,
    candidates: true,
    out: null,
  };
  const numbers = {
    '--events': 'events',
    '--hosts': 'hosts',
    '--batch': 'batch',
    '--runs': 'runs',
    '--warmup': 'warmup',
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (arg === '--keep') options.keep = true;
    else if (arg === '--no-candidates') options.candidates = false;
    else if (arg === '--out') options.out = argv[++i] ?? fail('--out needs a file');
    else if (arg in numbers) {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value < 1) fail(`${arg} needs a positive whole number`);
      options[numbers[arg as keyof typeof numbers] as 'events'] = value;
    } else fail(`unknown option ${arg}`);
  }
  if (options.hosts % ROLES.length !== 0) fail(`--hosts must be a multiple of ${ROLES.length}`);
  if (options.hosts > 9_999) fail('--hosts must be at most 9999');
  return options;
}

function fail(message: string): never {
  throw new Error(message);
}

/** Progress goes to stderr; the Markdown report goes to stdout (and --out). */
function progress(message: string): void {
  process.stderr.write(`[bench:audit] ${message}\n`);
}

const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));
const int = (value: number): string => Math.round(value).toLocaleString('en-US');
const mib = (bytes: number): string => `${(bytes / 1_048_576).toFixed(1)} MiB`;

// ---------------------------------------------------------------------------------------------
// scratch database

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function connectServer(): Promise<{ client: Client; url: string; notes: string[] }> {
  const candidates = process.env.BENCH_POSTGRES_URL ? [process.env.BENCH_POSTGRES_URL] : SERVER_URLS;
  const notes: string[] = [];
  for (const url of candidates) {
    const client = new Client({ connectionString: url });
    try {
      await client.connect();
      return { client, url, notes };
    } catch (error) {
      notes.push(`${redact(url)}: ${error instanceof Error ? error.message : String(error)}`);
      await client.end().catch(() => undefined);
    }
  }
  throw new Error(`cannot connect to PostgreSQL (${notes.join('; ')})`);
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

async function withClient<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// seeding

/**
 * Deterministic helpers for the seed (hash-based pseudo-random numbers, so every run seeds the
 * same history). They live in the scratch database only while seeding.
 */
const SEED_HELPERS = `
CREATE FUNCTION bench_u(i bigint, k bigint) RETURNS float8 LANGUAGE sql IMMUTABLE AS
  $$ SELECT (hashint8extended(i, k) & 2147483647)::float8 / 2147483648.0 $$;
CREATE FUNCTION bench_pick(i bigint, k bigint, n int) RETURNS int LANGUAGE sql IMMUTABLE AS
  $$ SELECT 1 + floor(bench_u(i, k) * n)::int $$;
CREATE FUNCTION bench_role(h int) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT (ARRAY[${ROLES.map((role) => `'${role}'`).join(',')}])[1 + h % ${ROLES.length}] $$;
CREATE FUNCTION bench_env(h int) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT CASE WHEN bench_u(h, 101) < 0.60 THEN 'prod' WHEN bench_u(h, 101) < 0.85 THEN 'staging' ELSE 'dev' END $$;
CREATE FUNCTION bench_host(h int) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT bench_role(h) || '-' || lpad(h::text, 4, '0') $$;
CREATE FUNCTION bench_unit_state(active text, sub text, pid int, restarts int, invocation text, started timestamptz, memory bigint, result text)
  RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object(
    'ActiveState', active, 'SubState', sub, 'LoadState', 'loaded', 'UnitFileState', 'enabled',
    'MainPID', pid, 'NRestarts', restarts, 'NeedDaemonReload', 'no', 'InvocationID', invocation,
    'ExecMainStartTimestamp', to_char(started AT TIME ZONE 'UTC', 'Dy YYYY-MM-DD HH24:MI:SS "UTC"'),
    'MemoryCurrent', memory, 'Result', result)
$$;
`;
const DROP_SEED_HELPERS = `
DROP FUNCTION bench_unit_state(text, text, int, int, text, timestamptz, bigint, text);
DROP FUNCTION bench_host(int); DROP FUNCTION bench_env(int); DROP FUNCTION bench_role(int);
DROP FUNCTION bench_pick(bigint, bigint, int); DROP FUNCTION bench_u(bigint, bigint);
`;

/** Hosts web-0005, api-0001, db-0002, … with role/env/region labels (selectors run over these). */
const SEED_HOSTS = `
INSERT INTO hosts (id, name, address, port, ssh_user, host_key_fingerprint, labels, status, last_seen_at)
SELECT md5('host-' || h)::uuid, bench_host(h), '10.' || (h / 250) || '.' || (h % 250) || '.10', 22, 'root',
       'SHA256:' || rtrim(encode(sha256(('hostkey-' || h)::bytea), 'base64'), '='),
       jsonb_build_object('role', bench_role(h), 'env', bench_env(h),
                          'region', (ARRAY['eu-west-1', 'us-east-1', 'ap-south-1'])[1 + h % 3],
                          'tier', CASE WHEN h % 5 IN (2, 3) THEN 'data' ELSE 'app' END)
         || CASE WHEN bench_u(h, 102) < 0.05 THEN '{"canary": "true"}'::jsonb ELSE '{}'::jsonb END,
       'reachable', timestamptz '2026-11-01T00:00:00Z'
FROM generate_series(1, $1::int) AS h`;

/**
 * One batch of events [$1, $2], inserted in seq order through the chain trigger. Events come in
 * blocks of ${OPERATION_BLOCK}: 80% of blocks are an operation (operation.create, then one
 * unit.<verb> event per task, all on hosts of one role, by one actor, on one unit); the others are
 * ad-hoc events (single-host actions, host.create, token.create, access.denied).
 */
const SEED_EVENTS = `
INSERT INTO audit_events (occurred_at, actor_token_id, actor_name, source_address, request_id, action, result,
                          host_id, host_name, unit, operation_id, task_id, parameters, before, after, reason)
SELECT e.at, md5('token-' || e.actor)::uuid, e.actor_name, '10.8.' || e.actor || '.' || (10 + e.actor % 7),
       md5('request-' || e.i)::uuid::text, e.action, e.result,
       CASE WHEN e.host THEN md5('host-' || e.h)::uuid END,
       CASE WHEN e.host THEN bench_host(e.h) END,
       CASE WHEN e.action LIKE 'unit.%' OR e.action = 'operation.create' THEN e.unit END,
       CASE WHEN e.in_op THEN md5('operation-' || e.op)::uuid END,
       CASE WHEN e.in_op AND e.action LIKE 'unit.%' THEN md5('task-' || e.i)::uuid END,
       CASE e.action
         WHEN 'operation.create' THEN jsonb_build_object(
           'verb', e.verb, 'unit', e.unit, 'selector', 'role=' || bench_role(e.role) || ',env=' || bench_env(e.role),
           'concurrency', 10, 'batchSize', 5, 'failureBudget', 2, 'hostsMatched', ${OPERATION_BLOCK - 1},
           'comment', 'release 2026.' || (e.op % 12 + 1) || '.' || (e.op % 97) || ' (CHG-' || (10000 + e.op) || ')')
         WHEN 'host.create' THEN jsonb_build_object(
           'address', '10.' || (e.h / 250) || '.' || (e.h % 250) || '.10', 'port', 22, 'sshUser', 'root',
           'labels', jsonb_build_object('role', bench_role(e.h), 'env', bench_env(e.h)))
         WHEN 'token.create' THEN jsonb_build_object(
           'name', 'pipeline-' || (e.i % 997), 'scope', 'operate', 'expiresInDays', 90)
         WHEN 'access.denied' THEN jsonb_build_object(
           'method', 'POST', 'path', '/v1/operations', 'requiredScope', 'operate', 'tokenScope', 'read')
         ELSE jsonb_build_object(
           'verb', e.verb, 'unit', e.unit, 'attempts', CASE WHEN e.r < 0.08 THEN 2 ELSE 1 END, 'timeoutMs', 120000,
           'via', CASE WHEN e.in_op THEN 'operation' ELSE 'host-action' END)
           || CASE WHEN e.in_op THEN jsonb_build_object('position', e.i % ${OPERATION_BLOCK},
                'selector', 'role=' || bench_role(e.role) || ',env=' || bench_env(e.role)) ELSE '{}'::jsonb END
       END,
       CASE WHEN e.action LIKE 'unit.%' AND e.result <> 'unreachable' THEN
         CASE WHEN e.verb = 'start' THEN bench_unit_state('inactive', 'dead', 0, e.restarts, md5('inv-' || (e.i - 1)), e.at - interval '3 days', 0, 'success')
              ELSE bench_unit_state('active', 'running', e.pid, e.restarts, md5('inv-' || (e.i - 1)), e.at - interval '3 days', e.memory, 'success') END
       END,
       CASE WHEN e.action LIKE 'unit.%' AND e.result <> 'unreachable' THEN
         CASE WHEN e.result <> 'succeeded' THEN bench_unit_state('failed', 'failed', 0, e.restarts + 1, md5('inv-' || e.i), e.at, 0, 'exit-code')
              WHEN e.verb = 'stop' THEN bench_unit_state('inactive', 'dead', 0, e.restarts, md5('inv-' || e.i), e.at, 0, 'success')
              WHEN e.verb = 'reload' THEN bench_unit_state('active', 'running', e.pid, e.restarts, md5('inv-' || (e.i - 1)), e.at - interval '3 days', e.memory, 'success')
              ELSE bench_unit_state('active', 'running', e.pid + 17, e.restarts, md5('inv-' || e.i), e.at, e.memory / 2, 'success') END
       END,
       CASE e.result
         WHEN 'failed' THEN 'expected ActiveState=active with a new MainPID, saw ActiveState=failed SubState=failed (exit code 1)'
         WHEN 'unreachable' THEN 'connect ETIMEDOUT 10.' || (e.h / 250) || '.' || (e.h % 250) || '.10:22'
         WHEN 'timed_out' THEN 'systemctl ' || e.verb || ' ' || e.unit || ' did not finish within 120000 ms'
         WHEN 'denied' THEN 'the token ' || e.actor_name || ' lacks the operate scope'
       END
FROM (
  SELECT b.*, ($3::text[])[b.actor] AS actor_name,
         CASE
           WHEN b.action = 'access.denied' THEN 'denied'
           WHEN b.action NOT LIKE 'unit.%' THEN 'succeeded'
           WHEN b.r < 0.030 THEN 'failed'
           WHEN b.r < 0.045 THEN 'unreachable'
           WHEN b.r < 0.050 THEN 'timed_out'
           ELSE 'succeeded'
         END AS result,
         b.action NOT IN ('token.create', 'access.denied', 'operation.create') AS host
  FROM (
    SELECT a.*,
           CASE WHEN a.in_op AND a.i % ${OPERATION_BLOCK} = 0 THEN 'operation.create'
                WHEN a.in_op THEN 'unit.' || a.verb
                WHEN a.ra < 0.60 THEN 'unit.' || a.verb
                WHEN a.ra < 0.80 THEN 'host.create'
                WHEN a.ra < 0.84 THEN 'token.create'
                ELSE 'access.denied' END AS action,
           -- an operation acts on hosts of its selector's role; ad-hoc events on any host (0 is host N)
           COALESCE(NULLIF(
             CASE WHEN a.in_op THEN floor(bench_u(a.i, 3) * ($5::int / ${ROLES.length}))::int * ${ROLES.length} + a.role % ${ROLES.length}
                  ELSE bench_pick(a.i, 3, $5::int) - 1 END, 0), $5::int) AS h
    FROM (
      SELECT g.i, g.i / ${OPERATION_BLOCK} AS op,
             bench_u(g.i / ${OPERATION_BLOCK}, 7) < 0.8 AS in_op,
             bench_u(g.i, 1) AS ra, bench_u(g.i, 2) AS r,
             bench_pick(g.i / ${OPERATION_BLOCK}, 6, $5::int) AS role,
             CASE WHEN bench_u(g.i / ${OPERATION_BLOCK}, 7) < 0.8 THEN bench_pick(g.i / ${OPERATION_BLOCK}, 5, 50)
                  ELSE bench_pick(g.i, 5, 50) END AS actor,
             ($4::text[])[CASE WHEN bench_u(g.i / ${OPERATION_BLOCK}, 7) < 0.8 THEN bench_pick(g.i / ${OPERATION_BLOCK}, 9, 20)
                               ELSE bench_pick(g.i, 9, 20) END] AS unit,
             (ARRAY['restart', 'restart', 'reload', 'start', 'stop'])[
               CASE WHEN bench_u(g.i / ${OPERATION_BLOCK}, 7) < 0.8 THEN bench_pick(g.i / ${OPERATION_BLOCK}, 8, 5)
                    ELSE bench_pick(g.i, 8, 5) END] AS verb,
             bench_pick(g.i, 10, 60000) + 300 AS pid, bench_pick(g.i, 11, 4) - 1 AS restarts,
             bench_pick(g.i, 12, 400000000)::bigint + 8000000 AS memory,
             to_timestamp(($6::float8 + (g.i - 1) * $7::float8 + bench_u(g.i, 4) * $7::float8 * 0.9) / 1000.0) AS at
      FROM generate_series($1::bigint, $2::bigint) AS g(i)
    ) a
  ) b
) e
ORDER BY e.i`;

interface SeedResult {
  seconds: number;
  tableBytes: number;
  totalBytes: number;
  indexes: { name: string; bytes: number; definition: string }[];
}

async function seed(url: string, options: Options): Promise<SeedResult> {
  return withClient(url, async (client) => {
    await client.query(SEED_HELPERS);
    await client.query(SEED_HOSTS, [options.hosts]);
    const step = (HISTORY_END - HISTORY_START) / options.events;
    const started = performance.now();
    for (let first = 1; first <= options.events; first += options.batch) {
      const last = Math.min(first + options.batch - 1, options.events);
      await client.query(SEED_EVENTS, [first, last, ACTORS, UNITS, options.hosts, HISTORY_START, step]);
      const seconds = (performance.now() - started) / 1000;
      progress(`seeded ${int(last)}/${int(options.events)} events (${int(last / seconds)} events/s)`);
    }
    const seconds = (performance.now() - started) / 1000;
    await client.query(DROP_SEED_HELPERS);
    progress('VACUUM (ANALYZE) audit_events, hosts');
    await client.query('VACUUM (ANALYZE) audit_events');
    await client.query('VACUUM (ANALYZE) hosts');
    return { seconds, ...(await sizes(client)) };
  });
}

async function sizes(client: Client): Promise<Omit<SeedResult, 'seconds'>> {
  const { rows } = await client.query<{ table_bytes: string; total_bytes: string }>(
    `SELECT pg_relation_size('audit_events') AS table_bytes, pg_total_relation_size('audit_events') AS total_bytes`,
  );
  const { rows: indexRows } = await client.query<{ name: string; bytes: string; definition: string }>(
    `SELECT indexrelname AS name, pg_relation_size(indexrelid) AS bytes, pg_get_indexdef(indexrelid) AS definition
     FROM pg_stat_user_indexes WHERE relname = 'audit_events' ORDER BY indexrelname`,
  );
  return {
    tableBytes: Number(rows[0]?.table_bytes ?? 0),
    totalBytes: Number(rows[0]?.total_bytes ?? 0),
    indexes: indexRows.map((row) => ({ name: row.name, bytes: Number(row.bytes), definition: row.definition })),
  };
}

// ---------------------------------------------------------------------------------------------
// the queries

type ListArgs = Parameters<AuditService['list']>[0];

interface ListCase {
  kind: 'list';
  name: string;
  /** Held to the p95 target (free-text search is reported, not held). */
  typical: boolean;
  /** One argument set per run (cycled), so runs do not just repeat one cached page. */
  args: ListArgs[];
}

interface VerifyCase {
  kind: 'verify';
  name: string;
  typical: false;
  fromSeq: number;
  toSeq: number;
}

type QueryCase = ListCase | VerifyCase;

interface Timing {
  name: string;
  typical: boolean;
  p50: number;
  p95: number;
  max: number;
  rowsMin: number;
  rowsMax: number;
}

interface Sample {
  actors: string[];
  hosts: { name: string; units: string[] }[];
  operationIds: string[];
  lastSeq: number;
  rareTickets: string[];
}

async function sample(url: string, count: number): Promise<Sample> {
  return withClient(url, async (client) => {
    const hosts = await client.query<{ name: string }>(`SELECT name FROM hosts ORDER BY md5(name) LIMIT $1`, [count]);
    const hostUnits: Sample['hosts'] = [];
    for (const { name } of hosts.rows) {
      const { rows } = await client.query<{ unit: string }>(
        `SELECT DISTINCT unit FROM audit_events WHERE host_name = $1 AND unit IS NOT NULL ORDER BY unit`,
        [name],
      );
      hostUnits.push({ name, units: rows.map((row) => row.unit) });
    }
    const operations = await client.query<{ id: string }>(
      `SELECT operation_id::text AS id FROM audit_events
       WHERE action = 'operation.create' ORDER BY md5(seq::text) LIMIT $1`,
      [count],
    );
    const tickets = await client.query<{ ticket: string }>(
      `SELECT substring(parameters->>'comment' from 'CHG-[0-9]+') AS ticket FROM audit_events
       WHERE action = 'operation.create' ORDER BY md5(seq::text) DESC LIMIT $1`,
      [count],
    );
    const last = await client.query<{ last: string }>(`SELECT max(seq) AS last FROM audit_events`);
    return {
      actors: [...ACTORS].sort((a, b) => (hash(a) < hash(b) ? -1 : 1)),
      hosts: hostUnits,
      operationIds: operations.rows.map((row) => row.id),
      lastSeq: Number(last.rows[0]?.last ?? 0),
      rareTickets: tickets.rows.map((row) => row.ticket),
    };
  });
}

function hash(text: string): number {
  let value = 2166136261;
  for (const char of text) value = Math.imul(value ^ char.charCodeAt(0), 16777619) >>> 0;
  return value;
}

const at = (day: number): string => new Date(HISTORY_START + day * DAY_MS).toISOString();

function cycle<T>(count: number, make: (index: number) => T): T[] {
  return Array.from({ length: count }, (_, index) => make(index));
}

async function buildCases(service: AuditService, s: Sample, count: number): Promise<QueryCase[]> {
  const pick = <T>(values: readonly T[], index: number): T => values[index % values.length]!;
  const limit = 100;
  const secondPages: ListArgs[] = [];
  for (let index = 0; index < count; index += 1) {
    const first = await service.list({ actor: pick(s.actors, index), limit });
    secondPages.push({ actor: pick(s.actors, index), limit, cursor: first.nextCursor ?? undefined });
  }
  const selectors = ROLES.flatMap((role) => ENVS.map((env) => `role=${role},env=${env}`));
  return [
    { kind: 'list', name: 'newest page (no filter)', typical: true, args: [{ limit }] },
    { kind: 'list', name: 'by actor', typical: true, args: cycle(count, (i) => ({ actor: pick(s.actors, i), limit })) },
    { kind: 'list', name: 'by actor, 2nd page (cursor)', typical: true, args: secondPages },
    {
      kind: 'list',
      name: 'by host',
      typical: true,
      args: cycle(count, (i) => ({ host: pick(s.hosts, i).name, limit })),
    },
    {
      kind: 'list',
      name: 'by host + unit (unit history)',
      typical: true,
      args: cycle(count, (i) => {
        const host = pick(s.hosts, i);
        return { host: host.name, unit: pick(host.units, i), limit };
      }),
    },
    {
      kind: 'list',
      name: 'by action',
      typical: true,
      args: cycle(count, (i) => ({
        action: pick(['unit.restart', 'unit.stop', 'host.create', 'token.create', 'access.denied'], i),
        limit,
      })),
    },
    { kind: 'list', name: 'by result=failed', typical: true, args: [{ result: 'failed', limit }] },
    { kind: 'list', name: 'by result=timed_out (rare)', typical: true, args: [{ result: 'timed_out', limit }] },
    {
      kind: 'list',
      name: 'by time range (one day)',
      typical: true,
      args: cycle(count, (i) => {
        const day = (i * 37) % HISTORY_DAYS;
        return { from: at(day), to: at(day + 1), limit };
      }),
    },
    {
      kind: 'list',
      name: 'by actor + time range (one week)',
      typical: true,
      args: cycle(count, (i) => {
        const day = (i * 37) % (HISTORY_DAYS - 7);
        return { actor: pick(s.actors, i), from: at(day), to: at(day + 7), limit };
      }),
    },
    {
      kind: 'list',
      name: 'by selector (role=…,env=…)',
      typical: true,
      args: cycle(count, (i) => ({ selector: pick(selectors, i), limit })),
    },
    {
      kind: 'list',
      name: 'by selector, few hosts (canary,role=…)',
      typical: true,
      args: cycle(count, (i) => ({ selector: `canary,role=${pick(ROLES, i)}`, limit })),
    },
    {
      kind: 'list',
      name: 'by operationId',
      typical: true,
      args: cycle(count, (i) => ({ operationId: pick(s.operationIds, i), limit })),
    },
    {
      kind: 'list',
      name: 'q: unit name (~4% of events)',
      typical: false,
      args: cycle(count, (i) => ({ q: pick(UNITS, i).replace('.service', ''), limit })),
    },
    {
      kind: 'list',
      name: 'q: change ticket (1 event)',
      typical: false,
      args: cycle(count, (i) => ({ q: pick(s.rareTickets, i), limit })),
    },
    {
      kind: 'verify',
      name: 'verify newest 10,000 events',
      typical: false,
      fromSeq: Math.max(1, s.lastSeq - 9_999),
      toSeq: s.lastSeq,
    },
  ];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/** Warm-up runs, then timed runs of `runOne` (which returns the rows it got); wall time in this process. */
async function timeRuns(
  name: string,
  typical: boolean,
  options: Options,
  runOne: (run: number) => Promise<number>,
): Promise<Timing> {
  const times: number[] = [];
  const rows: number[] = [];
  for (let run = 0; run < options.warmup + options.runs; run += 1) {
    const started = performance.now();
    const count = await runOne(run);
    const elapsed = performance.now() - started;
    if (run >= options.warmup) {
      times.push(elapsed);
      rows.push(count);
    }
  }
  times.sort((a, b) => a - b);
  return {
    name,
    typical,
    p50: percentile(times, 0.5),
    p95: percentile(times, 0.95),
    max: times[times.length - 1]!,
    rowsMin: Math.min(...rows),
    rowsMax: Math.max(...rows),
  };
}

function timeCase(service: AuditService, c: QueryCase, options: Options): Promise<Timing> {
  return timeRuns(c.name, c.typical, options, async (run) => {
    if (c.kind === 'list') return (await service.list(c.args[run % c.args.length]!)).items.length;
    const result = await service.verify(c.fromSeq, c.toSeq);
    if (!result.ok) throw new Error(`verify reported a broken chain: ${JSON.stringify(result.firstBroken)}`);
    return result.checked;
  });
}

// ---------------------------------------------------------------------------------------------
// EXPLAIN: the exact SQL the repository builds, captured instead of sent

/** Stands in for PrismaService: records the SQL the repository would send, returns no rows. */
class SqlCapture {
  captured: Prisma.Sql[] = [];

  $queryRaw<T>(strings: TemplateStringsArray, ...values: unknown[]): Promise<T> {
    this.captured.push(Prisma.sql(strings, ...values));
    return Promise.resolve([] as unknown as T);
  }
}

async function capturedSql(c: QueryCase, runIndex: number): Promise<Prisma.Sql> {
  const capture = new SqlCapture();
  const repository = new AuditRepository(capture as unknown as PrismaService);
  if (c.kind === 'list') {
    await new AuditService(repository, new MetricsService()).list(c.args[runIndex % c.args.length]!);
  } else {
    // verify() checks the range in batches of 5,000; explain the first batch.
    await repository.checkChain(BigInt(c.fromSeq), BigInt(Math.min(c.toSeq, c.fromSeq + 4_999)));
  }
  const sql = capture.captured[capture.captured.length - 1];
  if (!sql) throw new Error(`${c.name}: the repository sent no SQL`);
  return sql;
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

interface ExplainJson {
  Plan: PlanNode;
  'Execution Time': number;
}

interface Explained {
  name: string;
  access: string;
  executionMs: number;
  buffers: number;
  text: string;
}

function describePlan(node: PlanNode, parts: string[] = []): string[] {
  const type = node['Node Type'];
  if (node['Index Name']) parts.push(`${type} ${node['Index Name']}`);
  else if (type === 'Seq Scan' && node['Relation Name']) parts.push(`Seq Scan ${node['Relation Name']}`);
  else if (['Sort', 'Incremental Sort', 'Hash Join', 'Nested Loop', 'BitmapAnd', 'Gather Merge'].includes(type))
    parts.push(type);
  for (const child of node.Plans ?? []) describePlan(child, parts);
  return parts;
}

const printable = (values: unknown[]): string =>
  JSON.stringify(values, (_, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));

/** EXPLAIN (ANALYZE, BUFFERS) of one statement: run once to warm, then the reported JSON and text runs. */
async function explainSql(client: Client, name: string, sql: Prisma.Sql): Promise<Explained> {
  const explainJson = () =>
    client.query<{ 'QUERY PLAN': ExplainJson[] }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql.text}`, sql.values);
  await explainJson();
  const json = await explainJson();
  const text = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${sql.text}`, sql.values);
  const plan = json.rows[0]!['QUERY PLAN'][0]!;
  return {
    name,
    access: [...new Set(describePlan(plan.Plan))].join(' → '),
    executionMs: plan['Execution Time'],
    buffers: (plan.Plan['Shared Hit Blocks'] ?? 0) + (plan.Plan['Shared Read Blocks'] ?? 0),
    text: [
      `-- ${name}`,
      sql.text.replace(/\s+/g, ' ').trim(),
      `-- parameters: ${printable(sql.values)}`,
      ...text.rows.map((row) => row['QUERY PLAN']),
    ].join('\n'),
  };
}

async function explain(client: Client, c: QueryCase, runIndex: number): Promise<Explained> {
  return explainSql(client, c.name, await capturedSql(c, runIndex));
}

// ---------------------------------------------------------------------------------------------
// an experiment: time windows as seq windows (a proposed repository change, not the product yet)

/** The repository's column list (AuditRepository does not export it). */
const COLUMNS = Prisma.sql`seq, occurred_at, actor_token_id::text, actor_name, source_address, request_id, action, result,
  host_name, unit, operation_id::text, task_id::text, parameters, before, after, reason, prev_hash, hash`;

/**
 * The page AuditRepository.find() returns for an actor and/or time window, with the window
 * translated into a seq range through the occurred_at index. Exact when occurred_at never
 * decreases along seq (true of this seed; see the report for what makes it true in production).
 */
function seqWindowSql(args: ListArgs): Prisma.Sql {
  const conditions: Prisma.Sql[] = [];
  if (args.actor !== undefined) conditions.push(Prisma.sql`actor_name = ${args.actor}`);
  if (args.from !== undefined) {
    conditions.push(
      Prisma.sql`seq >= (SELECT seq FROM audit_events WHERE occurred_at >= ${new Date(args.from)} ORDER BY occurred_at, seq LIMIT 1)`,
    );
  }
  if (args.to !== undefined) {
    conditions.push(
      Prisma.sql`seq <= (SELECT seq FROM audit_events WHERE occurred_at < ${new Date(args.to)} ORDER BY occurred_at DESC, seq DESC LIMIT 1)`,
    );
  }
  return Prisma.sql`SELECT ${COLUMNS} FROM audit_events WHERE ${Prisma.join(conditions, ' AND ')}
    ORDER BY seq DESC LIMIT ${args.limit + 1}`;
}

interface ShapeResult {
  caseName: string;
  timing: Timing;
  plan: Explained;
  identical: number;
  compared: number;
}

async function timeSeqWindow(
  prisma: PrismaService,
  service: AuditService,
  explainClient: Client,
  c: ListCase,
  options: Options,
): Promise<ShapeResult> {
  let identical = 0;
  for (const args of c.args) {
    const product = (await service.list(args)).items.map((item) => item.seq);
    const rows = await prisma.$queryRaw<{ seq: bigint }[]>(seqWindowSql(args));
    const shaped = rows.slice(0, args.limit).map((row) => Number(row.seq));
    if (shaped.length === product.length && shaped.every((seq, index) => seq === product[index])) identical += 1;
  }
  const timing = await timeRuns(`${c.name}, as a seq window`, true, options, async (run) => {
    const args = c.args[run % c.args.length]!;
    return Math.min(args.limit, (await prisma.$queryRaw<{ seq: bigint }[]>(seqWindowSql(args))).length);
  });
  const plan = await explainSql(explainClient, timing.name, seqWindowSql(c.args[options.warmup % c.args.length]!));
  return { caseName: c.name, timing, plan, identical, compared: c.args.length };
}

// ---------------------------------------------------------------------------------------------
// export

interface ExportResult {
  label: string;
  rows: number;
  bytes: number;
  seconds: number;
  peakRssDelta: number;
  peakHeapDelta: number;
  endRssDelta: number;
}

async function timeExport(
  service: AuditService,
  actor: string | undefined,
  format: 'jsonl' | 'csv',
): Promise<ExportResult> {
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  let peakRss = rssBefore;
  let peakHeap = heapBefore;
  const sampleMemory = (): void => {
    const usage = process.memoryUsage();
    peakRss = Math.max(peakRss, usage.rss);
    peakHeap = Math.max(peakHeap, usage.heapUsed);
  };
  const timer = setInterval(sampleMemory, 5);
  let bytes = 0;
  let lines = 0;
  const started = performance.now();
  try {
    for await (const chunk of service.export(actor === undefined ? {} : { actor }, format)) {
      bytes += Buffer.byteLength(chunk);
      for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) lines += 1;
      sampleMemory();
    }
  } finally {
    clearInterval(timer);
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    label: `${format} export, ${actor === undefined ? 'all events' : `actor=${actor}`}`,
    rows: format === 'csv' ? lines - 1 : lines,
    bytes,
    seconds,
    peakRssDelta: peakRss - rssBefore,
    peakHeapDelta: peakHeap - heapBefore,
    endRssDelta: process.memoryUsage().rss - rssBefore,
  };
}

// ---------------------------------------------------------------------------------------------
// candidate indexes (tried in the scratch database only; proposed for the migration)

interface CandidateIndex {
  name: string;
  /** Run first (e.g. an extension the index needs); a failure skips the candidate. */
  setup?: string;
  sql: string;
  /** How pg_get_indexdef() renders it after "USING ", to notice it is migrated already. */
  definition: string;
  why: string;
}

const CANDIDATE_INDEXES: CandidateIndex[] = [
  {
    name: 'audit_events_result_seq_idx',
    sql: 'CREATE INDEX "audit_events_result_seq_idx" ON "audit_events"("result", "seq")',
    definition: 'btree (result, seq)',
    why: 'result filters walk seq_key backwards and discard every other result; rare results (timed_out) scan ~20k rows per page',
  },
  {
    name: 'audit_events_parameters_trgm_idx',
    setup: 'CREATE EXTENSION IF NOT EXISTS pg_trgm',
    sql: 'CREATE INDEX "audit_events_parameters_trgm_idx" ON "audit_events" USING gin (("parameters"::text) gin_trgm_ops)',
    definition: 'gin (((parameters)::text) gin_trgm_ops)',
    why: 'optional: free-text q (parameters::text ILIKE) is a full scan without it',
  },
];

async function existingIndexDefinitions(client: Client): Promise<string[]> {
  const { rows } = await client.query<{ def: string }>(
    `SELECT regexp_replace(pg_get_indexdef(indexrelid), '^.* USING ', '') AS def
     FROM pg_stat_user_indexes WHERE relname = 'audit_events'`,
  );
  return rows.map((row) => row.def);
}

/** Creates the candidates that are not there yet; returns those created (with the build time). */
async function addCandidates(client: Client): Promise<{ candidate: CandidateIndex; seconds: number; bytes: number }[]> {
  const existing = await existingIndexDefinitions(client);
  const added: { candidate: CandidateIndex; seconds: number; bytes: number }[] = [];
  for (const candidate of CANDIDATE_INDEXES) {
    if (existing.includes(candidate.definition)) {
      progress(`candidate ${candidate.name} exists already (migrated); not added`);
      continue;
    }
    try {
      if (candidate.setup) await client.query(candidate.setup);
    } catch (error) {
      progress(`candidate ${candidate.name} skipped: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    progress(`creating candidate index ${candidate.name}`);
    const started = performance.now();
    await client.query(candidate.sql);
    const seconds = (performance.now() - started) / 1000;
    const { rows } = await client.query<{ bytes: string }>(`SELECT pg_relation_size($1::regclass) AS bytes`, [
      candidate.name,
    ]);
    added.push({ candidate, seconds, bytes: Number(rows[0]?.bytes ?? 0) });
  }
  if (added.length > 0) await client.query('ANALYZE audit_events');
  return added;
}

// ---------------------------------------------------------------------------------------------
// the run

interface Phase {
  title: string;
  timings: Timing[];
  plans: Explained[];
}

async function runPhase(
  title: string,
  service: AuditService,
  explainClient: Client,
  cases: QueryCase[],
  options: Options,
): Promise<Phase> {
  const timings: Timing[] = [];
  const plans: Explained[] = [];
  for (const c of cases) {
    const timing = await timeCase(service, c, options);
    timings.push(timing);
    plans.push(await explain(explainClient, c, options.warmup));
    progress(`${title}: ${c.name}: p50 ${fmt(timing.p50)} ms, p95 ${fmt(timing.p95)} ms, max ${fmt(timing.max)} ms`);
  }
  return { title, timings, plans };
}

const rowsText = (t: Timing): string =>
  t.rowsMin === t.rowsMax ? int(t.rowsMin) : `${int(t.rowsMin)}–${int(t.rowsMax)}`;
const p95Text = (t: Timing): string => `${fmt(t.p95)}${t.typical && t.p95 >= TARGET_P95_MS ? ' ⚠' : ''}`;

function timingTable(phase: Phase): string[] {
  return [
    '| query | p50 ms | p95 ms | max ms | rows | plan (indexes) | DB exec ms | buffers |',
    '|---|--:|--:|--:|--:|---|--:|--:|',
    ...phase.timings.map((t, index) => {
      const plan = phase.plans[index]!;
      return `| ${t.name} | ${fmt(t.p50)} | ${p95Text(t)} | ${fmt(t.max)} | ${rowsText(t)} | ${plan.access} | ${fmt(plan.executionMs)} | ${int(plan.buffers)} |`;
    }),
  ];
}

function comparisonTable(phase: Phase, baseline: Phase): string[] {
  return [
    '| query | p50 ms | p95 ms | max ms | p95 before | rows | plan (indexes) |',
    '|---|--:|--:|--:|--:|--:|---|',
    ...phase.timings.map((t, index) => {
      const before = baseline.timings[index];
      return `| ${t.name} | ${fmt(t.p50)} | ${p95Text(t)} | ${fmt(t.max)} | ${before ? p95Text(before) : ''} | ${rowsText(t)} | ${phase.plans[index]!.access} |`;
    }),
  ];
}

function plansBlock(summary: string, plans: Explained[]): string[] {
  return [
    `<details><summary>${summary}</summary>`,
    '',
    '```',
    ...plans.map((plan) => `${plan.text}\n`),
    '```',
    '',
    '</details>',
    '',
  ];
}

async function machine(client: Client): Promise<string[]> {
  const settings = await client.query<{ name: string; setting: string }>(
    `SELECT name, current_setting(name) AS setting FROM unnest(ARRAY['server_version', 'shared_buffers', 'work_mem',
       'effective_cache_size', 'random_page_cost', 'max_parallel_workers_per_gather', 'jit']) AS name`,
  );
  const cpu = os.cpus();
  return [
    `- CPU: ${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown'} (nproc ${os.availableParallelism()})`,
    `- memory: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB; ${os.type()} ${os.release()}; Node.js ${process.version}`,
    `- PostgreSQL on the same machine: ${settings.rows.map((r) => `${r.name}=${r.setting}`).join(', ')}`,
  ];
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const server = await connectServer();
  const scratchUrl = withDatabase(server.url, SCRATCH_DATABASE);
  const connectedAs = `${redact(server.url)}${server.notes.length ? ` (fallback; first attempt failed: ${server.notes.join('; ')})` : ''}`;
  let prisma: PrismaService | null = null;
  let explainClient: Client | null = null;
  try {
    progress(`connected as ${connectedAs}`);
    await server.client.query(`DROP DATABASE IF EXISTS ${SCRATCH_DATABASE} WITH (FORCE)`);
    await server.client.query(`CREATE DATABASE ${SCRATCH_DATABASE}`);
    const applied = await migrate(scratchUrl);
    progress(`created ${SCRATCH_DATABASE}, applied ${applied.length} migrations (${applied.join(', ')})`);

    progress(`seeding ${int(options.hosts)} hosts and ${int(options.events)} audit events through the chain trigger`);
    const seeded = await seed(scratchUrl, options);
    progress(`seeded in ${seeded.seconds.toFixed(1)} s`);

    prisma = new PrismaService(parseConfig({ DATABASE_URL: scratchUrl, REDIS_URL: 'redis://127.0.0.1:6379' }));
    const service = new AuditService(new AuditRepository(prisma), new MetricsService());
    explainClient = new Client({ connectionString: scratchUrl });
    await explainClient.connect();

    progress('verifying the whole chain once');
    const verifyStarted = performance.now();
    const fullVerify = await service.verify();
    const fullVerifySeconds = (performance.now() - verifyStarted) / 1000;
    if (!fullVerify.ok) throw new Error(`the seeded chain does not verify: ${JSON.stringify(fullVerify.firstBroken)}`);
    const { rows: backwards } = await explainClient.query<{ count: string }>(
      `SELECT count(*) AS count FROM (SELECT occurred_at < lag(occurred_at) OVER (ORDER BY seq) AS back FROM audit_events) x
       WHERE back`,
    );

    const s = await sample(scratchUrl, options.warmup + options.runs);
    const cases = await buildCases(service, s, options.warmup + options.runs);
    const baseline = await runPhase('migrations only', service, explainClient, cases, options);

    progress('time windows as seq windows (experiment)');
    const shapes: ShapeResult[] = [];
    for (const c of cases) {
      if (c.kind === 'list' && c.args.some((args) => args.from !== undefined)) {
        shapes.push(await timeSeqWindow(prisma, service, explainClient, c, options));
      }
    }

    progress('exporting');
    const exportActor = s.actors[0]!;
    await timeExport(service, s.actors[1], 'jsonl'); // warm-up: another actor
    const exports = [
      await timeExport(service, exportActor, 'jsonl'),
      await timeExport(service, exportActor, 'csv'),
      await timeExport(service, undefined, 'jsonl'),
    ];

    let withCandidates: Phase | null = null;
    const added = options.candidates ? await addCandidates(explainClient) : [];
    if (added.length > 0) {
      withCandidates = await runPhase('with candidate indexes', service, explainClient, cases, options);
    }
    const finalSizes = await sizes(explainClient);

    // ---- the report
    const report: string[] = [
      '## Run',
      '',
      `- date: ${new Date().toISOString()}`,
      ...(await machine(explainClient)),
      `- connected as ${connectedAs}; scratch database ${SCRATCH_DATABASE}`,
      `- seeded ${int(options.events)} events (${int(options.hosts)} hosts, ${ACTORS.length} actors, ${UNITS.length} units, ` +
        `${HISTORY_DAYS} days) through the chain trigger in **${seeded.seconds.toFixed(1)} s** ` +
        `(${int(options.events / seeded.seconds)} events/s, ${int(options.batch)} per INSERT … SELECT), then VACUUM (ANALYZE)`,
      `- audit_events: table ${mib(seeded.tableBytes)}, with indexes ${mib(seeded.totalBytes)}; ` +
        `events whose occurred_at is earlier than their predecessor's: ${int(Number(backwards[0]?.count ?? 0))}`,
      `- full chain verification (AuditService.verify(), all ${int(fullVerify.checked)} events): ` +
        `${fullVerifySeconds.toFixed(1)} s (${int(fullVerify.checked / fullVerifySeconds)} events/s), ok`,
      `- each query: ${options.warmup} warm-up runs, then ${options.runs} timed runs of AuditService.list()/verify() ` +
        `(wall time in this process, through Prisma); arguments cycle over ${options.warmup + options.runs} values ` +
        `(actors, hosts, days, …); limit 100; target p95 < ${TARGET_P95_MS} ms (⚠: a typical query that misses it)`,
      '',
      '## Queries (indexes from the migrations)',
      '',
      ...timingTable(baseline),
      '',
      'DB exec ms, buffers: `EXPLAIN (ANALYZE, BUFFERS)` of the exact SQL the repository built for the first timed run ' +
        '(second execution; buffers = shared hit + read).',
      '',
    ];
    if (withCandidates) {
      report.push(
        '## Queries with the candidate indexes',
        '',
        ...added.map(
          ({ candidate, seconds, bytes }) =>
            `- \`${candidate.sql}\` (built in ${seconds.toFixed(1)} s, ${mib(bytes)}): ${candidate.why}`,
        ),
        '',
        ...comparisonTable(withCandidates, baseline),
        '',
      );
    }
    if (shapes.length > 0) {
      report.push(
        '## Experiment: time windows as seq windows',
        '',
        'The same pages with `from`/`to` translated into a seq range through the occurred_at index ' +
          '(SQL in the plans below; through Prisma, not yet the product code; indexes from the migrations only).',
        '',
        '| query | p50 ms | p95 ms | max ms | p95 today | rows | plan (indexes) | same page as the product |',
        '|---|--:|--:|--:|--:|--:|---|--:|',
        ...shapes.map((shape) => {
          const today = baseline.timings.find((t) => t.name === shape.caseName);
          const t = shape.timing;
          return `| ${t.name} | ${fmt(t.p50)} | ${p95Text(t)} | ${fmt(t.max)} | ${today ? p95Text(today) : ''} | ${rowsText(t)} | ${shape.plan.access} | ${shape.identical}/${shape.compared} |`;
        }),
        '',
      );
    }
    report.push(
      '## Export',
      '',
      '| export | rows | bytes | seconds | rows/s | MB/s | peak RSS Δ | RSS Δ at the end | peak heap Δ |',
      '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
      ...exports.map(
        (e) =>
          `| ${e.label} | ${int(e.rows)} | ${int(e.bytes)} | ${e.seconds.toFixed(2)} | ${int(e.rows / e.seconds)} | ` +
          `${(e.bytes / 1e6 / e.seconds).toFixed(1)} | ${mib(e.peakRssDelta)} | ${mib(e.endRssDelta)} | ${mib(e.peakHeapDelta)} |`,
      ),
      '',
      'AuditService.export() consumed as fast as it yields (bytes counted, not written); a warm-up export of another ' +
        'actor ran first. Peak Δ: highest value sampled every 5 ms and after every chunk, minus the value before.',
      '',
      '## Indexes on audit_events at the end of the run',
      '',
      '| index | size | definition |',
      '|---|--:|---|',
      ...finalSizes.indexes.map((index) => `| ${index.name} | ${mib(index.bytes)} | \`${index.definition}\` |`),
      '',
      '## Plans',
      '',
      ...plansBlock('EXPLAIN (ANALYZE, BUFFERS) of every query, indexes from the migrations', baseline.plans),
    );
    if (shapes.length > 0) {
      report.push(
        ...plansBlock(
          'EXPLAIN (ANALYZE, BUFFERS): time windows as seq windows',
          shapes.map((s) => s.plan),
        ),
      );
    }
    if (withCandidates) {
      report.push(...plansBlock('EXPLAIN (ANALYZE, BUFFERS) with the candidate indexes', withCandidates.plans));
    }
    const markdown = report.join('\n');
    process.stdout.write(markdown);
    if (options.out) {
      await mkdir(path.dirname(options.out), { recursive: true });
      await writeFile(options.out, markdown);
      progress(`report written to ${options.out}`);
    }
  } finally {
    await prisma?.$disconnect();
    await explainClient?.end();
    if (options.keep) progress(`kept ${redact(scratchUrl)}`);
    else {
      await server.client.query(`DROP DATABASE IF EXISTS ${SCRATCH_DATABASE} WITH (FORCE)`);
      progress(`dropped ${SCRATCH_DATABASE}`);
    }
    await server.client.end();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `[bench:audit] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});

#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { allPages, ApiError, createDroverClient, DroverClient, Schemas, unwrap } from '../client';
import { FINISHED_OPERATION_STATUSES, VERBS } from '@drover/protocol';
import { daemonReloadOf, RolloutUsageError, rolloutCommand } from './rollout';
import { renderDrift } from './drift';
import { renderTable } from './table';
import { policiesCommand, PoliciesUsageError } from './policies';
import { webhooksCommand, WebhooksUsageError } from './webhooks';
import { agentsCommand, AgentsUsageError } from './agents';

const USAGE = `drover — fleet controller for systemd services

usage: drover <command> [options]

  hosts list [-l SELECTOR] [--json]        list hosts (all pages), e.g. -l 'role=web,env in (prod)'
  hosts get NAME [--json]                  show one host
  hosts import FILE                        create/update the hosts of an inventory file ({"hosts": [...]})
  units list UNIT [-l SELECTOR] [--json]   one unit across the fleet, e.g. units list nginx.service
  units host HOST [--json]                 units discovered on one host
  units discover HOST                      queue a fresh listing of the host's units
  units drift UNIT [-l SELECTOR] [--from HASH] [--to HASH] [--json]
                                           hosts grouped by the unit's definition (files, Type=, Restart=),
                                           the diff of two groups (the largest two by default),
                                           hosts needing daemon-reload, flapping hosts

  VERB UNIT (-l SELECTOR | --host NAME) [--concurrency N] [--on-conflict wait|reject]
           [--timeout-ms N] [--trust-on-first-use] [--daemon-reload refuse|auto|ignore] [--no-wait] [--json]
                                           act on a unit and wait for every host's result, e.g.
                                           drover restart nginx.service -l role=web --concurrency 2
      VERB: status start stop restart try-restart reload reload-or-restart
            enable disable mask unmask daemon-reload (UNIT optional)
  audit list [FILTERS] [--json]            audit events, newest first; FILTERS: --actor NAME --host NAME
                                           -l SELECTOR --unit UNIT --action ACTION --result RESULT
                                           --since ISO --until ISO --grep TEXT
  audit verify [--from-seq N] [--to-seq N] recompute the hash chain; exit 2 names the first broken event
  audit export [FILTERS] [--format jsonl|csv]  stream every matching event to stdout
  rollout VERB UNIT -l SELECTOR [--batch 1,25%] [--max-failures N|P%] [--max-unavailable N|P%]
          [--min-healthy 10s] [--health-timeout 60s] [--probe http:80/healthz|tcp:PORT|cmd:NAME]
          [--pause 30s] [--approve-after-canary] [--order name|shuffle:SEED|label:KEY=V1,V2]
          [--task-timeout 30s] [--deadline 1h] [--idempotency-key KEY] [--dry-run] [--wait] [--json]
          [--daemon-reload refuse|auto|ignore]  when a unit changed on disk (NeedDaemonReload=yes)
          [--on-overlap queue|reject|supersede]  when an unfinished rollout acts on the same hosts and
                                           units: wait behind it (default), refuse, or cancel it first
                                           a rolling VERB of UNIT, batch after batch (canary first),
                                           each host health-gated, e.g. drover rollout restart nginx
                                           -l role=web --batch 1,25% --max-failures 1 --wait
  probes list|get NAME [--json]            the probe catalogue: commands rollouts may run as health probes
  probes set NAME [--timeout-ms N] [--unit-glob GLOB] [--description TEXT] -- /PROGRAM [ARG...]
                                           create or replace a probe (unbounded admin token)
  probes delete NAME                       remove a probe (rollouts naming it stop before their next batch)
  rollout status|watch ID [--json]         show a rollout; watch follows it live until it ends
  rollout pause|resume|approve|cancel|retry ID [--reason TEXT] [--wait]
                                           retry --on-overlap queue: run after a newer overlapping rollout
  rollout list [--json]                    recent rollouts, newest first
  ops list [--json]                        recent operations, newest first
  ops get ID [--json]                      one operation with every task
  policies list|show NAME [--json]         desired-state policies
  policies create NAME UNIT -l SELECTOR [--enablement enabled|disabled|masked] [--activity active|inactive]
          [--description TEXT]             declare what UNIT must be on the hosts SELECTOR matches, e.g.
                                           drover policies create web-nginx nginx -l role=web
                                           --enablement enabled --activity active
  policies update NAME [--rename NEW] [-l SELECTOR] [--unit UNIT] [--enablement E|any] [--activity A|any]
          [--description TEXT]             change a policy (any: leave that aspect alone)
  policies delete NAME                     remove a policy
  policies drift NAME [--json]             hosts out of line with the policy, with why (as last discovered)
  policies reconcile NAME [ROLLOUT OPTIONS] [--apply] [--wait] [--json]
                                           the next step that brings hosts in line (one verb: unmask,
                                           enable, disable, mask, start or stop) as a rollout plan;
                                           --apply starts it (ROLLOUT OPTIONS as for rollout: --batch,
                                           --max-failures, --min-healthy, --probe, ...); repeat per step
  webhooks list [--json]                   webhook subscriptions with their delivery counts
  webhooks create NAME URL --events PATTERNS [--description TEXT]
                                           POST signed rollout/operation events to URL, e.g.
                                           --events 'rollout.*,operation.failed' (prints the secret once)
  webhooks deliveries NAME|ID [--status pending|delivered|failed] [--json]
                                           the delivery log, newest first: attempts, HTTP status, latency, error
  webhooks redeliver NAME|ID DELIVERY_ID   send a delivered or failed event again (same event id)
  webhooks delete NAME|ID                  remove a subscription and its delivery log
  agent install-command [-l KEY=VALUE,...] [--host NAME] [--expires-in MINUTES] [--user NAME]
                                           create a one-time join token (30 min) and print the line to
                                           run as root on a host with Node: it installs and enrols the agent
                                           (--user: run it as that system user, under a polkit rule from
                                           POST /v1/access/polkit, instead of root)
  agent join-token [same options]          only the join token (for your own installer)
  agent list [--json]                      enrolled agents: online/offline, facts, protocol version
  agent revoke HOST|ID                     the agent is refused from its next request on

environment:
  DROVER_URL     API base URL (default http://127.0.0.1:8080)
  DROVER_TOKEN   API token (drv_...)

exit codes: 0 ok, 1 API or runtime error, 2 the operation finished with failed tasks (or the audit
            chain is broken), 64 usage error; rollouts with --wait (and rollout watch): 0 succeeded,
            3 aborted (failure budget or deadline), 4 cancelled, 5 did not start (refused: invalid,
            not allowed, or cannot start now, e.g. maxUnavailable already used up)`;

class UsageError extends Error {}

const IMPORT_BATCH = 10_000;

function printHosts(hosts: Schemas['Host'][]): void {
  const labels = (host: Schemas['Host']) =>
    Object.entries(host.labels)
      .map(([key, value]) => `${key}=${value}`)
      .join(',');
  process.stdout.write(
    renderTable(
      ['NAME', 'ADDRESS', 'PORT', 'USER', 'STATUS', 'HOST KEY', 'LABELS'],
      hosts.map((host) => [
        host.name,
        host.address,
        String(host.port),
        host.sshUser,
        host.status,
        host.hostKeyFingerprint ? `${host.hostKeyFingerprint.slice(0, 18)}…` : '(not pinned)',
        labels(host),
      ]),
    ),
  );
  process.stdout.write(`${hosts.length} host(s)\n`);
}

function printUnits(units: Schemas['UnitPage']['items']): void {
  process.stdout.write(
    renderTable(
      ['HOST', 'UNIT', 'LOAD', 'ACTIVE', 'SUB', 'FILE STATE', 'PID'],
      units.map((unit) => [
        unit.hostName,
        unit.name,
        unit.loadState,
        unit.activeState,
        unit.subState,
        unit.unitFileState ?? '-',
        unit.mainPid === null ? '-' : String(unit.mainPid),
      ]),
    ),
  );
  process.stdout.write(`${units.length} unit(s)\n`);
}

async function hostsCommand(api: DroverClient, args: string[], json: boolean, selector?: string): Promise<void> {
  const [action, target] = args;
  if (action === 'list') {
    const hosts = await allPages(async (cursor) =>
      unwrap(await api.GET('/v1/hosts', { params: { query: { selector, cursor, limit: 1000 } } })),
    );
    if (json) process.stdout.write(`${JSON.stringify(hosts, null, 2)}\n`);
    else printHosts(hosts);
  } else if (action === 'get' && target) {
    const host = unwrap(await api.GET('/v1/hosts/{name}', { params: { path: { name: target } } }));
    if (json) process.stdout.write(`${JSON.stringify(host, null, 2)}\n`);
    else printHosts([host]);
  } else if (action === 'import' && target) {
    const inventory = JSON.parse(await readFile(target, 'utf8')) as { hosts?: Schemas['CreateHost'][] };
    if (!Array.isArray(inventory.hosts)) throw new UsageError(`${target} has no "hosts" array`);
    const totals = { total: 0, created: 0, updated: 0, unchanged: 0 };
    for (let start = 0; start < inventory.hosts.length; start += IMPORT_BATCH) {
      const batch = inventory.hosts.slice(start, start + IMPORT_BATCH);
      const result = unwrap(await api.POST('/v1/hosts/bulk-upsert', { body: { hosts: batch } }));
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += result[key];
    }
    if (json) process.stdout.write(`${JSON.stringify(totals)}\n`);
    else {
      process.stdout.write(
        `imported ${totals.total} host(s): ${totals.created} created, ${totals.updated} updated, ${totals.unchanged} unchanged\n`,
      );
    }
  } else {
    throw new UsageError('hosts takes: list | get NAME | import FILE');
  }
}

async function unitsCommand(
  api: DroverClient,
  args: string[],
  values: {
    json?: boolean | undefined;
    selector?: string | undefined;
    from?: string | undefined;
    to?: string | undefined;
  },
): Promise<void> {
  const [action, target] = args;
  const { json = false, selector } = values;
  let units: Schemas['UnitPage']['items'];
  if (action === 'drift' && target) {
    const drift = unwrap(
      await api.GET('/v1/units/{name}/drift', {
        params: { path: { name: target }, query: { selector, from: values.from, to: values.to } },
      }),
    );
    process.stdout.write(json ? `${JSON.stringify(drift, null, 2)}\n` : renderDrift(drift));
    return;
  } else if (action === 'list' && target) {
    units = await allPages(async (cursor) =>
      unwrap(await api.GET('/v1/units', { params: { query: { name: target, selector, cursor, limit: 1000 } } })),
    );
  } else if (action === 'discover' && target) {
    unwrap(await api.POST('/v1/hosts/{name}/discover', { params: { path: { name: target } } }));
    process.stdout.write(`discovery of ${target} queued\n`);
    return;
  } else if (action === 'host' && target) {
    units = await allPages(async (cursor) =>
      unwrap(
        await api.GET('/v1/hosts/{name}/units', { params: { path: { name: target }, query: { cursor, limit: 1000 } } }),
      ),
    );
  } else {
    throw new UsageError('units takes: list UNIT | host HOST | discover HOST | drift UNIT');
  }
  if (json) process.stdout.write(`${JSON.stringify(units, null, 2)}\n`);
  else printUnits(units);
}

function printProbes(probes: Schemas['Probe'][]): void {
  process.stdout.write(
    renderTable(
      ['NAME', 'TIMEOUT', 'UNITS', 'ARGV'],
      probes.map((probe) => [probe.name, `${probe.timeoutMs} ms`, probe.unitGlob ?? '*', probe.argv.join(' ')]),
    ),
  );
}

interface ProbeOptions {
  json: boolean;
  'timeout-ms'?: string | undefined;
  'unit-glob'?: string | undefined;
  description?: string | undefined;
}

async function probesCommand(api: DroverClient, args: string[], values: ProbeOptions): Promise<void> {
  const [action, name, ...argv] = args;
  const path = { name: name ?? '' };
  let probes: Schemas['Probe'][];
  if (action === 'list') {
    probes = await allPages(async (cursor) =>
      unwrap(await api.GET('/v1/probes', { params: { query: { cursor, limit: 1000 } } })),
    );
  } else if (action === 'get' && name) {
    probes = [unwrap(await api.GET('/v1/probes/{name}', { params: { path } }))];
  } else if (action === 'set' && name && argv.length > 0) {
    const body: Schemas['PutProbe'] = {
      argv,
      ...(values['timeout-ms'] === undefined ? {} : { timeoutMs: Number(values['timeout-ms']) }),
      ...(values['unit-glob'] === undefined ? {} : { unitGlob: values['unit-glob'] }),
      ...(values.description === undefined ? {} : { description: values.description }),
    };
    probes = [unwrap(await api.PUT('/v1/probes/{name}', { params: { path }, body }))];
  } else if (action === 'delete' && name) {
    unwrap(await api.DELETE('/v1/probes/{name}', { params: { path } }));
    process.stdout.write(`probe ${name} deleted\n`);
    return;
  } else {
    throw new UsageError('probes takes: list | get NAME | set NAME [options] -- /PROGRAM [ARG...] | delete NAME');
  }
  if (values.json) process.stdout.write(`${JSON.stringify(probes, null, 2)}\n`);
  else printProbes(probes);
}

type Operation = Schemas['Operation'];

function describeState(snapshot: Schemas['Operation']['tasks'][number]['after']): string {
  if (!snapshot) return '-';
  const pid = snapshot.mainPid === null ? '' : ` pid ${snapshot.mainPid}`;
  const file = snapshot.unitFileState === null ? '' : ` ${snapshot.unitFileState}`;
  return `${snapshot.activeState}/${snapshot.subState}${pid}${file}`;
}

function printOperation(operation: Operation): void {
  process.stdout.write(
    renderTable(
      ['HOST', 'STATE', 'BEFORE', 'AFTER', 'REASON'],
      operation.tasks.map((task) => [
        task.hostName,
        task.state,
        describeState(task.before),
        describeState(task.after),
        task.reason ?? '',
      ]),
    ),
  );
  // What the failed units said, so nobody has to log in to the host to find out.
  for (const task of operation.tasks) {
    if (!task.diagnostics) continue;
    const indented = task.diagnostics.replace(/^/gm, '    ');
    process.stdout.write(`\n${task.hostName}: ${task.unit ?? ''} ${task.state}: what the unit said\n${indented}\n`);
  }
  const counts = Object.entries(operation.counts)
    .filter(([, count]) => count > 0)
    .map(([state, count]) => `${count} ${state}`)
    .join(', ');
  process.stdout.write(`operation ${operation.id}: ${operation.status} (${counts})\n`);
}

async function waitForOperation(api: DroverClient, created: Operation, json: boolean): Promise<Operation> {
  const tty = process.stderr.isTTY && !json;
  let operation = created;
  let lastLine = '';
  while (!FINISHED_OPERATION_STATUSES.includes(operation.status)) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    operation = unwrap(await api.GET('/v1/operations/{id}', { params: { path: { id: operation.id } } }));
    const { queued = 0, running = 0, succeeded = 0 } = operation.counts;
    const done = operation.tasks.length - queued - running;
    // A task that may not act yet says why (another rollout's hold, systemd's start limit).
    const waiting = operation.tasks.find((task) => task.waitingFor !== null);
    const why = waiting ? `; ${waiting.hostName} waits: ${waiting.waitingFor!.reason}` : '';
    const line = `${operation.verb} ${operation.unit ?? ''}: ${done}/${operation.tasks.length} done, ${running} running, ${succeeded} ok, ${done - succeeded} not ok${why}`;
    if (line !== lastLine && !json) process.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
    lastLine = line;
  }
  if (tty) process.stderr.write('\n');
  return operation;
}

async function actCommand(api: DroverClient, verb: string, args: string[], values: ActOptions): Promise<void> {
  const [unit] = args;
  const common = {
    verb: verb as Schemas['CreateOperation']['verb'],
    ...(unit ? { unit } : {}),
    onConflict: (values['on-conflict'] ?? 'wait') as 'wait' | 'reject',
    trustOnFirstUse: values['trust-on-first-use'] ?? false,
    ...(values['timeout-ms'] ? { timeoutMs: Number(values['timeout-ms']) } : {}),
    ...(values['daemon-reload'] ? { daemonReload: daemonReloadOf(values['daemon-reload']) } : {}),
  };
  let created: Operation;
  if (values.host) {
    created = unwrap(
      await api.POST('/v1/hosts/{name}/actions', { params: { path: { name: values.host } }, body: common }),
    );
  } else if (values.selector !== undefined) {
    const concurrency = values.concurrency ? { concurrency: Number(values.concurrency) } : {};
    created = unwrap(
      await api.POST('/v1/operations', { body: { ...common, selector: values.selector, ...concurrency } }),
    );
  } else {
    throw new UsageError(`${verb} needs -l SELECTOR or --host NAME`);
  }
  const operation = values['no-wait'] ? created : await waitForOperation(api, created, values.json ?? false);
  if (values.json) process.stdout.write(`${JSON.stringify(operation, null, 2)}\n`);
  else printOperation(operation);
  if (operation.status === 'failed' || operation.status === 'cancelled') process.exitCode = 2;
}

async function opsCommand(api: DroverClient, args: string[], json: boolean): Promise<void> {
  const [action, id] = args;
  if (action === 'list') {
    const page = unwrap(await api.GET('/v1/operations', { params: { query: { limit: 50 } } }));
    if (json) process.stdout.write(`${JSON.stringify(page.items, null, 2)}\n`);
    else {
      process.stdout.write(
        renderTable(
          ['ID', 'CREATED', 'VERB', 'UNIT', 'STATUS', 'BY', 'SELECTOR'],
          page.items.map((item) => [
            item.id,
            item.createdAt,
            item.verb,
            item.unit ?? '-',
            item.status,
            item.requestedBy,
            item.selector ?? '-',
          ]),
        ),
      );
    }
  } else if (action === 'get' && id) {
    const operation = unwrap(await api.GET('/v1/operations/{id}', { params: { path: { id } } }));
    if (json) process.stdout.write(`${JSON.stringify(operation, null, 2)}\n`);
    else printOperation(operation);
  } else {
    throw new UsageError('ops takes: list | get ID');
  }
}

interface AuditOptions {
  actor?: string | undefined;
  host?: string | undefined;
  selector?: string | undefined;
  unit?: string | undefined;
  action?: string | undefined;
  result?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  grep?: string | undefined;
  format?: string | undefined;
  'from-seq'?: string | undefined;
  'to-seq'?: string | undefined;
  json?: boolean | undefined;
}

function auditFilters(values: AuditOptions) {
  return {
    ...(values.actor ? { actor: values.actor } : {}),
    ...(values.host ? { host: values.host } : {}),
    ...(values.selector ? { selector: values.selector } : {}),
    ...(values.unit ? { unit: values.unit } : {}),
    ...(values.action ? { action: values.action } : {}),
    ...(values.result ? { result: values.result } : {}),
    ...(values.since ? { from: values.since } : {}),
    ...(values.until ? { to: values.until } : {}),
    ...(values.grep ? { q: values.grep } : {}),
  };
}

async function auditCommand(
  api: DroverClient,
  baseUrl: string,
  token: string | undefined,
  args: string[],
  values: AuditOptions,
) {
  const [action] = args;
  if (action === 'list') {
    const page = unwrap(
      await api.GET('/v1/audit/events', { params: { query: { ...auditFilters(values), limit: 100 } } }),
    );
    if (values.json) {
      process.stdout.write(`${JSON.stringify(page.items, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      renderTable(
        ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'RESULT', 'HOST', 'UNIT', 'REASON'],
        page.items.map((event) => [
          String(event.seq),
          event.occurredAt,
          event.actorName,
          event.action,
          event.result,
          event.hostName ?? '-',
          event.unit ?? '-',
          event.reason ?? '',
        ]),
      ),
    );
  } else if (action === 'verify') {
    const query = {
      ...(values['from-seq'] ? { fromSeq: Number(values['from-seq']) } : {}),
      ...(values['to-seq'] ? { toSeq: Number(values['to-seq']) } : {}),
    };
    const result = unwrap(await api.GET('/v1/audit/verify', { params: { query } }));
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else if (result.ok)
      process.stdout.write(
        `audit chain intact: ${result.checked} event(s), seq ${result.fromSeq ?? '-'}..${result.toSeq ?? '-'}, last hash ${result.lastHash ?? '-'}\n`,
      );
    else process.stdout.write(`audit chain BROKEN at seq ${result.firstBroken?.seq}: ${result.firstBroken?.reason}\n`);
    if (!result.ok) process.exitCode = 2;
  } else if (action === 'export') {
    const format = values.format ?? 'jsonl';
    if (format !== 'jsonl' && format !== 'csv') throw new UsageError('--format is jsonl or csv');
    // Streamed straight to stdout: the export can be millions of rows.
    const query = new URLSearchParams({ ...auditFilters(values), format });
    const response = await fetch(`${baseUrl}/v1/audit/export?${query.toString()}`, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    if (!response.ok || !response.body) {
      throw new ApiError(
        response.status,
        (await response.json().catch(() => undefined)) as Schemas['Problem'] | undefined,
      );
    }
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (!process.stdout.write(chunk)) await new Promise((resolve) => process.stdout.once('drain', resolve));
    }
  } else {
    throw new UsageError('audit takes: list | verify | export');
  }
}

const VERB_COMMANDS: ReadonlySet<string> = new Set(VERBS);

interface ActOptions {
  selector?: string | undefined;
  host?: string | undefined;
  concurrency?: string | undefined;
  'on-conflict'?: string | undefined;
  'timeout-ms'?: string | undefined;
  'daemon-reload'?: string | undefined;
  'trust-on-first-use'?: boolean | undefined;
  'no-wait'?: boolean | undefined;
  json?: boolean | undefined;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      selector: { type: 'string', short: 'l' },
      host: { type: 'string' },
      concurrency: { type: 'string' },
      'on-conflict': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'unit-glob': { type: 'string' },
      description: { type: 'string' },
      'trust-on-first-use': { type: 'boolean', default: false },
      actor: { type: 'string' },
      unit: { type: 'string' },
      action: { type: 'string' },
      result: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      grep: { type: 'string' },
      format: { type: 'string' },
      'from-seq': { type: 'string' },
      'to-seq': { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
      batch: { type: 'string' },
      'max-failures': { type: 'string' },
      'max-unavailable': { type: 'string' },
      'min-healthy': { type: 'string' },
      'health-timeout': { type: 'string' },
      probe: { type: 'string', multiple: true },
      pause: { type: 'string' },
      'approve-after-canary': { type: 'boolean', default: false },
      order: { type: 'string' },
      'task-timeout': { type: 'string' },
      deadline: { type: 'string' },
      'idempotency-key': { type: 'string' },
      'on-overlap': { type: 'string' },
      'daemon-reload': { type: 'string' },
      events: { type: 'string' },
      status: { type: 'string' },
      'expires-in': { type: 'string' },
      user: { type: 'string' },
      reason: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      enablement: { type: 'string' },
      activity: { type: 'string' },
      rename: { type: 'string' },
      apply: { type: 'boolean', default: false },
      wait: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [group, ...rest] = positionals;
  if (values.help || !group) {
    process.stdout.write(`${USAGE}\n`);
    if (!group && !values.help) process.exitCode = 64;
    return;
  }
  const baseUrl = process.env.DROVER_URL ?? 'http://127.0.0.1:8080';
  const api = createDroverClient(baseUrl, process.env.DROVER_TOKEN);
  if (group === 'hosts') await hostsCommand(api, rest, values.json, values.selector);
  else if (group === 'units') await unitsCommand(api, rest, values);
  else if (group === 'ops') await opsCommand(api, rest, values.json);
  else if (group === 'probes') await probesCommand(api, rest, values);
  else if (group === 'rollout') await rolloutCommand(api, baseUrl, process.env.DROVER_TOKEN, rest, values);
  else if (group === 'audit') await auditCommand(api, baseUrl, process.env.DROVER_TOKEN, rest, values);
  else if (group === 'policies') await policiesCommand(api, baseUrl, process.env.DROVER_TOKEN, rest, values);
  else if (group === 'webhooks') await webhooksCommand(api, rest, values);
  else if (group === 'agent') await agentsCommand(api, baseUrl, rest, values);
  else if (VERB_COMMANDS.has(group)) await actCommand(api, group, rest, values);
  else throw new UsageError(`unknown command '${group}'`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const usage =
    error instanceof UsageError ||
    error instanceof RolloutUsageError ||
    error instanceof WebhooksUsageError ||
    error instanceof PoliciesUsageError ||
    error instanceof AgentsUsageError ||
    (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'));
  process.stderr.write(`drover: ${error instanceof Error ? error.message : String(error)}\n`);
  if (usage) process.stderr.write(`\n${USAGE}\n`);
  process.exitCode = usage ? 64 : 1;
  if (error instanceof ApiError && error.status === 401) {
    process.stderr.write('hint: set DROVER_TOKEN to a token from `drover-admin create-token`\n');
  }
});

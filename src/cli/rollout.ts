import { ApiError, DroverClient, Schemas, unwrap } from '../client';
import { ROLLOUT_CONTROLS, VERBS } from '@drover/protocol';
import { renderTable } from './table';

/** Exit codes of `drover rollout ... --wait` (and watch), documented in the usage text and README. */
export const ROLLOUT_EXIT = { succeeded: 0, aborted: 3, cancelled: 4, rejected: 5 } as const;

export class RolloutUsageError extends Error {}

export interface RolloutOptions {
  selector?: string | undefined;
  batch?: string | undefined;
  'max-failures'?: string | undefined;
  'max-unavailable'?: string | undefined;
  'min-healthy'?: string | undefined;
  'health-timeout'?: string | undefined;
  probe?: string[] | undefined;
  pause?: string | undefined;
  'approve-after-canary'?: boolean | undefined;
  order?: string | undefined;
  'task-timeout'?: string | undefined;
  deadline?: string | undefined;
  'idempotency-key'?: string | undefined;
  'on-overlap'?: string | undefined;
  'daemon-reload'?: string | undefined;
  reason?: string | undefined;
  'dry-run'?: boolean | undefined;
  wait?: boolean | undefined;
  json?: boolean | undefined;
}

type Rollout = Schemas['Rollout'];
type Strategy = Schemas['RolloutStrategy'];
type Probe = NonNullable<NonNullable<Strategy['healthGate']>['probes']>[number];

const FINISHED = new Set(['succeeded', 'aborted', 'cancelled']);
const DURATION = /^(\d+)(ms|s|m|h)?$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
const RECONNECT_DELAY_MS = 1_000;

/** "1500", "1500ms", "10s", "2m", "1h" in milliseconds. */
export function parseDuration(option: string, text: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new RolloutUsageError(`--${option} takes a duration such as 500ms, 10s or 2m, not '${text}'`);
  return Number(match[1]) * UNIT_MS[(match[2] ?? 'ms') as keyof typeof UNIT_MS];
}

/** A count ("3") or a percentage ("25%") as the API takes them. */
function amount(option: string, text: string): number | string {
  if (/^\d+$/.test(text)) return Number(text);
  if (/^\d{1,3}%$/.test(text)) return text;
  throw new RolloutUsageError(`--${option} takes a count such as 2 or a percentage such as 25%, not '${text}'`);
}

/** http:PORT[/PATH], tcp:PORT, or cmd:NAME (a command of the probe catalogue, run on the host). */
export function parseProbe(text: string): Probe {
  const http = /^http:(\d+)(\/\S*)?$/.exec(text);
  if (http) return { type: 'http', port: Number(http[1]), path: http[2] ?? '/' };
  const tcp = /^tcp:(\d+)$/.exec(text);
  if (tcp) return { type: 'tcp', port: Number(tcp[1]) };
  if (text.startsWith('cmd:')) return { type: 'command', name: text.slice(4) };
  throw new RolloutUsageError(
    `--probe takes http:PORT[/PATH], tcp:PORT or cmd:NAME (see drover probes list), not '${text}'`,
  );
}

function orderOf(text: string): Strategy['order'] {
  if (text === 'name') return { by: 'name' };
  const shuffle = /^shuffle:(\d+)$/.exec(text);
  if (shuffle) return { by: 'shuffle', seed: Number(shuffle[1]) };
  const label = /^label:([^=]+)=(.+)$/.exec(text);
  if (label) return { by: 'label', key: label[1]!, ranks: label[2]!.split(',') };
  throw new RolloutUsageError(`--order takes name, shuffle:SEED or label:KEY=V1,V2..., not '${text}'`);
}

const ON_OVERLAP = ['queue', 'reject', 'supersede'] as const;
const DAEMON_RELOAD = ['refuse', 'auto', 'ignore'] as const;

/** --daemon-reload of `drover VERB` and `drover rollout VERB`. */
export function daemonReloadOf(text: string): Strategy['daemonReload'] {
  if (!(DAEMON_RELOAD as readonly string[]).includes(text)) {
    throw new RolloutUsageError(`--daemon-reload takes ${DAEMON_RELOAD.join(', ')}, not '${text}'`);
  }
  return text as Strategy['daemonReload'];
}

function onOverlapOf(text: string, allowed: readonly string[]): Strategy['onOverlap'] {
  if (!allowed.includes(text)) throw new RolloutUsageError(`--on-overlap takes ${allowed.join(', ')}, not '${text}'`);
  return text as Strategy['onOverlap'];
}

/** The options of a rollout strategy besides what it acts on: `drover rollout VERB` and `drover policies reconcile`. */
export function rolloutOptionsFrom(values: RolloutOptions): Omit<Strategy, 'verb' | 'unit' | 'selector'> {
  const sizes = (values.batch ?? '1').split(',').map((size) => amount('batch', size));
  const healthGate: NonNullable<Strategy['healthGate']> = {
    ...(values['min-healthy'] ? { minHealthyTimeMs: parseDuration('min-healthy', values['min-healthy']) } : {}),
    ...(values['health-timeout'] ? { timeoutMs: parseDuration('health-timeout', values['health-timeout']) } : {}),
    ...(values.probe ? { probes: values.probe.map(parseProbe) } : {}),
  };
  return {
    batches: { sizes },
    healthGate,
    ...(values['max-failures'] ? { maxFailures: amount('max-failures', values['max-failures']) } : {}),
    ...(values['max-unavailable'] ? { maxUnavailable: amount('max-unavailable', values['max-unavailable']) } : {}),
    ...(values.pause ? { pauseBetweenBatchesMs: parseDuration('pause', values.pause) } : {}),
    ...(values['approve-after-canary'] ? { approveAfterCanary: true } : {}),
    ...(values.order ? { order: orderOf(values.order) } : {}),
    ...(values['task-timeout'] ? { taskTimeoutMs: parseDuration('task-timeout', values['task-timeout']) } : {}),
    ...(values.deadline ? { deadlineMs: parseDuration('deadline', values.deadline) } : {}),
    ...(values['on-overlap'] ? { onOverlap: onOverlapOf(values['on-overlap'], ON_OVERLAP) } : {}),
    ...(values['daemon-reload'] ? { daemonReload: daemonReloadOf(values['daemon-reload']) } : {}),
  };
}

export function strategyFrom(verb: string, unit: string | undefined, values: RolloutOptions): Strategy {
  if (!(VERBS as readonly string[]).includes(verb) || verb === 'status') {
    throw new RolloutUsageError(`'${verb}' is not a verb a rollout applies`);
  }
  if (!unit) throw new RolloutUsageError(`rollout ${verb} needs a UNIT`);
  if (values.selector === undefined) throw new RolloutUsageError('a rollout needs -l SELECTOR ("" for every host)');
  return { verb: verb as Strategy['verb'], unit, selector: values.selector, ...rolloutOptionsFrom(values) };
}

/** A dry run's plan in words: its batches, overlaps, and why it could not start. */
export function printPlan(plan: Schemas['RolloutPlan']): void {
  for (const batch of plan.batches) process.stdout.write(`batch ${batch.index}: ${batch.hosts.join(', ')}\n`);
  for (const overlap of plan.overlaps) {
    process.stdout.write(
      `overlaps rollout ${overlap.rolloutId} (${overlap.status}): ${overlap.units.join(', ')} on ${overlap.hosts.join(', ')}` +
        ` — on overlap: ${plan.onOverlap}\n`,
    );
  }
  if (plan.daemonReload.hosts.length > 0) {
    process.stdout.write(`needs daemon-reload: ${plan.daemonReload.hosts.join(', ')} — ${plan.daemonReload.effect}\n`);
  }
  process.stdout.write(
    `${plan.total} host(s) in ${plan.batches.length} batch(es); aborts at failure ${plan.failureBudget.abortsAtFailure}` +
      `${plan.ok ? '' : `\ncannot start: ${plan.problems.join('; ')}`}\n`,
  );
}

function printRollout(rollout: Rollout): void {
  process.stdout.write(
    renderTable(
      ['HOST', 'BATCH', 'STATE', 'REASON'],
      rollout.hosts.map((host) => [
        host.name,
        host.batch === null ? '-' : String(host.batch),
        host.state,
        host.reason ?? '',
      ]),
    ),
  );
  const counts = Object.entries(rollout.counts)
    .filter(([, count]) => count > 0)
    .map(([state, count]) => `${count} ${state}`)
    .join(', ');
  process.stdout.write(
    `rollout ${rollout.id}: ${rollout.status}${rollout.reason ? ` (${rollout.reason})` : ''} — ${counts}\n`,
  );
}

function describeEvent(type: string, data: Record<string, unknown>): string {
  const host = typeof data.host === 'string' ? data.host : '';
  const reason = typeof data.reason === 'string' ? `: ${data.reason}` : '';
  switch (type) {
    case 'batch.started':
      return `batch ${String(data.index)} started: ${(data.hosts as string[]).join(', ')}`;
    case 'task.finished': {
      const line = `${host}: ${String(data.unit)} ${String(data.state)}, pid ${String(data.mainPidBefore)} → ${String(data.mainPidAfter)}`;
      // A failed task's reason and what its unit said (status and journal), indented under it.
      if (data.state === 'succeeded') return line;
      const said = typeof data.diagnostics === 'string' ? `\n${data.diagnostics.replace(/^/gm, '    ')}` : '';
      return `${line}${reason}${said}`;
    }
    case 'host.gating':
      return `${host}: health gate started`;
    case 'gate.check':
      return `${host}: ${data.healthy ? 'healthy' : `not healthy yet: ${(data.problems as string[]).join('; ')}`}`;
    case 'host.succeeded':
      return `${host}: done`;
    case 'host.failed': {
      const said = typeof data.diagnostics === 'string' ? `\n${data.diagnostics.replace(/^/gm, '    ')}` : '';
      return `${host}: FAILED${reason}${said}`;
    }
    case 'host.cancelled':
      return `${host}: cancelled before acting${reason}`;
    case 'batch.finished':
      return `batch ${String(data.index)} finished: ${(data.succeeded as string[]).length} ok, ${(data.failed as string[]).length} failed`;
    case 'rollout.finished':
      return `rollout ${String(data.status)}${reason}`;
    case 'rollout.queued':
      return `rollout ${String(data.reason)}`;
    case 'rollout.started':
      return `rollout started${(data.waitedFor as string[]).length > 0 ? ` (it waited for ${(data.waitedFor as string[]).join(', ')})` : ''}`;
    case 'task.waiting':
      return `${host}: ${String(data.unit)} waits: ${String(data.waitingFor)}`;
    default:
      return `${type}${reason}`;
  }
}

/**
 * Follows the rollout's event stream until it ends, reconnecting with Last-Event-ID after a
 * dropped connection (an API restart, a proxy timeout) so no event is shown twice or missed.
 */
async function follow(baseUrl: string, token: string | undefined, id: string, json: boolean): Promise<void> {
  const tty = process.stderr.isTTY && !json;
  let lastEventId: string | undefined;
  const counts = { done: 0, failed: 0, total: 0 };
  for (;;) {
    let response: Response;
    try {
      response = await fetch(`${baseUrl}/v1/rollouts/${id}/events`, {
        headers: {
          Accept: 'text/event-stream',
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
          ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}),
        },
      });
    } catch {
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_DELAY_MS));
      continue;
    }
    if (response.status >= 400 && response.status < 500) {
      throw new ApiError(response.status, (await response.json().catch(() => undefined)) as Schemas['Problem']);
    }
    if (!response.ok || !response.body) {
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_DELAY_MS));
      continue;
    }
    let buffer = '';
    let finished = false;
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += Buffer.from(chunk).toString('utf8');
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = new Map<string, string>();
          for (const line of block.split('\n')) {
            const colon = line.indexOf(':');
            if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
          }
          const type = fields.get('event');
          if (!type) continue;
          lastEventId = fields.get('id') ?? lastEventId;
          const data = JSON.parse(fields.get('data') ?? '{}') as Record<string, unknown>;
          if (type === 'rollout.created') counts.total = Number(data.total);
          if (type === 'host.succeeded') counts.done += 1;
          if (type === 'host.failed') counts.failed += 1;
          if (type === 'rollout.finished') finished = true;
          if (json) continue;
          const line = describeEvent(type, data);
          if (tty) {
            const bar = `[${counts.done + counts.failed}/${counts.total} hosts, ${counts.failed} failed]`;
            process.stderr.write(`\r\x1b[2K${line}\n${bar}`);
          } else {
            process.stderr.write(`${line}\n`);
          }
        }
      }
    } catch {
      // The connection dropped mid-stream: reconnect after the last event seen.
    }
    if (tty) process.stderr.write('\r\x1b[2K');
    // The server ends the stream once the rollout finished and nothing is in flight.
    if (finished) return;
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_DELAY_MS));
  }
}

/** Prints the rollout; with --wait follows it first until it ends (the exit code says how). */
export async function finish(
  api: DroverClient,
  baseUrl: string,
  token: string | undefined,
  rollout: Rollout,
  values: RolloutOptions,
): Promise<void> {
  let shown = rollout;
  if (values.wait && !FINISHED.has(rollout.status)) {
    await follow(baseUrl, token, rollout.id, values.json ?? false);
    shown = unwrap(await api.GET('/v1/rollouts/{id}', { params: { path: { id: rollout.id } } }));
  }
  if (values.json) process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
  else printRollout(shown);
  if (values.wait && (shown.status === 'aborted' || shown.status === 'cancelled')) {
    process.exitCode = ROLLOUT_EXIT[shown.status];
  }
}

export async function rolloutCommand(
  api: DroverClient,
  baseUrl: string,
  token: string | undefined,
  args: string[],
  values: RolloutOptions,
): Promise<void> {
  const [action, target] = args;
  if (action === 'list') {
    const page = unwrap(await api.GET('/v1/rollouts', { params: { query: { limit: 50 } } }));
    if (values.json) process.stdout.write(`${JSON.stringify(page.items, null, 2)}\n`);
    else {
      process.stdout.write(
        renderTable(
          ['ID', 'CREATED', 'VERB', 'UNIT', 'STATUS', 'DONE', 'FAILED', 'BY'],
          page.items.map((item) => [
            item.id,
            item.createdAt,
            item.verb,
            item.unit,
            item.status,
            `${item.counts.succeeded}/${item.total}`,
            String(item.counts.failed),
            item.requestedBy,
          ]),
        ),
      );
    }
    return;
  }
  if (!action)
    throw new RolloutUsageError('rollout takes: VERB UNIT -l SELECTOR | status | watch | list | pause | ...');
  if (action === 'status' || action === 'watch') {
    if (!target) throw new RolloutUsageError(`rollout ${action} needs a rollout ID`);
    const rollout = unwrap(await api.GET('/v1/rollouts/{id}', { params: { path: { id: target } } }));
    await finish(api, baseUrl, token, rollout, { ...values, wait: action === 'watch' });
    return;
  }
  if ((ROLLOUT_CONTROLS as readonly string[]).includes(action)) {
    if (!target) throw new RolloutUsageError(`rollout ${action} needs a rollout ID`);
    const path = `/v1/rollouts/{id}/${action}` as '/v1/rollouts/{id}/pause';
    const body = {
      ...(values.reason ? { reason: values.reason } : {}),
      ...(values['on-overlap'] && action === 'retry'
        ? { onOverlap: onOverlapOf(values['on-overlap'], ['queue', 'reject']) as 'queue' | 'reject' }
        : {}),
    };
    const rollout = unwrap(await api.POST(path, { params: { path: { id: target } }, body }));
    await finish(api, baseUrl, token, rollout, values);
    return;
  }
  const strategy = strategyFrom(action, target, values);
  if (values['dry-run']) {
    const plan = unwrap(await api.POST('/v1/rollouts/plan', { body: strategy }));
    if (values.json) process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    else printPlan(plan);
    if (!plan.ok) process.exitCode = ROLLOUT_EXIT.rejected;
    return;
  }
  const created = await api.POST('/v1/rollouts', {
    body: strategy,
    ...(values['idempotency-key'] ? { headers: { 'Idempotency-Key': values['idempotency-key'] } } : {}),
  });
  let rollout: Rollout;
  try {
    rollout = unwrap(created);
  } catch (error) {
    // Refused before anything started (invalid, not allowed, cannot start now): a distinct code.
    if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 401) {
      process.stderr.write(`drover: the rollout did not start: ${error.message}\n`);
      process.exitCode = ROLLOUT_EXIT.rejected;
      return;
    }
    throw error;
  }
  if (!values.json) {
    process.stderr.write(
      rollout.status === 'queued'
        ? `rollout ${rollout.id} ${rollout.reason ?? 'queued'}\n`
        : `rollout ${rollout.id} started (${rollout.total} host(s))\n`,
    );
  }
  await finish(api, baseUrl, token, rollout, values);
}

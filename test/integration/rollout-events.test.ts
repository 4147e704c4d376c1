import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { MetricsService } from '../../src/infra/metrics/metrics.service';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import type { Problem } from '../support/problems';
import { waitUntil } from '../support/wait';

interface SseEvent {
  id: string;
  type: string;
}

/** An open GET /v1/rollouts/{id}/events, collecting the events it receives. */
interface Stream {
  status: number;
  events: SseEvent[];
  ended: Promise<void>;
  close(): void;
}

/** Every stream opened, closed after the tests (an open stream would keep the API from closing). */
const opened: AbortController[] = [];

async function openStream(api: TestApi, token: string, rolloutId: string, lastEventId?: string): Promise<Stream> {
  const aborter = new AbortController();
  opened.push(aborter);
  const response = await fetch(`${api.baseUrl}/v1/rollouts/${rolloutId}/events`, {
    headers: { Authorization: `Bearer ${token}`, ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}) },
    signal: aborter.signal,
  });
  const events: SseEvent[] = [];
  if (response.status !== 200) {
    return { status: response.status, events, ended: Promise.resolve(), close: () => aborter.abort() };
  }
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const ended = (async () => {
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const id = /^id: (.*)$/m.exec(frame)?.[1];
        const type = /^event: (.*)$/m.exec(frame)?.[1];
        if (id !== undefined && type !== undefined) events.push({ id, type });
      }
    }
  })();
  return { status: 200, events, ended, close: () => aborter.abort() };
}

/** A rollout row with no worker behind it: it stays idle until the test writes its events. */
async function idleRollout(api: TestApi): Promise<string> {
  const rollout = await api.prisma.rollout.create({
    data: {
      verb: 'restart',
      unit: 'events.service',
      selector: 'events=test',
      strategy: {},
      total: 0,
      maxFailures: 0,
      requestHash: '0'.repeat(64),
      requestedBy: 'rollout-events-test',
    },
  });
  return rollout.id;
}

/** Writes events as the worker does (an INSERT, in its own transaction). */
async function writeEvents(api: TestApi, rolloutId: string, types: string[]): Promise<void> {
  const values = types.map((type) => `('${rolloutId}', '${type}', '{}')`).join(', ');
  await query(api.database.url, `INSERT INTO rollout_events (rollout_id, type, data) VALUES ${values}`);
}

async function finish(api: TestApi, rolloutId: string): Promise<void> {
  await query(api.database.url, `UPDATE rollouts SET status = 'succeeded' WHERE id = '${rolloutId}'`);
  await writeEvents(api, rolloutId, ['rollout.finished']);
}

describe('rollout event streams', () => {
  let api: TestApi;
  let metrics: MetricsService;
  const gauge = async (metric: { get(): Promise<{ values: { value: number }[] }> }) =>
    (await metric.get()).values[0]?.value ?? 0;

  before(async () => {
    api = await startTestApi({ ROLLOUT_EVENT_STREAMS_PER_TOKEN: '6' });
    metrics = api.app.get(MetricsService);
  });
  after(async () => {
    for (const aborter of opened) aborter.abort();
    await api.close();
  });

  it('serves every stream of a rollout from one shared source: live, resumable, no polling per client', async () => {
    const token = await api.token({ scopes: ['read'] });
    const rolloutId = await idleRollout(api);
    await writeEvents(api, rolloutId, ['rollout.created', 'batch.started', 'task.finished']);
    const streams = await Promise.all(Array.from({ length: 5 }, () => openStream(api, token, rolloutId)));
    assert.ok(streams.every((stream) => stream.status === 200));
    await waitUntil(() => streams.every((stream) => stream.events.length === 3), 'every stream replayed the log');
    assert.equal(await gauge(metrics.rolloutEventSources), 1, 'one source for five streams');
    assert.equal(await gauge(metrics.rolloutEventStreams), 5);

    // Idle: polling per client cost each stream two queries every 100 ms; the shared source reads
    // only when woken, or on its slow safety re-check.
    const readsBeforeIdle = await gauge(metrics.rolloutEventReads);
    await sleep(1_000);
    assert.ok((await gauge(metrics.rolloutEventReads)) - readsBeforeIdle <= 1, 'idle streams do not read');

    const readsBeforeWrite = await gauge(metrics.rolloutEventReads);
    await writeEvents(api, rolloutId, ['host.succeeded', 'batch.finished']);
    await waitUntil(() => streams.every((stream) => stream.events.length === 5), 'the new events reached every stream');
    assert.ok(
      (await gauge(metrics.rolloutEventReads)) - readsBeforeWrite < streams.length,
      'the new events were read once for all streams, not once per stream',
    );

    const ids = streams[0]!.events.map((event) => event.id);
    for (const stream of streams)
      assert.deepEqual(
        stream.events.map((event) => event.id),
        ids,
      );
    const resumed = await openStream(api, token, rolloutId, ids[1]);
    await writeEvents(api, rolloutId, ['rollout.paused']);
    await waitUntil(() => resumed.events.length === 4, 'the resumed stream caught up and went live');
    assert.deepEqual(
      resumed.events.map((event) => event.type),
      ['task.finished', 'host.succeeded', 'batch.finished', 'rollout.paused'],
      'exactly the events after Last-Event-ID, none lost or repeated',
    );

    await finish(api, rolloutId);
    await Promise.all([...streams, resumed].map((stream) => stream.ended));
    for (const stream of [...streams, resumed]) assert.equal(stream.events.at(-1)?.type, 'rollout.finished');
    await waitUntil(
      async () => (await gauge(metrics.rolloutEventSources)) === 0 && (await gauge(metrics.rolloutEventStreams)) === 0,
      'the source and streams are released',
    );
  });

  it('refuses a token more open streams than the cap with 429 problem+json, per token', async () => {
    const token = await api.token({ scopes: ['read'] });
    const rolloutId = await idleRollout(api);
    await writeEvents(api, rolloutId, ['rollout.created']);
    const open = await Promise.all(Array.from({ length: 6 }, () => openStream(api, token, rolloutId)));
    assert.ok(open.every((stream) => stream.status === 200));

    const response = await fetch(`${api.baseUrl}/v1/rollouts/${rolloutId}/events`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(response.status, 429);
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const problem = (await response.json()) as Problem;
    assert.equal(problem.code, 'too_many_streams');
    assert.match(problem.detail, /6 rollout event streams open/);

    const other = await openStream(api, await api.token({ scopes: ['read'] }), rolloutId);
    assert.equal(other.status, 200, 'another token is not limited by this one');

    open[0]!.close();
    await waitUntil(async () => (await gauge(metrics.rolloutEventStreams)) === 6, 'the closed stream is released');
    const again = await openStream(api, token, rolloutId);
    assert.equal(again.status, 200, 'a closed stream frees its place');

    await finish(api, rolloutId);
    await Promise.all([...open.slice(1), other, again].map((stream) => stream.ended));
  });
});

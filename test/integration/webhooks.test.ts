import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DroverClient, Schemas } from '../../src/client';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, verifyWebhookSignature } from '../../src/webhooks/webhook-signature';
import { startTestApi, TestApi } from '../support/api';
import { query } from '../support/database';
import { discoverAndWait } from '../support/discovery';
import { FleetInventory, readFleetInventory } from '../support/fleet';
import { actOnHost } from '../support/operations';
import { assertProblem } from '../support/problems';
import { startNodeProcess } from '../support/process';
import { getRollout, onHost, resetProbe, startRollout, waitForSettled } from '../support/rollouts';
import { waitUntil } from '../support/wait';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

type FleetHost = FleetInventory['hosts'][number];
type Delivery = Schemas['WebhookDelivery'];

const WORKER = path.resolve(__dirname, '../../src/worker.js');
const CLI = path.resolve(__dirname, '../../src/cli/main.js');
const UNIT = 'drover-probe.service';
const SELECTOR = 'fleet=nspawn';
/** Bounds for state that settles asynchronously (a rollout, retries), not claims about speed. */
const SETTLE_MS = 120_000;

interface Received {
  eventId: string;
  type: string;
  body: string;
  attempt: number;
  data: Record<string, unknown>;
}

/**
 * A real HTTP receiver, as a pipeline would run one: it verifies every request's signature and
 * records the event ids it accepted, in arrival order. It can answer 500, hold requests without
 * answering, or stop listening altogether (a closed port).
 */
class Receiver {
  secret = '';
  mode: 'ok' | 'error' | 'hold' = 'ok';
  /** Requests answered 2xx, in arrival order (duplicates included). */
  readonly accepted: Received[] = [];
  /** Every request with a valid signature, whatever the answer. */
  readonly seen: Received[] = [];
  badSignatures: string[] = [];
  private readonly held: { response: http.ServerResponse; item: Received }[] = [];
  private server: http.Server | null = null;
  port = 0;

  async start(): Promise<void> {
    const server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => this.handle(request, Buffer.concat(chunks).toString('utf8'), response));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Closes the port: attempts meet a refused connection until start() listens again. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    for (const { response } of this.held.splice(0)) response.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/drover`;
  }

  /** Answers the held requests as the receiver would now (releasing a slow receiver). */
  release(): void {
    // Requests the sender gave up on (its timeout) or whose worker died have no one to answer.
    for (const { response, item } of this.held.splice(0)) {
      if (response.socket?.destroyed) continue;
      this.accepted.push(item);
      response.writeHead(200).end('ok');
    }
  }

  acceptedIds(): string[] {
    return this.accepted.map((item) => item.eventId);
  }

  heldCount(): number {
    return this.held.length;
  }

  private handle(request: http.IncomingMessage, body: string, response: http.ServerResponse): void {
    const signature = request.headers[SIGNATURE_HEADER.toLowerCase()] as string | undefined;
    const check = verifyWebhookSignature(this.secret, signature, body, Math.floor(Date.now() / 1000));
    if (!check.ok) {
      this.badSignatures.push(check.reason);
      response.writeHead(400).end(check.reason);
      return;
    }
    const parsed = JSON.parse(body) as { id: string; type: string; data: Record<string, unknown> };
    assert.equal(request.headers[EVENT_ID_HEADER.toLowerCase()], parsed.id, 'the event id header is the body id');
    const item: Received = {
      eventId: parsed.id,
      type: parsed.type,
      body,
      attempt: Number(request.headers['drover-delivery-attempt']),
      data: parsed.data,
    };
    this.seen.push(item);
    if (this.mode === 'error') response.writeHead(500).end('down for maintenance');
    else if (this.mode === 'hold') this.held.push({ response, item });
    else {
      this.accepted.push(item);
      response.writeHead(204).end();
    }
  }
}

/** Every delivery of a subscription, oldest first (the order they are sent in). */
async function deliveriesOf(client: DroverClient, id: string): Promise<Delivery[]> {
  const items: Delivery[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.GET('/v1/webhooks/{id}/deliveries', {
      params: { path: { id }, query: { limit: 1000, ...(cursor ? { cursor } : {}) } },
    });
    assert.equal(page.response.status, 200, JSON.stringify(page.error));
    items.push(...page.data!.items);
    cursor = page.data!.nextCursor ?? undefined;
  } while (cursor);
  return items.reverse();
}

/** The webhook event ids about a rollout (its events, then its batches' operations), in write order. */
async function eventIdsOfRollout(api: TestApi, rolloutId: string): Promise<string[]> {
  const rows = await query<{ id: string }>(
    api.database.url,
    `SELECT w.id::text AS id FROM webhook_events w
     WHERE w.subject_id = $1 OR w.subject_id IN (SELECT id FROM operations WHERE rollout_id = $1)
     ORDER BY w.seq`,
    [rolloutId],
  );
  return rows.map((row) => row.id);
}

/** The webhook event about an operation (its end). */
async function eventIdOfOperation(api: TestApi, operationId: string): Promise<string> {
  const [row] = await query<{ id: string }>(
    api.database.url,
    `SELECT id::text AS id FROM webhook_events WHERE subject_id = $1`,
    [operationId],
  );
  assert.ok(row, `operation ${operationId} wrote its event`);
  return row.id;
}

/** Accepted ids, first arrival of each, in arrival order. */
function firstArrivals(receiver: Receiver): string[] {
  return [...new Set(receiver.acceptedIds())];
}

/** Duplicates, if any, are the same event: the same id always came with the same body. */
function assertDuplicatesAreSameEvent(receiver: Receiver): void {
  const bodies = new Map<string, string>();
  for (const item of receiver.seen) {
    const known = bodies.get(item.eventId);
    if (known !== undefined) assert.equal(item.body, known, `event ${item.eventId} came with another body`);
    bodies.set(item.eventId, item.body);
  }
}

describe('webhooks', () => {
  let api: TestApi;
  let worker: TestWorker | null = null;
  let client: DroverClient;
  let hosts: FleetHost[];
  let env: Record<string, string>;
  const receiver = new Receiver();
  let subscriptionId = '';

  /** A rolling restart of the probe unit on the four hosts, batch sizes as given. */
  const restartProbes = (sizes: number[], minHealthyTimeMs: number) =>
    startRollout(client, { unit: UNIT, selector: SELECTOR, batches: { sizes }, healthGate: { minHealthyTimeMs } });

  before(async () => {
    const inventory = await readFleetInventory();
    hosts = inventory.hosts.slice(0, 4).sort((a, b) => a.name.localeCompare(b.name));
    assert.equal(hosts.length, 4, 'these tests need a fleet of at least 4 hosts');
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    api = await startTestApi({ QUEUE_PREFIX: prefix, WEBHOOK_ALLOW_LOOPBACK: 'true' });
    env = {
      ...workerEnv(api.database.url, prefix),
      WEBHOOK_ALLOW_LOOPBACK: 'true',
      WEBHOOK_RETRY_BASE_MS: '200',
      WEBHOOK_RETRY_MAX_MS: '1000',
      // The receiver is down for a while in these tests; the attempts must outlast that.
      WEBHOOK_MAX_ATTEMPTS: '100',
      WEBHOOK_TIMEOUT_MS: '5000',
    };
    worker = await startTestWorker(env);
    client = await api.client();
    const imported = await client.POST('/v1/hosts/bulk-upsert', {
      body: { hosts: hosts.map((host) => ({ ...host, labels: { ...host.labels, fleet: 'nspawn' } })) },
    });
    assert.equal(imported.response.status, 200, JSON.stringify(imported.error));
    await Promise.all(hosts.map(resetProbe));
    await receiver.start();
  });

  after(async () => {
    await receiver.stop();
    await worker?.close();
    await Promise.all(hosts.map(resetProbe));
    await api.close();
  });

  it('creates a subscription (admin only, URL and filter validated, secret shown once, audited)', async () => {
    const bad = await client.POST('/v1/webhooks', {
      body: { name: 'metadata', url: 'http://169.254.169.254/latest/meta-data/', events: ['rollout.*'] },
    });
    assertProblem(bad, 400, 'validation_failed', 'url');
    const badScheme = await client.POST('/v1/webhooks', {
      body: { name: 'files', url: 'file:///etc/passwd', events: ['rollout.*'] },
    });
    assertProblem(badScheme, 400, 'validation_failed', 'url');
    const badFilter = await client.POST('/v1/webhooks', {
      body: { name: 'hosts', url: receiver.url, events: ['host.*'] },
    });
    assertProblem(badFilter, 400, 'validation_failed', 'events[0]');
    const operator = await api.client({ scopes: ['operate'] });
    assertProblem(
      await operator.POST('/v1/webhooks', { body: { name: 'ci', url: receiver.url, events: ['*'] } }),
      403,
      'forbidden',
    );
    const bounded = await api.client({ scopes: ['admin'], hostSelector: 'role=web' });
    assertProblem(await bounded.GET('/v1/webhooks'), 403, 'forbidden');

    const created = await client.POST('/v1/webhooks', {
      body: { name: 'ci', url: receiver.url, events: ['rollout.*', 'operation.*'], description: 'pipeline' },
    });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    assert.match(created.data!.secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    receiver.secret = created.data!.secret;
    subscriptionId = created.data!.id;

    const read = await client.GET('/v1/webhooks/{id}', { params: { path: { id: subscriptionId } } });
    assert.equal(read.response.status, 200);
    assert.equal('secret' in read.data!, false, 'the secret is never shown again');
    assert.deepEqual(read.data!.events, ['rollout.*', 'operation.*']);
    const listed = await client.GET('/v1/webhooks');
    assert.deepEqual(
      listed.data!.items.map((item) => item.name),
      ['ci'],
    );
    assertProblem(
      await client.POST('/v1/webhooks', { body: { name: 'ci', url: receiver.url, events: ['*'] } }),
      409,
      'webhook_exists',
      'name',
    );

    const [audited] = await query<{ parameters: unknown; after: Record<string, unknown> }>(
      api.database.url,
      `SELECT parameters, after FROM audit_events WHERE action = 'webhook.create'`,
    );
    assert.deepEqual(audited!.parameters, { name: 'ci' });
    assert.equal(audited!.after.origin, `http://127.0.0.1:${receiver.port}`);
    assert.doesNotMatch(JSON.stringify(audited), /whsec_/, 'the audit trail never holds the secret');
  });

  it('delivers a rollout and an operation on booted hosts, signed, each event once, in order', async () => {
    const created = await restartProbes([1, 2], 500);
    const rollout = await waitForSettled(client, created.id, SETTLE_MS);
    assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
    const operation = await actOnHost(client, hosts[0]!.name, { verb: 'restart', unit: UNIT });
    assert.equal(operation.status, 'succeeded');

    const operationEvent = await eventIdOfOperation(api, operation.id);
    await waitUntil(() => receiver.acceptedIds().includes(operationEvent), 'the operation event arrived', SETTLE_MS);

    const expected = [...(await eventIdsOfRollout(api, created.id)), operationEvent];
    assert.deepEqual(receiver.badSignatures, []);
    assert.deepEqual(receiver.acceptedIds(), firstArrivals(receiver), 'no event arrived twice');
    assert.deepEqual(new Set(receiver.acceptedIds()), new Set(expected), 'every event arrived');

    // The rollout's own events arrived in the order the rollout wrote them.
    const rolloutEventIds = receiver.accepted
      .filter((item) => item.type.startsWith('rollout.'))
      .map((item) => BigInt(item.data.rolloutEventId as string));
    const written = await query<{ id: string }>(
      api.database.url,
      `SELECT e.id::text AS id FROM rollout_events e WHERE e.rollout_id = $1 ORDER BY e.id`,
      [created.id],
    );
    assert.deepEqual(
      rolloutEventIds,
      written.map((row) => BigInt(row.id)),
    );
    const types = receiver.accepted.map((item) => item.type);
    assert.equal(types[0], 'rollout.created');
    assert.ok(types.includes('rollout.batch.started') && types.includes('rollout.host.succeeded'), types.join(' '));
    const batches = await query(api.database.url, `SELECT 1 FROM operations WHERE rollout_id = $1`, [created.id]);
    assert.equal(
      types.filter((type) => type === 'operation.succeeded').length,
      batches.length + 1,
      'each batch operation and the host action',
    );
    assert.ok(types.indexOf('rollout.finished') < types.lastIndexOf('operation.succeeded'));
    const last = receiver.accepted[receiver.accepted.length - 1]!;
    assert.equal(last.type, 'operation.succeeded');
    assert.deepEqual((last.data.operation as { id: string }).id, operation.id);
    assert.deepEqual(last.data.counts, { succeeded: 1 });

    // The delivery log, in sending order, is the arrival order; each took one attempt.
    const log = await deliveriesOf(client, subscriptionId);
    assert.deepEqual(
      log.map((delivery) => delivery.eventId),
      receiver.acceptedIds(),
    );
    for (const delivery of log) {
      assert.equal(delivery.status, 'delivered');
      assert.equal(delivery.attempts, 1);
      assert.equal(delivery.lastStatusCode, 204);
      assert.equal(typeof delivery.lastLatencyMs, 'number');
      assert.equal(delivery.lastError, null);
    }
  });

  it('loses nothing while the receiver is down (closed port, then 500s) in the middle of a rollout', async () => {
    const before = receiver.accepted.length;
    const created = await restartProbes([1, 1, 1, 1], 1_000);
    await waitUntil(
      () => receiver.accepted.slice(before).some((item) => item.type === 'rollout.batch.started'),
      'the first batch was announced',
      SETTLE_MS,
    );
    await receiver.stop();
    // While the port is closed the rollout goes on: its hosts succeed, and their events queue up.
    const midway = await waitForProgress(client, created.id, 2);
    assert.equal(midway.status, 'running', 'the receiver went down in the middle of the rollout');
    await waitUntil(
      async () => (await deliveriesOf(client, subscriptionId)).some((d) => /ECONNREFUSED/.test(d.lastError ?? '')),
      'an attempt met the closed port',
      SETTLE_MS,
    );
    receiver.mode = 'error';
    await receiver.start();
    await waitUntil(
      async () => (await deliveriesOf(client, subscriptionId)).some((d) => d.lastStatusCode === 500),
      'an attempt was answered 500',
      SETTLE_MS,
    );
    receiver.mode = 'ok';
    const rollout = await waitForSettled(client, created.id, SETTLE_MS);
    assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');

    const expected = await eventIdsOfRollout(api, created.id);
    await waitUntil(
      () => expected.every((id) => receiver.acceptedIds().includes(id)),
      'every event of the rollout arrived',
      SETTLE_MS,
    );
    assert.deepEqual(receiver.badSignatures, []);
    assertDuplicatesAreSameEvent(receiver);
    const arrived = firstArrivals(receiver).slice(-expected.length);
    assert.deepEqual(new Set(arrived), new Set(expected), 'nothing lost, nothing foreign');
    const log = await deliveriesOf(client, subscriptionId);
    assert.deepEqual(
      firstArrivals(receiver),
      log.map((delivery) => delivery.eventId),
      'still one at a time, in order',
    );
    assert.ok(
      log.some((delivery) => delivery.attempts > 1),
      'some deliveries took several attempts',
    );
    assert.ok(log.every((delivery) => delivery.status === 'delivered'));
  });

  it('a slow receiver does not hold a rollout back', async () => {
    const before = receiver.seen.length;
    receiver.mode = 'hold';
    const created = await restartProbes([2, 2], 500);
    const rollout = await waitForSettled(client, created.id, SETTLE_MS);
    assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
    // The rollout finished while its first event was still waiting for the receiver's answer.
    const expected = await eventIdsOfRollout(api, created.id);
    assert.ok(
      expected.every((id) => !receiver.acceptedIds().includes(id)),
      'no event of the rollout was accepted yet',
    );
    const log = await deliveriesOf(client, subscriptionId);
    assert.ok(
      log.some((delivery) => delivery.status === 'pending' && expected.includes(delivery.eventId)),
      'its first event is still being delivered',
    );
    assert.ok(receiver.seen.length > before, 'the receiver was holding a delivery');

    receiver.mode = 'ok';
    receiver.release();
    await waitUntil(
      () => expected.every((id) => receiver.acceptedIds().includes(id)),
      'every event arrived once the receiver answered',
      SETTLE_MS,
    );
    assertDuplicatesAreSameEvent(receiver);
  });

  it('a worker killed with SIGKILL in the middle of a delivery loses nothing', async () => {
    await worker?.close();
    worker = null;
    receiver.mode = 'hold';
    const doomed = startNodeProcess(WORKER, { ...env, LOG_LEVEL: 'info' });
    await doomed.waitForLine((line) => line.includes('drover worker connected'));
    const first = await actOnHost(client, hosts[1]!.name, { verb: 'restart', unit: UNIT });
    const firstEvent = await eventIdOfOperation(api, first.id);
    await waitUntil(() => receiver.heldCount() > 0, 'a delivery is in flight', SETTLE_MS);
    const killed = await doomed.stop('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    const midway = (await deliveriesOf(client, subscriptionId)).find((d) => d.eventId === firstEvent)!;
    assert.equal(midway.status, 'pending', 'the delivery was in flight when its worker died');
    assert.equal(midway.attempts, 1);

    receiver.mode = 'ok';
    receiver.release();
    worker = await startTestWorker({ ...env, WEBHOOK_MAX_ATTEMPTS: '3' });
    const second = await actOnHost(client, hosts[2]!.name, { verb: 'restart', unit: UNIT });
    const secondEvent = await eventIdOfOperation(api, second.id);
    await waitUntil(() => receiver.acceptedIds().includes(secondEvent), 'both events arrived', SETTLE_MS);
    const arrivals = firstArrivals(receiver);
    assert.ok(arrivals.indexOf(firstEvent) >= 0, 'the interrupted event arrived');
    assert.ok(arrivals.indexOf(firstEvent) < arrivals.indexOf(secondEvent), 'in order');
    assertDuplicatesAreSameEvent(receiver);
    const log = await deliveriesOf(client, subscriptionId);
    const rescued = log.find((d) => d.eventId === firstEvent)!;
    assert.equal(rescued.status, 'delivered');
    assert.equal(rescued.attempts, 2, 'the lost attempt was made again');
    assert.ok(receiver.seen.filter((item) => item.eventId === firstEvent).every((item) => item.attempt <= 2));
  });

  it('gives up after the last attempt, and a failed delivery can be sent again by hand', async () => {
    const down = new Receiver();
    await down.start();
    const url = down.url;
    await down.stop();
    const created = await client.POST('/v1/webhooks', {
      body: { name: 'chat', url, events: ['operation.failed', 'operation.succeeded'] },
    });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    down.secret = created.data!.secret;
    const id = created.data!.id;
    await actOnHost(client, hosts[3]!.name, { verb: 'restart', unit: UNIT });
    await waitUntil(
      async () => (await deliveriesOf(client, id)).some((d) => d.status === 'failed'),
      'the delivery used up its attempts',
      SETTLE_MS,
    );
    const [failed] = await deliveriesOf(client, id);
    assert.equal(failed!.attempts, 3);
    assert.match(failed!.lastError ?? '', /ECONNREFUSED/);
    assert.equal(failed!.lastStatusCode, null);
    assert.equal(failed!.nextAttemptAt, null);

    await down.start();
    const redelivered = await client.POST('/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver', {
      params: { path: { id, deliveryId: failed!.id } },
    });
    assert.equal(redelivered.response.status, 202, JSON.stringify(redelivered.error));
    await waitUntil(() => down.acceptedIds().includes(failed!.eventId), 'the redelivery arrived', SETTLE_MS);
    const [delivered] = await deliveriesOf(client, id);
    assert.equal(delivered!.status, 'delivered');
    assert.equal(delivered!.attempts, 4);
    assertProblem(
      await client.POST('/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver', {
        params: { path: { id: subscriptionId, deliveryId: failed!.id } },
      }),
      404,
      'delivery_not_found',
    );

    const deleted = await client.DELETE('/v1/webhooks/{id}', { params: { path: { id } } });
    assert.equal(deleted.response.status, 204);
    assertProblem(await client.GET('/v1/webhooks/{id}', { params: { path: { id } } }), 404, 'webhook_not_found');
    const actions = await query<{ action: string }>(
      api.database.url,
      `SELECT action FROM audit_events WHERE action LIKE 'webhook.%' ORDER BY seq`,
    );
    assert.deepEqual(
      actions.map((row) => row.action),
      ['webhook.create', 'webhook.create', 'webhook.redeliver', 'webhook.delete'],
    );
    await down.stop();
  });

  it('sends policy events, signed, when a host goes out of line and when it comes back in', async () => {
    const policies = new Receiver();
    await policies.start();
    const host = hosts[1]!;
    let subscriptionId: string | undefined;
    let policyId: string | undefined;
    try {
      const subscribed = await client.POST('/v1/webhooks', {
        body: { name: 'desired-state', url: policies.url, events: ['policy.*'] },
      });
      assert.equal(subscribed.response.status, 201, JSON.stringify(subscribed.error));
      policies.secret = subscribed.data!.secret;
      subscriptionId = subscribed.data!.id;
      const policy = await client.POST('/v1/policies', {
        body: { name: 'probe-up', selector: SELECTOR, unit: UNIT, activity: 'active' },
      });
      assert.equal(policy.response.status, 201, JSON.stringify(policy.error));
      policyId = policy.data!.id;
      const discover = () => discoverAndWait(client, [host.name], UNIT, SETTLE_MS);
      // About this host (another host not yet discovered here would count as out of line too).
      const aboutHost = () =>
        policies.accepted.filter((item) => (item.data.host as { name: string }).name === host.name);
      const received = (type: string) => aboutHost().filter((item) => item.type === type);

      await onHost(host, `systemctl stop ${UNIT}`);
      await discover();
      await waitUntil(() => received('policy.host.out_of_line').length > 0, 'the out-of-line event', SETTLE_MS);
      const [out] = received('policy.host.out_of_line');
      assert.equal((out!.data.policy as { name: string }).name, 'probe-up');
      assert.deepEqual(out!.data.reasons, ['active state is inactive, policy wants active']);
      assert.equal((out!.data.unit as { activeState: string }).activeState, 'inactive');

      await onHost(host, `systemctl start ${UNIT}`);
      await discover();
      await waitUntil(() => received('policy.host.in_line').length > 0, 'the back-in-line event', SETTLE_MS);
      const [back] = received('policy.host.in_line');
      assert.equal((back!.data.host as { name: string }).name, host.name);
      assert.equal((back!.data.unit as { activeState: string }).activeState, 'active');
      // One event per change: later evaluations of the same state write nothing more.
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      assert.deepEqual(
        aboutHost().map((item) => item.type),
        ['policy.host.out_of_line', 'policy.host.in_line'],
      );
      assert.deepEqual(policies.badSignatures, []);
    } finally {
      if (policyId) await client.DELETE('/v1/policies/{id}', { params: { path: { id: policyId } } });
      if (subscriptionId) await client.DELETE('/v1/webhooks/{id}', { params: { path: { id: subscriptionId } } });
      await onHost(host, `systemctl start ${UNIT}`);
      await policies.stop();
    }
  });

  it('drover webhooks: create, list, deliveries, delete from the CLI', async () => {
    const token = await api.token();
    const drover = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [CLI, 'webhooks', ...args],
          { env: { PATH: process.env.PATH ?? '', DROVER_URL: api.baseUrl, DROVER_TOKEN: token } },
          (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
        );
      });
    const created = await drover([
      'create',
      'cli-made',
      receiver.url,
      '--events',
      'rollout.finished, operation.failed',
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /cli-made/);
    assert.match(created.stdout, /shown only now[^\n]*\nwhsec_[A-Za-z0-9_-]{43}\n/);
    const listed = await drover(['list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^NAME +ID +URL +EVENTS +PENDING +DELIVERED +FAILED$/m);
    assert.match(listed.stdout, /^cli-made .* rollout\.finished,operation\.failed +0 +0 +0$/m);
    const deliveries = await drover(['deliveries', 'ci', '--status', 'delivered', '--json']);
    assert.equal(deliveries.code, 0, deliveries.stderr);
    const items = JSON.parse(deliveries.stdout) as Delivery[];
    assert.ok(items.length > 0 && items.every((item) => item.status === 'delivered'));
    const table = await drover(['deliveries', 'ci']);
    assert.match(table.stdout, /^DELIVERY +EVENT +TYPE +STATUS +ATTEMPTS +HTTP +MS +LAST ATTEMPT +ERROR$/m);
    assert.equal((await drover(['create', 'no-events', receiver.url])).code, 64);
    const deleted = await drover(['delete', 'cli-made']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, /webhook cli-made deleted/);
  });
});

/** Waits until at least `hosts` hosts of the rollout succeeded. */
async function waitForProgress(client: DroverClient, id: string, hosts: number) {
  let rollout = await getRollout(client, id);
  await waitUntil(
    async () => {
      rollout = await getRollout(client, id);
      return rollout.counts.succeeded >= hosts || rollout.status !== 'running';
    },
    `${hosts} hosts of the rollout succeeded`,
    SETTLE_MS,
  );
  return rollout;
}

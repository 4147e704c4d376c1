import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { QueueName } from '@drover/protocol';
import { createTestDatabase, TestDatabase } from '../support/database';
import { testEnv } from '../support/env';
import { startNodeProcess } from '../support/process';

const run = promisify(execFile);
const BUILD = path.resolve(__dirname, '../../src');
const REPO = path.resolve(__dirname, '../../..');

describe('entrypoints', () => {
  let database: TestDatabase;

  before(async () => {
    database = await createTestDatabase({ migrated: false });
  });
  after(() => database.drop());

  it('refuses to start on bad configuration with one line naming the variable', async () => {
    const api = startNodeProcess(path.join(BUILD, 'main.js'), {
      DATABASE_URL: 'mysql://db/x',
      REDIS_URL: 'redis://127.0.0.1:6379',
      PORT: 'eighty',
    });
    const { code } = await api.stop('SIGCONT');
    assert.equal(code, 78);
    const lines = api.lines().filter((line) => line.trim() !== '');
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /DATABASE_URL must be a postgresql:\/\/ URL/);
    assert.match(lines[0]!, /PORT/);

    const worker = startNodeProcess(path.join(BUILD, 'worker.js'), { DATABASE_URL: database.url });
    assert.equal((await worker.stop('SIGCONT')).code, 78);
    assert.match(worker.lines().join('\n'), /REDIS_URL is required/);
  });

  it('API: migrates on start, serves health, docs, the committed OpenAPI document and metrics, logs JSON with request ids', async () => {
    // Queues of its own: the default prefix is a running demo's (or a deployment's) on this Redis.
    const queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    const api = startNodeProcess(path.join(BUILD, 'main.js'), {
      DATABASE_URL: database.url,
      REDIS_URL: testEnv.redisUrl,
      QUEUE_PREFIX: queuePrefix,
      PORT: '0',
      LOG_LEVEL: 'info',
    });
    try {
      const listening = JSON.parse(await api.waitForLine((line) => line.includes('drover API listening'))) as {
        url: string;
      };
      assert.ok(api.lines().some((line) => line.includes('applied database migrations')));
      const baseUrl = listening.url.replace('[::1]', '127.0.0.1');

      assert.equal((await fetch(`${baseUrl}/healthz/live`)).status, 200);
      assert.equal((await fetch(`${baseUrl}/healthz/ready`)).status, 200);
      const served = await (await fetch(`${baseUrl}/openapi.json`)).json();
      const committed = JSON.parse(await readFile(path.join(REPO, 'openapi.json'), 'utf8')) as unknown;
      assert.deepEqual(served, committed, 'the served document is the committed openapi.json');
      const docs = await fetch(`${baseUrl}/docs`);
      assert.equal(docs.status, 200);
      assert.match(await docs.text(), /swagger-ui/i);

      const { stdout: token } = await run(
        process.execPath,
        [path.join(BUILD, 'admin.js'), 'create-token', '--name', 'metrics'],
        {
          env: {
            PATH: process.env.PATH ?? '',
            DATABASE_URL: database.url,
            REDIS_URL: testEnv.redisUrl,
            QUEUE_PREFIX: queuePrefix,
          },
        },
      );
      assert.equal((await fetch(`${baseUrl}/metrics`)).status, 401);
      const requestId = `test-${randomBytes(4).toString('hex')}`;
      const metrics = await fetch(`${baseUrl}/metrics`, {
        headers: { Authorization: `Bearer ${token.trim()}`, 'X-Request-Id': requestId },
      });
      assert.equal(metrics.status, 200);
      assert.equal(metrics.headers.get('x-request-id'), requestId);
      assert.match(await metrics.text(), /drover_http_request_duration_seconds_bucket\{.*route="\/healthz\/ready"/);
      const accessLog = JSON.parse(await api.waitForLine((line) => line.includes(requestId))) as {
        requestId: string;
        res: { statusCode: number };
        level: number;
      };
      assert.equal(accessLog.requestId, requestId);
      assert.equal(accessLog.res.statusCode, 200);
      assert.ok(!api.lines().some((line) => line.includes(token.trim())), 'the token never reaches the logs');
    } finally {
      const stopped = await api.stop();
      assert.equal(stopped.code, 0, `exited gracefully with status 0 (${JSON.stringify(stopped)})`);
      assert.ok(stopped.ms < 10_000, `stopped in ${stopped.ms} ms`);
    }
  });

  it('API: on SIGTERM takes no new connection, finishes a change in flight, and answers a request still arriving 503 shutting_down, never 500', async () => {
    const queuePrefix = `drover-test-${randomBytes(4).toString('hex')}`;
    const env = { DATABASE_URL: database.url, REDIS_URL: testEnv.redisUrl, QUEUE_PREFIX: queuePrefix };
    const api = startNodeProcess(path.join(BUILD, 'main.js'), { ...env, PORT: '0', LOG_LEVEL: 'info' });
    const listening = JSON.parse(await api.waitForLine((line) => line.includes('drover API listening'))) as {
      url: string;
    };
    const url = new URL(listening.url.replace('[::1]', '127.0.0.1'));
    const { stdout: token } = await run(
      process.execPath,
      [path.join(BUILD, 'admin.js'), 'create-token', '--name', 'drain'],
      { env: { PATH: process.env.PATH ?? '', ...env } },
    );
    // A request in flight when the signal comes: its body is only half sent, so the connection is busy.
    const socket = connect(Number(url.port), url.hostname);
    await once(socket, 'connect');
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    const body = JSON.stringify({ name: `drain-${randomBytes(3).toString('hex')}`, address: '192.0.2.7' });
    const half = Math.floor(body.length / 2);
    socket.write(
      `POST /v1/hosts HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token.trim()}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stopped = api.stop('SIGTERM');
    await api.waitForLine((line) => line.includes('shutting down'));
    await assert.rejects(fetch(`${url.origin}/healthz/live`), 'the listening socket is closed at once');
    // The rest of the body, and one more request on the same connection behind it.
    socket.write(
      `${body.slice(half)}GET /v1/hosts HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token.trim()}\r\n\r\n`,
    );
    await once(socket, 'close');
    const statuses = [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]));
    assert.ok(!statuses.includes(500), `no 500 during shutdown: ${received}`);
    // The POST was let in before the signal: it is carried out before the database closes.
    assert.deepEqual(statuses, [201, 503], received);
    const last = received.slice(received.lastIndexOf('HTTP/1.1 '));
    assert.match(last, /^HTTP\/1\.1 503 /);
    assert.match(last, /^retry-after: 1\r$/im);
    assert.match(last, /^content-type: application\/problem\+json/im);
    assert.match(last, /"code":"shutting_down"/);
    const exited = await stopped;
    assert.equal(exited.code, 0, `exited gracefully with status 0 (${JSON.stringify(exited)})`);
  });

  it('worker: connects to Redis, registers as a BullMQ worker, and deregisters on SIGTERM', async () => {
    const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
    const queue = new Queue(QueueName.Lifecycle, { connection: { url: testEnv.redisUrl }, prefix });
    try {
      const worker = startNodeProcess(path.join(BUILD, 'worker.js'), {
        DATABASE_URL: database.url,
        REDIS_URL: testEnv.redisUrl,
        QUEUE_PREFIX: prefix,
        LOG_LEVEL: 'info',
      });
      await worker.waitForLine((line) => line.includes('drover worker connected and consuming'));
      assert.equal((await queue.getWorkers()).length, 1);
      const stopped = await worker.stop('SIGTERM');
      assert.equal(stopped.code, 0, `exited gracefully with status 0 (${JSON.stringify(stopped)})`);
      assert.ok(stopped.ms < 10_000);
      assert.ok(worker.lines().some((line) => line.includes('shutting down')));
      assert.equal((await queue.getWorkers()).length, 0, 'the worker closed its Redis connections');
    } finally {
      await queue.close();
    }
  });
});

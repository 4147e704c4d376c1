import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
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

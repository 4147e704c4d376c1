import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { DroverClient } from '../../src/client';
import { assertWokenByNewTask, enrolledAgent, okOutcome } from '../support/agent-client';
import { startTestApi, TestApi } from '../support/api';
import { waitForOperation } from '../support/operations';
import { startRedisServer, type RedisServer } from '../support/redis-servers';
import { startTestWorker, TestWorker, workerEnv } from '../support/worker';

const USER = 'drover';
const PASSWORD = randomBytes(12).toString('hex');

/**
 * The Redis ACL the README gives an operator for drover, word for word but for the prefix: its keys
 * and its agents' wake-up channels only, no administration and no command that reaches other data.
 */
function droverAcl(prefix: string): string[] {
  return [
    'on',
    `>${PASSWORD}`,
    'resetkeys',
    `~${prefix}:*`,
    'resetchannels',
    `&${prefix}:agent-wake:*`,
    '+@all',
    '-@admin',
    '-@dangerous',
    '+info',
  ];
}

describe('Redis as an ACL user limited to drover’s keys and channels', () => {
  let server: RedisServer | undefined;
  let api: TestApi | undefined;
  let worker: TestWorker | undefined;
  let admin: DroverClient;
  const prefix = `drover-test-${randomBytes(4).toString('hex')}`;

  before(async () => {
    server = await startRedisServer();
    const setup = new Redis({ port: server.port, host: '127.0.0.1', lazyConnect: true });
    await setup.connect();
    await setup.call('ACL', 'SETUSER', USER, ...droverAcl(prefix));
    // Nobody else gets in: drover must do all it does as its own user.
    await setup.call('ACL', 'SETUSER', 'default', 'off');
    setup.disconnect();
    const asDrover = {
      REDIS_URL: `redis://${USER}:${PASSWORD}@127.0.0.1:${server.port}`,
      // The token rate limiter keeps its counters in Redis too (off in the other tests).
      TOKEN_RATE_LIMIT_PER_MINUTE: '600',
    };
    api = await startTestApi({ QUEUE_PREFIX: prefix, ...asDrover });
    worker = await startTestWorker({ ...workerEnv(api.database.url, prefix), ...asDrover });
    admin = await api.client();
  });

  after(async () => {
    await worker?.close();
    await api?.close();
    await server?.kill();
  });

  it('is ready, and an action on an agent host runs from queue to recorded outcome, the agent woken over pub/sub', async () => {
    const ready = await fetch(`${api!.baseUrl}/healthz/ready`);
    assert.equal(ready.status, 200, await ready.text());
    const agent = await enrolledAgent(admin, api!.baseUrl, 'acl-agent');
    const { operationId, task } = await assertWokenByNewTask(admin, agent, 'acl-agent', {
      verb: 'restart',
      unit: 'nginx.service',
    });
    const outcome = okOutcome('nginx.service');
    assert.equal((await agent.attempt(task.taskId, task.attempt, 'clear', { before: outcome.before })).status, 204);
    assert.deepEqual(await agent.result(task.taskId, task.attempt, outcome), { status: 200, body: { recorded: true } });
    const operation = await waitForOperation(admin, operationId);
    assert.equal(operation.status, 'succeeded', JSON.stringify(operation.counts));
  });

  it('keeps the user out of every other key and channel (the limits are real)', async () => {
    const asDrover = new Redis({
      port: server!.port,
      host: '127.0.0.1',
      username: USER,
      password: PASSWORD,
      lazyConnect: true,
    });
    await asDrover.connect();
    try {
      await assert.rejects(asDrover.get('someone-else:key'), /NOPERM/);
      await assert.rejects(asDrover.publish('someone-else:channel', '1'), /NOPERM/);
      await assert.rejects(asDrover.call('CONFIG', 'GET', 'requirepass'), /NOPERM/);
      // The rate limiter lets requests through when Redis refuses it, so its counters are looked for.
      const [, counters] = await asDrover.scan('0', 'MATCH', `${prefix}:rate-limit:token:*`, 'COUNT', 10_000);
      assert.ok(counters.length > 0, 'the admin token’s requests were counted under drover’s prefix');
      assert.ok(Number(await asDrover.get(counters[0]!)) > 0);
    } finally {
      asDrover.disconnect();
    }
  });
});

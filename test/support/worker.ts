import path from 'node:path';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { parseConfig } from '../../src/config/config.schema';
import { createRootLogger, PinoNestLogger } from '../../src/infra/logging/logger';
import { SshExecutor } from '../../src/infra/ssh/ssh-executor';
import { WorkerModule } from '../../src/worker.module';
import { testEnv } from './env';

/**
 * Settings a test worker (in-process or a child process) and its API share: one database, one
 * queue prefix, the fleet's SSH key, and short timeouts so failures show quickly.
 */
export function workerEnv(databaseUrl: string, queuePrefix: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: testEnv.redisUrl,
    QUEUE_PREFIX: queuePrefix,
    SSH_PRIVATE_KEY_PATH: path.join(testEnv.fleetState, 'ssh', 'id_ed25519'),
    SSH_CONNECT_TIMEOUT_MS: '3000',
    SSH_COMMAND_TIMEOUT_MS: '20000',
    JOB_LOCK_DURATION_MS: '3000',
    DISCOVERY_INTERVAL_MS: '0',
    RECONCILE_INTERVAL_MS: '2000',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  };
}

export interface TestWorker {
  app: INestApplicationContext;
  ssh: SshExecutor;
  /** Stops the worker; closing it again waits for the same stop. */
  close(): Promise<void>;
}

/** The real worker (BullMQ consumers, SSH executor) in this process; an undefined variable is unset. */
export async function startTestWorker(env: Record<string, string | undefined>): Promise<TestWorker> {
  const config = parseConfig(env);
  const logger = createRootLogger(config.LOG_LEVEL, { service: 'drover-worker-test' });
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), {
    logger: new PinoNestLogger(logger),
  });
  // Once: a test may stop a worker early and its `after` close every worker it started.
  let closed: Promise<void> | undefined;
  return { app, ssh: app.get(SshExecutor), close: () => (closed ??= app.close()) };
}

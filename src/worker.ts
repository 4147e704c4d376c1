import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { loadConfigOrExit } from './config/load-config';
import { createRootLogger, PinoNestLogger } from './infra/logging/logger';
import { LifecycleProcessor } from './jobs/lifecycle.processor';
import { closeOnSignals } from './infra/shutdown';
import { WorkerModule } from './worker.module';

async function bootstrap(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createRootLogger(config.LOG_LEVEL, { service: 'drover-worker' });
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), {
    logger: new PinoNestLogger(logger.child({ component: 'nest' })),
  });
  closeOnSignals(app, config.SHUTDOWN_TIMEOUT_MS, logger);
  await app.get(LifecycleProcessor).waitUntilReady();
  logger.info(
    { queuePrefix: config.QUEUE_PREFIX, lanes: config.WORKER_LANES },
    'drover worker connected and consuming',
  );
}

bootstrap().catch((error: unknown) => {
  process.stderr.write(`drover-worker: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});

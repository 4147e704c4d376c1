/**
 * drover's worker (src/worker.ts's WorkerModule: the real queue consumers, task runner, dispatcher
 * and rollout runner against the real database and Redis) with one provider replaced: the
 * SshExecutor, by a SimulatedFleet whose hosts answer at once. Started as a child process by
 * bench/control-plane.ts (as startDrover starts dist/src/worker.js), so its CPU and memory are its own.
 */
import 'reflect-metadata';
import { Test } from '@nestjs/testing';
import { loadConfigOrExit } from '../src/config/load-config';
import { createRootLogger, PinoNestLogger } from '../src/infra/logging/logger';
import { closeOnSignals } from '../src/infra/shutdown';
import { SshExecutor } from '../src/infra/ssh/ssh-executor';
import { LifecycleProcessor } from '../src/jobs/lifecycle.processor';
import { WorkerModule } from '../src/worker.module';
import { SimulatedFleet } from './lib/simulated-fleet';

async function bootstrap(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createRootLogger(config.LOG_LEVEL, { service: 'drover-worker' });
  const fleet = new SimulatedFleet();
  const app = await Test.createTestingModule({ imports: [WorkerModule.forRoot(config)] })
    .overrideProvider(SshExecutor)
    .useValue(fleet)
    .setLogger(new PinoNestLogger(logger.child({ component: 'nest' })))
    .compile();
  await app.init();
  closeOnSignals(app, config.SHUTDOWN_TIMEOUT_MS, logger);
  await app.get(LifecycleProcessor).waitUntilReady();
  logger.info({ queuePrefix: config.QUEUE_PREFIX, transport: 'simulated' }, 'drover worker connected and consuming');
}

bootstrap().catch((error: unknown) => {
  process.stderr.write(
    `control-plane worker: failed to start: ${error instanceof Error ? error.stack : String(error)}\n`,
  );
  process.exitCode = 1;
});

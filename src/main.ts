import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module';
import { DRAIN_GRACE_MS, HttpDrain } from './common/http/http-drain';
import { configureHttpApp } from './app.setup';
import { loadConfigOrExit } from './config/load-config';
import { createRootLogger, PinoNestLogger } from './infra/logging/logger';
import { migrate } from './infra/prisma/migrator';
import { closeOnSignals } from './infra/shutdown';

async function bootstrap(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createRootLogger(config.LOG_LEVEL, { service: 'drover-api' });
  if (config.MIGRATE_ON_START) {
    const applied = await migrate(config.DATABASE_URL);
    logger.info({ applied }, applied.length > 0 ? 'applied database migrations' : 'database schema is up to date');
  }
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    logger: new PinoNestLogger(logger.child({ component: 'nest' })),
    bodyParser: false,
  });
  configureHttpApp(app, logger);
  // Half the shutdown's time at most for the changes in flight: the close that follows needs the rest.
  closeOnSignals(app, config.SHUTDOWN_TIMEOUT_MS, logger, () =>
    app.get(HttpDrain).start(app.getHttpServer(), Math.min(DRAIN_GRACE_MS, config.SHUTDOWN_TIMEOUT_MS / 2)),
  );
  // Nest passes every argument on to http.Server.listen(port, host, backlog, callback); its typings omit the backlog.
  const listen = app.listen.bind(app) as unknown as (port: number, host: string, backlog: number) => Promise<unknown>;
  await listen(config.PORT, config.HOST, config.HTTP_LISTEN_BACKLOG);
  logger.info({ url: await app.getUrl() }, 'drover API listening');
}

bootstrap().catch((error: unknown) => {
  process.stderr.write(`drover-api: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});

import { randomBytes } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from '../../src/app.module';
import { configureHttpApp } from '../../src/app.setup';
import { createDroverClient, DroverClient } from '../../src/client';
import { parseConfig } from '../../src/config/config.schema';
import { createRootLogger, PinoNestLogger } from '../../src/infra/logging/logger';
import { PrismaService } from '../../src/infra/prisma/prisma.service';
import { TokensService, type CreateTokenInput } from '../../src/tokens/tokens.service';
import { createTestDatabase, TestDatabase } from './database';
import { testEnv } from './env';

export interface TestApi {
  baseUrl: string;
  database: TestDatabase;
  app: NestExpressApplication;
  prisma: PrismaService;
  /** A client holding a fresh token with the given scopes (admin by default). */
  client(input?: Partial<CreateTokenInput>): Promise<DroverClient>;
  token(input?: Partial<CreateTokenInput>): Promise<string>;
  close(): Promise<void>;
}

let tokenSequence = 0;

/**
 * The real HTTP API on an ephemeral port, over its own migrated database and the real Redis; on
 * 127.0.0.1 unless `listenAddress` is given (e.g. the fleet bridge's, for agents on its hosts).
 * A variable given as undefined is unset (e.g. REDIS_URL, for sentinels instead).
 */
export async function startTestApi(
  env: Record<string, string | undefined> = {},
  listenAddress = '127.0.0.1',
): Promise<TestApi> {
  const database = await createTestDatabase();
  const config = parseConfig({
    DATABASE_URL: database.url,
    REDIS_URL: testEnv.redisUrl,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // Tests poll operations quickly; the limiter has its own tests.
    TOKEN_RATE_LIMIT_PER_MINUTE: '0',
    // Queues of their own, so nothing this API queues meets a demo's or another file's workers.
    QUEUE_PREFIX: `drover-test-${randomBytes(4).toString('hex')}`,
    ...env,
  });
  const logger = createRootLogger(config.LOG_LEVEL, { service: 'drover-api-test' });
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    logger: new PinoNestLogger(logger),
    bodyParser: false,
  });
  configureHttpApp(app, logger);
  await app.listen(0, listenAddress);
  const baseUrl = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  const token = async (input: Partial<CreateTokenInput> = {}) => {
    tokenSequence += 1;
    const created = await app.get(TokensService).create({
      name: `test-${process.pid}-${tokenSequence}`,
      scopes: ['admin'],
      ...input,
    });
    return created.secret;
  };
  return {
    baseUrl,
    database,
    app,
    prisma: app.get(PrismaService),
    token,
    client: async (input) => createDroverClient(baseUrl, await token(input)),
    close: async () => {
      await app.close();
      await database.drop();
    },
  };
}

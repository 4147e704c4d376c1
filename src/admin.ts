import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { NestFactory } from '@nestjs/core';
import { Module } from '@nestjs/common';
import { z } from 'zod';
import { ConfigModule } from './config/config.module';
import { loadConfigOrExit } from './config/load-config';
import { PrismaModule } from './infra/prisma/prisma.module';
import { migrate } from './infra/prisma/migrator';
import { TokenScope } from './tokens/token-scope';
import { TokensModule } from './tokens/tokens.module';
import { TokensService } from './tokens/tokens.service';

const USAGE = `usage:
  drover-admin migrate
      apply pending database migrations
  drover-admin create-token --name NAME [--scope admin|operate|read|audit]... [--expires-in-days N]
      create an API token and print its secret (shown this once only)`;

const createTokenArgs = z.object({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, { error: '--name must be 1-100 characters [A-Za-z0-9._-]' }),
  scope: z.array(z.enum(Object.values(TokenScope))).default(['admin']),
  'expires-in-days': z.coerce.number().int().min(1).max(3650).optional(),
});

async function createToken(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      name: { type: 'string' },
      scope: { type: 'string', multiple: true },
      'expires-in-days': { type: 'string' },
    },
  });
  const parsed = createTokenArgs.safeParse(values);
  if (!parsed.success) throw new UsageError(parsed.error.issues.map((issue) => issue.message).join('; '));
  const config = loadConfigOrExit();

  @Module({ imports: [ConfigModule.forRoot(config), PrismaModule, TokensModule] })
  class AdminModule {}

  const app = await NestFactory.createApplicationContext(AdminModule, { logger: ['error'] });
  try {
    const days = parsed.data['expires-in-days'];
    const token = await app.get(TokensService).create({
      name: parsed.data.name,
      scopes: parsed.data.scope,
      expiresAt: days === undefined ? null : new Date(Date.now() + days * 86_400_000),
    });
    process.stderr.write(`created token '${token.name}' (${token.id}); its secret is shown only now:\n`);
    process.stdout.write(`${token.secret}\n`);
  } finally {
    await app.close();
  }
}

class UsageError extends Error {}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'migrate') {
    const config = loadConfigOrExit();
    const applied = await migrate(config.DATABASE_URL);
    process.stdout.write(applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'database schema is up to date\n');
  } else if (command === 'create-token') {
    await createToken(rest);
  } else {
    throw new UsageError(command ? `unknown command '${command}'` : 'a command is required');
  }
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`drover-admin: ${message}\n`);
  if (error instanceof UsageError) process.stderr.write(`${USAGE}\n`);
  process.exitCode = error instanceof UsageError ? 64 : 1;
});

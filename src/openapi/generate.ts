import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NestFactory } from '@nestjs/core';
import { AppModule } from '../app.module';
import { parseConfig } from '../config/config.schema';
import { buildOpenApiDocument, serializeOpenApiDocument } from '../common/openapi/openapi-document';
import { version } from '../../package.json';

/**
 * Writes openapi.json from the code. Runs the app in preview mode: controllers and routes are
 * scanned but no provider is instantiated, so no database or Redis is needed.
 */
async function main(): Promise<void> {
  const output = path.resolve(process.argv[2] ?? 'openapi.json');
  const config = parseConfig({ DATABASE_URL: 'postgresql://unused/unused', REDIS_URL: 'redis://unused' });
  const app = await NestFactory.create(AppModule.forRoot(config), { preview: true, logger: false });
  await writeFile(output, serializeOpenApiDocument(buildOpenApiDocument(app, version)));
  await app.close();
  process.stdout.write(`wrote ${output}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`openapi: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});

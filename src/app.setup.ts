import type { NestExpressApplication } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import type { Logger } from 'pino';
import { version } from '../package.json';
import { isAgentPoll } from './agents/agent-channel.controller';
import { HttpDrain } from './common/http/http-drain';
import { accessLog } from './infra/logging/access-log';
import { buildOpenApiDocument } from './common/openapi/openapi-document';
import { APP_CONFIG } from './config/config.module';
import type { AppConfig } from './config/config.schema';
import { dashboardMiddleware } from './ui/dashboard-static';

/**
 * HTTP concerns around the Nest app: how long idle connections stay open, request ids and
 * access logs, the generated OpenAPI document at /openapi.json and its reference page at /docs,
 * the web dashboard at /ui. Shared by main.ts and tests.
 */
export function configureHttpApp(app: NestExpressApplication, logger: Logger): void {
  const server = app.getHttpServer();
  server.keepAliveTimeout = app.get<AppConfig>(APP_CONFIG).HTTP_KEEP_ALIVE_TIMEOUT_MS;
  // No body parser here: middleware runs before the bearer guard, so it would read and parse the
  // bodies of callers without a token. JsonBodyInterceptor reads them once the guard let them in.
  app.use(accessLog(logger, (request) => request.method === 'GET' && isAgentPoll(request.url)));
  app.use(app.get(HttpDrain).refuseWhileDraining);
  app.use('/ui', dashboardMiddleware());
  const document = buildOpenApiDocument(app, version);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'openapi.json', customSiteTitle: 'drover API' });
}

import type { NestExpressApplication } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { version } from '../package.json';
import { requestIdFor } from './infra/logging/request-id';
import { buildOpenApiDocument } from './common/openapi/openapi-document';
import { dashboardMiddleware } from './ui/dashboard-static';

/**
 * HTTP concerns around the Nest app: request ids and access logs, the generated
 * OpenAPI document at /openapi.json and its reference page at /docs, the web dashboard at /ui.
 * Shared by main.ts and tests.
 */
export function configureHttpApp(app: NestExpressApplication, logger: Logger): void {
  // No body parser here: middleware runs before the bearer guard, so it would read and parse the
  // bodies of callers without a token. JsonBodyInterceptor reads them once the guard let them in.
  app.use(
    pinoHttp({
      logger,
      genReqId: (request, response) => {
        const id = requestIdFor(request);
        response.setHeader('X-Request-Id', id);
        return id;
      },
      // A top-level requestId on every access-log line, so one filter finds a request's lines.
      customProps: (request) => ({ requestId: request.id }),
      customLogLevel: (_request, response, error) =>
        error || response.statusCode >= 500 ? 'error' : response.statusCode >= 400 ? 'warn' : 'info',
      autoLogging: { ignore: (request) => request.url?.startsWith('/healthz') ?? false },
    }),
  );
  app.use('/ui', dashboardMiddleware());
  const document = buildOpenApiDocument(app, version);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'openapi.json', customSiteTitle: 'drover API' });
}

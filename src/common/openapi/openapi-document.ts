import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { AGENT_OPERATION_EXTENSION, PUBLIC_OPERATION_EXTENSION } from '../auth/auth.decorators';
import { addZodComponents } from './zod-openapi';

const API_DESCRIPTION = [
  'drover controls systemd services across a fleet of Linux hosts.',
  '',
  'Every endpoint except `/healthz/*` and `/agent/v1/*` needs `Authorization: Bearer <token>`.',
  'The per-host agent enrols with a one-time join token and then calls `/agent/v1/*` with its own short-lived credential.',
  'Errors are `application/problem+json` with a stable `code`, the offending `errors[].field`s and the `requestId`.',
  'Any operation may answer 503 `database_unavailable` with `Retry-After` when the database cannot serve it in time (overloaded or unreachable): retry it; a rollout retried with the same `Idempotency-Key` is created at most once.',
  'A request reaching an API process that is shutting down is answered 503 `shutting_down` with `Retry-After` (and the connection closed): retry it, on another replica or once this one is back.',
  'Lists use keyset pagination: pass `nextCursor` back as `cursor`.',
].join('\n');

const BEARER = 'bearer';
const AGENT_CREDENTIAL = 'agentCredential';

/**
 * Operations of @Public routes need no token and those of agent routes an agent credential: they
 * override the document-wide requirement.
 */
function markPublicOperations(document: OpenAPIObject): OpenAPIObject {
  for (const pathItem of Object.values(document.paths)) {
    for (const operation of Object.values(pathItem) as Record<string, unknown>[]) {
      if (!operation || typeof operation !== 'object') continue;
      if (AGENT_OPERATION_EXTENSION in operation) {
        delete operation[AGENT_OPERATION_EXTENSION];
        operation.security = [{ [AGENT_CREDENTIAL]: [] }];
      } else if (PUBLIC_OPERATION_EXTENSION in operation) {
        delete operation[PUBLIC_OPERATION_EXTENSION];
        operation.security = [];
      }
    }
  }
  return document;
}

/** Generates the OpenAPI document from the controllers and DTO schemas (never written by hand). */
export function buildOpenApiDocument(app: INestApplication, version: string): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('drover API')
    .setDescription(API_DESCRIPTION)
    .setVersion(version)
    .setLicense('Apache-2.0', 'https://www.apache.org/licenses/LICENSE-2.0')
    .addServer('/', 'This drover API server')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'An API token (drv_...)' }, BEARER)
    .addBearerAuth(
      { type: 'http', scheme: 'bearer', description: 'A per-host agent’s short-lived credential (dra_...)' },
      AGENT_CREDENTIAL,
    )
    .addSecurityRequirements(BEARER)
    .build();
  const document = SwaggerModule.createDocument(app, config, {
    operationIdFactory: (_controller, method) => method,
  });
  return markPublicOperations(addZodComponents(document));
}

/** Stable serialisation, so regenerating an unchanged API gives a byte-identical file. */
export function serializeOpenApiDocument(document: OpenAPIObject): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}

import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { SelectorSyntaxError } from '@drover/protocol';
import { DomainError } from './domain-errors';
import type { Principal } from '../auth/principal';
import { type ProblemParts, sendProblem } from './problem';
import { RefusalRecorder } from './refusal-recorder';
import { isDatabaseUnavailable } from './database-unavailable';
import { HttpDrain, SHUTTING_DOWN, SHUTTING_DOWN_RETRY_AFTER_SECONDS } from '../http/http-drain';

/** What a client is told to wait before retrying a request the database could not serve in time. */
const DATABASE_RETRY_AFTER_SECONDS = 2;

/** Maps every error to an RFC 9457 problem+json response with a stable code and the request id. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger(ProblemFilter.name);

  constructor(
    private readonly refusals: RefusalRecorder,
    private readonly drain: HttpDrain,
  ) {}

  async catch(exception: unknown, host: ArgumentsHost): Promise<void> {
    const http = host.switchToHttp();
    const request = http.getRequest<Request & { id?: string; principal?: Principal }>();
    const response = http.getResponse<Response>();
    const described = this.describe(exception);
    // Once the API is stopping, a server error is the stop's doing (it closed the connections the
    // request needed), not a fault of the request: the client is told to ask again.
    const parts = described.status >= 500 && this.drain.draining ? SHUTTING_DOWN : described;
    if (parts.status === 403 && request.principal) await this.recordDenial(request, request.principal, parts.detail);
    if (parts.code === 'shutting_down') {
      this.logger.warn({ err: exception, path: request.originalUrl.split('?')[0] }, 'a request failed during shutdown');
      response.setHeader('Retry-After', String(SHUTTING_DOWN_RETRY_AFTER_SECONDS));
    } else if (parts.code === 'database_unavailable') {
      // The database's load or absence, not this request's fault: a warning, and a retry hint.
      this.logger.warn({ err: exception, path: request.originalUrl.split('?')[0] }, parts.detail);
      response.setHeader('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS));
    } else if (parts.status >= 500) {
      this.logger.error(exception instanceof Error ? exception : String(exception), (exception as Error)?.stack);
    }
    // A refusal sent before the body arrived (no token, body too large): close the connection after
    // answering, instead of letting Node read and discard megabytes to keep it alive.
    if (!request.complete) response.setHeader('Connection', 'close');
    sendProblem(request, response, parts);
  }

  private async recordDenial(request: Request & { id?: string }, principal: Principal, reason: string): Promise<void> {
    try {
      await this.refusals.record({
        principal,
        requestId: request.id ?? null,
        sourceAddress: request.ip ?? null,
        method: request.method,
        path: request.originalUrl.split('?')[0] ?? '',
        reason,
      });
    } catch (error) {
      this.logger.error({ err: error }, 'could not record a refused request in the audit trail');
    }
  }

  private describe(exception: unknown): ProblemParts {
    // A selector that does not parse is the caller's mistake wherever it is read (the protocol's
    // parser, shared with the dashboard, cannot extend DomainError).
    if (exception instanceof DomainError || exception instanceof SelectorSyntaxError) {
      const { status, code, title, message, errors } = exception;
      return { status, code, title, detail: message, errors };
    }
    if (exception instanceof HttpException) {
      return this.describeHttpException(exception);
    }
    if (isDatabaseUnavailable(exception)) {
      return {
        status: HttpStatus.SERVICE_UNAVAILABLE,
        code: 'database_unavailable',
        title: 'Service unavailable',
        detail:
          'the database could not serve this request in time (overloaded or unreachable); retry after Retry-After seconds',
        errors: [],
      };
    }
    return {
      status: HttpStatus.INTERNAL_SERVER_ERROR,
      code: 'internal_error',
      title: 'Internal error',
      detail: 'an unexpected error occurred; the request id identifies it in the server logs',
      errors: [],
    };
  }

  /** Errors raised by the framework itself: unknown route, unparsable JSON, body too large. */
  private describeHttpException(exception: HttpException): ProblemParts {
    const status = exception.getStatus();
    const body = exception.getResponse();
    const message =
      typeof body === 'object' && body !== null && 'message' in body ? String(body.message) : exception.message;
    const code =
      status === 404
        ? 'route_not_found'
        : status === 413
          ? 'payload_too_large'
          : status === 400
            ? 'malformed_request'
            : `http_${status}`;
    const title = HttpStatus[status]?.toString().replaceAll('_', ' ').toLowerCase() ?? 'error';
    const errors = status === 400 ? [{ field: '(body)', message }] : [];
    return { status, code, title: title[0]?.toUpperCase() + title.slice(1), detail: message, errors };
  }
}

import { CallHandler, ExecutionContext, Inject, Injectable, NestInterceptor, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, RequestHandler, Response } from 'express';
import { json } from 'express';
import type { Observable } from 'rxjs';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { MalformedBodyError, PayloadTooLargeError } from '../errors/domain-errors';

const LARGE_BODY = 'drover:large-body';

/** Lets a route take a body up to BULK_JSON_BODY_LIMIT_BYTES instead of JSON_BODY_LIMIT_BYTES. */
export const AcceptsLargeBody = () => SetMetadata(LARGE_BODY, true);

interface BodyParserError {
  status?: number;
  type?: string;
  message: string;
}

/**
 * Reads and parses JSON bodies. An interceptor, so it runs after the bearer guard: a caller
 * without a valid token is answered 401 before a byte of its body is read or parsed (with the
 * body parser as middleware, anyone could make the API buffer and parse 16 MiB per request).
 */
@Injectable()
export class JsonBodyInterceptor implements NestInterceptor {
  private readonly parsers: {
    small: { parse: RequestHandler; limit: number };
    large: { parse: RequestHandler; limit: number };
  };

  constructor(
    private readonly reflector: Reflector,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    const parser = (limit: number) => ({ parse: json({ limit }), limit });
    this.parsers = { small: parser(config.JSON_BODY_LIMIT_BYTES), large: parser(config.BULK_JSON_BODY_LIMIT_BYTES) };
  }

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const large = this.reflector.getAllAndOverride<boolean>(LARGE_BODY, [context.getHandler(), context.getClass()]);
    const { parse, limit } = large ? this.parsers.large : this.parsers.small;
    const http = context.switchToHttp();
    await new Promise<void>((resolve, reject) => {
      parse(http.getRequest<Request>(), http.getResponse<Response>(), (error?: unknown) => {
        if (error === undefined || error === null) resolve();
        else reject(describeParserError(error as BodyParserError, limit));
      });
    });
    return next.handle();
  }
}

function describeParserError(error: BodyParserError, limit: number): Error {
  if (error.type === 'entity.too.large') return new PayloadTooLargeError(limit);
  if (error.status !== undefined && error.status < 500) return new MalformedBodyError(error.message);
  return error instanceof Error ? error : new Error(error.message);
}

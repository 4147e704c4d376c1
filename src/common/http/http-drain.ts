import type { Server } from 'node:http';
import { Injectable } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import type { Problem } from '../errors/problem';

/** What a client is told to wait before asking again (another replica, or this one restarted). */
export const SHUTTING_DOWN_RETRY_AFTER_SECONDS = 1;
export const SHUTTING_DOWN_DETAIL =
  'this API process is shutting down; retry after Retry-After seconds (another replica, or this one once it is back)';

/**
 * The API's stop as its clients see it. Nest closes the database and Redis connections before the
 * HTTP server, so a request arriving in between, or caught by it, failed with a 500 ("Connection is
 * closed"). From the signal on, the server accepts no connection and closes its idle kept-alive
 * ones; a request still arriving on an open one is answered 503 `shutting_down` with Retry-After,
 * and so is one whose handler fails meanwhile (the stop pulled its connections from under it).
 */
@Injectable()
export class HttpDrain {
  private stopping = false;

  get draining(): boolean {
    return this.stopping;
  }

  /** Called on SIGTERM/SIGINT, before the app closes. */
  start(server: Server): void {
    if (this.stopping) return;
    this.stopping = true;
    server.close();
    server.closeIdleConnections();
  }

  /** Express middleware, ahead of the routes: refuses requests once the drain started. */
  readonly refuseWhileDraining = (request: Request & { id?: string }, response: Response, next: NextFunction) => {
    if (!this.stopping) {
      next();
      return;
    }
    const problem: Problem = {
      type: 'urn:drover:problem:shutting_down',
      title: 'Service unavailable',
      status: 503,
      detail: SHUTTING_DOWN_DETAIL,
      instance: request.originalUrl.split('?')[0] ?? request.originalUrl,
      code: 'shutting_down',
      requestId: String(request.id ?? ''),
      errors: [],
    };
    response.setHeader('Retry-After', String(SHUTTING_DOWN_RETRY_AFTER_SECONDS));
    response.setHeader('Connection', 'close');
    response.status(503).type('application/problem+json').send(JSON.stringify(problem));
  };
}

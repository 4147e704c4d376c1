import type { Server } from 'node:http';
import { HttpStatus, Injectable } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { type ProblemParts, sendProblem } from '../errors/problem';

/** What a client is told to wait before asking again (another replica, or this one restarted). */
export const SHUTTING_DOWN_RETRY_AFTER_SECONDS = 1;
/** The answer to a request the stopping API cannot serve. */
export const SHUTTING_DOWN: ProblemParts = {
  status: HttpStatus.SERVICE_UNAVAILABLE,
  code: 'shutting_down',
  title: 'Service unavailable',
  detail:
    'this API process is shutting down; retry after Retry-After seconds (another replica, or this one once it is back)',
  errors: [],
};

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
    response.setHeader('Retry-After', String(SHUTTING_DOWN_RETRY_AFTER_SECONDS));
    response.setHeader('Connection', 'close');
    sendProblem(request, response, SHUTTING_DOWN);
  };
}

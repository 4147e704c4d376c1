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

/** The longest a stopping API waits for the changes in flight before it closes its connections. */
export const DRAIN_GRACE_MS = 5_000;
/** Reads (and event streams, long polls) change nothing: the drain does not wait for them. */
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The API's stop as its clients see it. Nest closes the database and Redis connections before the
 * HTTP server, so a request arriving in between, or caught by it, failed with a 500 ("Connection is
 * closed"). From the signal on, the server accepts no connection and closes its idle kept-alive
 * ones; a request still arriving on an open one is answered 503 `shutting_down` with Retry-After.
 * Changes already let in (every method but reads) are waited for, up to a grace period, before the
 * connections close, so a write whose body was still arriving at the signal is carried out rather
 * than cut off; one still running after the grace period, and any read, is answered 503 if its
 * handler fails meanwhile (the stop pulled its connections from under it).
 */
@Injectable()
export class HttpDrain {
  private stopping = false;
  /** Changes let in and not answered yet. */
  private changesInFlight = 0;
  private lastChangeAnswered: (() => void) | null = null;

  get draining(): boolean {
    return this.stopping;
  }

  /**
   * Called on SIGTERM/SIGINT, before the app closes: resolves once every change let in before the
   * signal was answered, or after `graceMs`.
   */
  start(server: Server, graceMs: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    this.stopping = true;
    server.close();
    server.closeIdleConnections();
    if (this.changesInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const grace = setTimeout(resolve, graceMs);
      this.lastChangeAnswered = () => {
        clearTimeout(grace);
        resolve();
      };
    });
  }

  /** Express middleware, ahead of the routes: counts the changes it lets in, refuses requests once the drain started. */
  readonly refuseWhileDraining = (request: Request & { id?: string }, response: Response, next: NextFunction) => {
    if (!this.stopping) {
      if (!READS.has(request.method)) {
        this.changesInFlight += 1;
        response.once('close', () => {
          this.changesInFlight -= 1;
          if (this.changesInFlight === 0) this.lastChangeAnswered?.();
        });
      }
      next();
      return;
    }
    response.setHeader('Retry-After', String(SHUTTING_DOWN_RETRY_AFTER_SECONDS));
    response.setHeader('Connection', 'close');
    sendProblem(request, response, SHUTTING_DOWN);
  };
}

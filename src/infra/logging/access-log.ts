import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Level, Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { requestIdFor } from './request-id';

const IDLE = Symbol('drover:idle-answer');

type Marked = IncomingMessage & { [IDLE]?: true; id?: unknown };

/**
 * Leaves a request out of the access log: its answer says nothing happened (an agent's long poll that
 * ended with no command). Only for requests `accessLog` was told to hold (`heldUntilAnswered`).
 */
export function markIdleAnswer(request: IncomingMessage): void {
  (request as Marked)[IDLE] = true;
}

function levelOf(response: ServerResponse, error?: Error): Level {
  return error || response.statusCode >= 500 ? 'error' : response.statusCode >= 400 ? 'warn' : 'info';
}

/**
 * The access log: one JSON line per request (pino-http), with the request id as the X-Request-Id
 * response header and a top-level `requestId`; /healthz is not logged.
 *
 * Requests `heldUntilAnswered` matches (agents' long polls: 10,000 agents make hundreds a second,
 * each held for up to 25 s) are logged only once answered, and not at all when marked idle: pino-http
 * serializes every request when it arrives (a child logger per request, kept while it is held),
 * which was a tenth of the API's CPU under 10,000 idle agents (bench/results/agent.md). Their line,
 * when written, is pino-http's: its logger (serializers, redaction), the same fields and messages.
 */
export function accessLog(
  logger: Logger,
  heldUntilAnswered: (request: IncomingMessage) => boolean,
): (request: IncomingMessage, response: ServerResponse, next: () => void) => void {
  const genReqId = (request: IncomingMessage, response: ServerResponse): string => {
    const id = requestIdFor(request);
    response.setHeader('X-Request-Id', id);
    return id;
  };
  const everyRequest = pinoHttp({
    logger,
    genReqId,
    // A top-level requestId on every access-log line, so one filter finds a request's lines.
    customProps: (request) => ({ requestId: request.id }),
    customLogLevel: (_request, response, error) => levelOf(response, error),
    autoLogging: { ignore: (request) => request.url?.startsWith('/healthz') ?? false },
  });
  return (request: Marked, response, next) => {
    if (!heldUntilAnswered(request)) {
      everyRequest(request, response, next);
      return;
    }
    request.id = genReqId(request, response);
    // Read while the connection is up: the socket keeps its peer's address for the line written at
    // the end, when an agent that went away has closed it (pino-http reads it on arrival).
    void request.socket.remoteAddress;
    const startedAt = Date.now();
    const answered = (): void => {
      response.off('finish', answered);
      response.off('close', answered);
      if (request[IDLE] && response.writableEnded && response.statusCode < 400) return;
      const [req, requestId, res, responseTime] = [request, request.id, response, Date.now() - startedAt];
      if (response.statusCode >= 500) {
        const err = new Error(`failed with status code ${response.statusCode}`);
        everyRequest.logger.error({ req, requestId, res, err, responseTime }, 'request errored');
      } else {
        const completed = !request.readableAborted && response.writableEnded;
        const message = completed ? 'request completed' : 'request aborted';
        everyRequest.logger[levelOf(response)]({ req, requestId, res, responseTime }, message);
      }
    };
    response.on('finish', answered);
    response.on('close', answered);
    next();
  };
}

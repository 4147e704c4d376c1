import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { accessLog, markIdleAnswer } from './access-log';

interface Line {
  level: number;
  msg: string;
  requestId: string;
  req: { id: string; method: string; url: string; headers: Record<string, string>; remoteAddress?: string };
  res: { statusCode: number };
  err?: { message: string };
  responseTime: number;
}

const lines: Line[] = [];
const sink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    lines.push(JSON.parse(chunk.toString()) as Line);
    done();
  },
});
const log = accessLog(
  pino({ redact: { paths: ['req.headers.authorization'], censor: '[redacted]' } }, sink),
  (request) => request.url?.startsWith('/held') ?? false,
);

/**
 * Answers with the status in the path (/held/403, /other/200), marked idle when ?idle is asked;
 * never answers /held/never (its caller goes away).
 */
function answer(request: IncomingMessage & { id?: unknown }, response: ServerResponse): void {
  log(request, response, () => {
    if (request.url === '/held/never') return void heldArrived();
    if (request.url?.includes('idle')) markIdleAnswer(request);
    response.statusCode = Number(/\/(\d{3})/.exec(request.url ?? '')?.[1] ?? 200);
    response.end(JSON.stringify({ id: request.id }));
  });
}

/** Called when /held/never reached the handler. */
let heldArrived = (): void => undefined;
let server: Server;
let base: string;

async function get(path: string): Promise<{ requestId: string | null; lines: Line[] }> {
  const before = lines.length;
  const response = await fetch(`${base}${path}`, { headers: { authorization: 'Bearer secret' } });
  await response.text();
  // The line is written on the response's finish, which may come after the client has the body.
  await new Promise((resolve) => setImmediate(resolve));
  return { requestId: response.headers.get('x-request-id'), lines: lines.slice(before) };
}

describe('accessLog', () => {
  before(async () => {
    server = createServer(answer);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('logs every request once, with its id as X-Request-Id and requestId, the authorization redacted', async () => {
    const { requestId, lines: logged } = await get('/other/200');
    assert.equal(logged.length, 1);
    const [line] = logged;
    assert.equal(line!.requestId, requestId);
    assert.equal(line!.req.id, requestId);
    assert.equal(line!.req.headers.authorization, '[redacted]');
    assert.equal(line!.res.statusCode, 200);
    assert.equal(line!.msg, 'request completed');
    assert.equal((await get('/healthz/live')).lines.length, 0);
  });

  it('writes a held request that was not idle as it writes any other (the same fields, levels and messages)', async () => {
    const plain = (await get('/other/404')).lines[0]!;
    const { requestId, lines: logged } = await get('/held/404');
    assert.equal(logged.length, 1);
    const held = logged[0]!;
    assert.deepEqual(Object.keys(held), Object.keys(plain));
    assert.deepEqual(Object.keys(held.req), Object.keys(plain.req));
    assert.equal(held.requestId, requestId);
    assert.equal(held.req.url, '/held/404');
    assert.equal(held.req.headers.authorization, '[redacted]');
    assert.deepEqual([held.level, held.msg, held.res.statusCode], [plain.level, plain.msg, 404]);

    const failed = (await get('/held/500')).lines;
    assert.deepEqual(
      failed.map((line) => [line.level, line.msg, line.err?.message]),
      [[50, 'request errored', 'failed with status code 500']],
    );
    assert.equal((await get('/held/200')).lines[0]?.msg, 'request completed');
  });

  it('writes a held request its caller left before the answer as aborted, with the caller’s address', async () => {
    const before = lines.length;
    const arrived = new Promise<void>((resolve) => (heldArrived = resolve));
    // A connection of its own (no keep-alive socket whose address was read by an earlier request).
    const asked = httpRequest(`${base}/held/never`, { agent: false });
    asked.on('error', () => undefined);
    asked.end();
    await arrived;
    asked.destroy();
    while (lines.length === before) await new Promise((resolve) => setImmediate(resolve));
    const [line] = lines.slice(before);
    assert.equal(line!.msg, 'request aborted');
    assert.equal(line!.req.url, '/held/never');
    assert.equal(line!.req.remoteAddress, '127.0.0.1');
  });

  it('leaves out a held request answered idle, but not an idle-marked one that failed', async () => {
    const idle = await get('/held/200?idle');
    assert.equal(idle.lines.length, 0);
    assert.ok(idle.requestId, 'it still has a request id');
    assert.equal((await get('/held/403?idle')).lines[0]?.res.statusCode, 403);
    // Only held requests are left out: a marked request on another route is still logged.
    assert.equal((await get('/other/200?idle')).lines.length, 1);
  });
});

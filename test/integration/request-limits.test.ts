import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { buildHost, buildHosts } from '../factories/host.factory';
import { startTestApi, TestApi } from '../support/api';
import type { Problem } from '../support/problems';

const MiB = 1_048_576;

interface RawExchange {
  status: number;
  headers: string;
  /** Body bytes the client had written when the server's answer arrived. */
  bytesSentBeforeAnswer: number;
  /** Whether the server ended the connection after answering. */
  closedByServer: boolean;
}

/**
 * Announces a body of `declaredBytes` but sends only its first 64 KiB, then waits: an API that
 * reads bodies before checking the token never answers (it waits for the rest).
 */
function postPartialBody(baseUrl: string, path: string, declaredBytes: number, authorization?: string) {
  const { hostname, port } = new URL(baseUrl);
  return new Promise<RawExchange>((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let received = '';
    let bytesSent = 0;
    let answer: Omit<RawExchange, 'closedByServer'> | null = null;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within 10 s (received ${JSON.stringify(received.slice(0, 200))})`));
    }, 10_000);
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const headerEnd = received.indexOf('\r\n\r\n');
      if (answer === null && headerEnd > 0) {
        answer = {
          status: Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1]),
          headers: received.slice(0, headerEnd).toLowerCase(),
          bytesSentBeforeAnswer: bytesSent,
        };
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (answer) resolve({ ...answer, closedByServer: true });
      else reject(new Error('connection closed without an answer'));
    });
    socket.on('connect', () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${declaredBytes}\r\n${authorization ? `Authorization: ${authorization}\r\n` : ''}\r\n`,
      );
      const start = Buffer.from(`{"hosts":[${' '.repeat(64 * 1024)}`);
      bytesSent = start.length;
      socket.write(start);
    });
  });
}

describe('request bodies', () => {
  let api: TestApi;
  let token: string;

  before(async () => {
    api = await startTestApi();
    token = await api.token();
  });
  after(() => api.close());

  it('answers 401 to an unauthenticated multi-MB body without reading it, and closes the connection', async () => {
    for (const authorization of [undefined, `Bearer drv_${'x'.repeat(43)}`, 'Bearer not-a-token']) {
      const exchange = await postPartialBody(api.baseUrl, '/v1/hosts/bulk-upsert', 8 * MiB, authorization);
      assert.equal(exchange.status, 401, `${authorization}: ${exchange.headers}`);
      assert.match(exchange.headers, /content-type: application\/problem\+json/);
      assert.match(exchange.headers, /connection: close/);
      assert.ok(exchange.bytesSentBeforeAnswer < MiB, 'answered with most of the body never sent');
      assert.equal(exchange.closedByServer, true);
    }
  });

  it('refuses an authenticated body over the default limit with 413 problem+json naming the body', async () => {
    const host = buildHost();
    const oversized = JSON.stringify({ ...host, pad: 'x'.repeat(300 * 1024) });
    const response = await fetch(`${api.baseUrl}/v1/hosts`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: oversized,
    });
    assert.equal(response.status, 413);
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const problem = (await response.json()) as Problem;
    assert.equal(problem.code, 'payload_too_large');
    assert.deepEqual(
      problem.errors.map((error) => error.field),
      ['(body)'],
    );
  });

  it('still takes a multi-MB bulk upsert, the one route with the large limit', async () => {
    const hosts = buildHosts(6000, () => ({ labels: { bulk: 'limits', a: 'y'.repeat(60), b: 'z'.repeat(60) } }));
    const body = JSON.stringify({ hosts });
    assert.ok(body.length > 1.5 * MiB, `${body.length} bytes`);
    const response = await fetch(`${api.baseUrl}/v1/hosts/bulk-upsert`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body,
    });
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { created: number }).created, 6000);
  });
});

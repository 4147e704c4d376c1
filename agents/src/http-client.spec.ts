import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { bypassesProxy, HttpClient, proxyFor } from './http-client';

const HTTPS_SERVER = new URL('https://drover.example.com:8443');
const HTTP_SERVER = new URL('http://drover.example.com');

describe('proxyFor', () => {
  it('takes https_proxy, HTTPS_PROXY, http_proxy, HTTP_PROXY for an https server, in that order', () => {
    const all = {
      https_proxy: 'http://lower-https:1',
      HTTPS_PROXY: 'http://upper-https:2',
      http_proxy: 'http://lower-http:3',
      HTTP_PROXY: 'http://upper-http:4',
    };
    assert.equal(proxyFor(HTTPS_SERVER, all)?.host, 'lower-https:1');
    assert.equal(proxyFor(HTTPS_SERVER, { ...all, https_proxy: undefined })?.host, 'upper-https:2');
    assert.equal(proxyFor(HTTPS_SERVER, { ...all, https_proxy: '', HTTPS_PROXY: ' ' })?.host, 'lower-http:3');
    assert.equal(proxyFor(HTTPS_SERVER, { HTTP_PROXY: 'http://upper-http:4' })?.host, 'upper-http:4');
    assert.equal(proxyFor(HTTPS_SERVER, {}), null);
  });

  it('never takes an HTTPS_PROXY for an http server', () => {
    assert.equal(proxyFor(HTTP_SERVER, { HTTPS_PROXY: 'http://upper-https:2' }), null);
    assert.equal(proxyFor(HTTP_SERVER, { HTTPS_PROXY: 'http://a:2', http_proxy: 'http://b:3' })?.host, 'b:3');
  });

  it('reads a proxy without a scheme as http://, and refuses other schemes', () => {
    assert.equal(proxyFor(HTTPS_SERVER, { HTTPS_PROXY: 'proxy.corp:3128' })?.href, 'http://proxy.corp:3128/');
    assert.throws(() => proxyFor(HTTPS_SERVER, { HTTPS_PROXY: 'socks5://proxy.corp:1080' }), /neither http/);
  });

  it('goes straight to a server NO_PROXY (or no_proxy, read first) covers', () => {
    const proxy = { HTTPS_PROXY: 'http://proxy:3128' };
    assert.equal(proxyFor(HTTPS_SERVER, { ...proxy, NO_PROXY: 'example.com' }), null);
    assert.equal(
      proxyFor(HTTPS_SERVER, { ...proxy, no_proxy: 'other.org', NO_PROXY: 'example.com' })?.host,
      'proxy:3128',
    );
  });
});

describe('bypassesProxy', () => {
  const cases: [string, string, boolean][] = [
    ['https://drover.example.com', '*', true],
    ['https://drover.example.com', 'drover.example.com', true],
    ['https://drover.example.com', 'example.com', true],
    ['https://drover.example.com', '.example.com', true],
    ['https://drover.example.com', '*.example.com', true],
    ['https://drover.example.com', 'DROVER.Example.COM', true],
    ['https://drover.example.com', 'ample.com', false],
    ['https://drover.example.com', 'drover.example.co', false],
    ['https://drover.example.com', 'other.org, example.com', true],
    ['https://drover.example.com', 'other.org example.com', true],
    ['https://drover.example.com', 'example.com:443', true],
    ['https://drover.example.com', 'example.com:8443', false],
    ['https://drover.example.com:8443', 'example.com:8443', true],
    ['http://10.0.0.5:8080', '10.0.0.5', true],
    ['http://10.0.0.5:8080', '10.0.0.6', false],
    ['http://127.0.0.1:8080', '0.0.1', false],
    ['http://[fd00::5]:8080', 'fd00::5', true],
    ['http://[fd00::5]:8080', '[fd00::5]:8080', true],
    ['http://[fd00::5]:8080', '[fd00::5]:80', false],
    ['https://drover.example.com', '', false],
  ];
  for (const [target, noProxy, bypassed] of cases) {
    it(`${bypassed ? 'bypasses' : 'proxies'} ${target} for NO_PROXY=${JSON.stringify(noProxy)}`, () => {
      assert.equal(bypassesProxy(new URL(target), noProxy), bypassed);
    });
  }
});

/** A server on loopback; returns its port. */
async function listening(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

describe('HttpClient', () => {
  it('ends a request at its abort while the proxy has not opened the tunnel yet', async () => {
    // A proxy that takes the connection and never answers CONNECT.
    const silent = net.createServer(() => undefined);
    const proxyPort = await listening(silent);
    const client = new HttpClient(HTTPS_SERVER, {}, { HTTPS_PROXY: `http://127.0.0.1:${proxyPort}` });
    try {
      await assert.rejects(
        client.request(`${HTTPS_SERVER.origin}/agent/v1/heartbeat`, {
          method: 'GET',
          headers: {},
          signal: AbortSignal.timeout(200),
        }),
        // The request's own abort, not the 30 s a proxy has to open a tunnel.
        (error: Error) => ['AbortError', 'TimeoutError'].includes(error.name),
      );
    } finally {
      await client.close();
      silent.close();
    }
  });

  it('keeps a request that takes longer than a kept-alive connection may idle', async () => {
    const slow = http.createServer((_request, response) => {
      setTimeout(() => response.writeHead(200).end('late'), 5_000);
    });
    const port = await listening(slow);
    const client = new HttpClient(new URL(`http://127.0.0.1:${port}`), {}, {});
    try {
      const answer = await client.request(`http://127.0.0.1:${port}/slow`, {
        method: 'GET',
        headers: {},
        signal: AbortSignal.timeout(20_000),
      });
      assert.deepEqual(answer, { status: 200, text: 'late' });
    } finally {
      await client.close();
      slow.close();
    }
  });

  it('lets a request under way finish before it closes the connections, and takes no new one', async () => {
    let answer: (() => void) | null = null;
    const server = http.createServer((_request, response) => {
      answer = () => response.writeHead(200, { 'content-type': 'application/json' }).end('{"held":true}');
    });
    const port = await listening(server);
    const client = new HttpClient(new URL(`http://127.0.0.1:${port}`), {}, {});
    try {
      const request = client.request(`http://127.0.0.1:${port}/held`, {
        method: 'GET',
        headers: {},
        signal: AbortSignal.timeout(10_000),
      });
      while (answer === null) await new Promise((resolve) => setTimeout(resolve, 5));
      let closed = false;
      const closing = client.close().then(() => (closed = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(closed, false, 'close waits for the request under way');
      (answer as () => void)();
      assert.deepEqual(await request, { status: 200, text: '{"held":true}' });
      await closing;
      assert.equal(closed, true);
      await assert.rejects(
        client.request(`http://127.0.0.1:${port}/held`, {
          method: 'GET',
          headers: {},
          signal: AbortSignal.timeout(1_000),
        }),
        /was closed/,
      );
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { AGENT_PROTOCOL_VERSION, type EnrollRequest, type EnrollResponse } from '@drover/protocol';
import { AgentApi, type ApiSettings, TransportError } from './api';
import { Logger } from './log';

// The client's TLS and proxy promises, proven against local servers: a throwaway PKI made by the
// openssl CLI, an HTTPS server that answers enrolments (the one call without a credential or key),
// and an HTTP CONNECT proxy that counts its tunnels.

const PROXY_VARIABLES = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY'] as const;
type ProxyVariable = (typeof PROXY_VARIABLES)[number];

const ENROLL_REQUEST: EnrollRequest = {
  joinToken: 'join-token',
  publicKey: 'c3BraS1kZXI=',
  facts: {
    hostname: 'web-1',
    os: 'Debian GNU/Linux 12 (bookworm)',
    kernel: '6.1.0',
    systemdVersion: '252',
    uptimeSeconds: 60,
    agentVersion: '0.1.0',
    protocolVersion: AGENT_PROTOCOL_VERSION,
    runsAsRoot: true,
  },
};

const silentLog = new Logger('error', { out: () => undefined, err: () => undefined });

/** Runs openssl with an argv (no shell) in `dir`; its complaints end up in the thrown error. */
function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA (`name`.pem, `name`.key in dir); returns its certificate's PEM. */
async function makeCa(dir: string, name: string): Promise<string> {
  openssl(
    dir,
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
    ...['-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/CN=${name}`],
    ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  );
  return readFile(path.join(dir, `${name}.pem`), 'utf8');
}

/** A server key and certificate for `altNames` (an openssl subjectAltName), signed by the CA `ca`. */
async function makeServerCert(dir: string, name: string, ca: string, altNames: string) {
  openssl(
    dir,
    ...['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
    ...['-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`],
  );
  const extensions = `subjectAltName=${altNames}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n`;
  await writeFile(path.join(dir, `${name}.ext`), extensions);
  openssl(
    dir,
    ...['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial'],
    ...['-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`],
  );
  return {
    key: await readFile(path.join(dir, `${name}.key`), 'utf8'),
    cert: await readFile(path.join(dir, `${name}.pem`), 'utf8'),
  };
}

async function listenOnLoopback(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** An HTTPS server answering POST /agent/v1/enroll; `enrolments` counts the requests that got through TLS. */
async function enrolmentServer(tls: { key: string; cert: string }) {
  const counts = { enrolments: 0 };
  const server = https.createServer(tls, (request, response) => {
    if (request.method !== 'POST' || request.url !== '/agent/v1/enroll') {
      response.writeHead(404).end();
      return;
    }
    counts.enrolments += 1;
    request.resume();
    const answer: EnrollResponse = {
      agentId: randomUUID(),
      hostId: randomUUID(),
      hostName: 'web-1',
      serverTime: new Date().toISOString(),
    };
    response.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
  const port = await listenOnLoopback(server);
  return { server, counts, url: `https://127.0.0.1:${port}` };
}

/** An HTTP proxy that only tunnels (CONNECT); `tunnels` lists each tunnel's "host:port". */
async function connectProxy() {
  const tunnels: string[] = [];
  const server = http.createServer((_request, response) => response.writeHead(405).end());
  server.on('connect', (request: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const target = request.url ?? '';
    tunnels.push(target);
    const { hostname, port } = new URL(`http://${target}`);
    const upstream = net.connect(Number(port), hostname, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  const port = await listenOnLoopback(server);
  return { server, tunnels, url: `http://127.0.0.1:${port}` };
}

/**
 * Runs `action` with exactly these proxy variables set, then puts the environment back. All six are
 * cleared first: undici reads the lower-case ones before the upper-case, and the machine may set any.
 */
async function withProxyEnv<T>(variables: Partial<Record<ProxyVariable, string>>, action: () => Promise<T>) {
  const saved = PROXY_VARIABLES.map((name) => [name, process.env[name]] as const);
  for (const name of PROXY_VARIABLES) delete process.env[name];
  Object.assign(process.env, variables);
  try {
    return await action();
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/** One enrolment by a client built in the current environment (EnvHttpProxyAgent reads the proxies when built). */
async function enroll(settings: ApiSettings): Promise<EnrollResponse> {
  const api = new AgentApi(settings, silentLog);
  try {
    return await api.enroll(ENROLL_REQUEST);
  } finally {
    await api.close();
  }
}

/** The code of the first error with one down the cause chain (TransportError → undici’s error → the socket’s). */
function errorCode(error: unknown): string | undefined {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code !== undefined) return code;
  }
  return undefined;
}

/** A rejection by certificate verification (`code`), surfaced as the agent's TransportError. */
function certificateRefusal(code: string) {
  return (error: unknown) => {
    assert.ok(error instanceof TransportError, `expected a TransportError, got ${String(error)}`);
    assert.equal(errorCode(error), code, error.message);
    return true;
  };
}

describe('the agent API client', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'drover-agent-api-'));
  const ca = await makeCa(dir, 'drover-ca');
  const otherCa = await makeCa(dir, 'other-ca');
  const drover = await enrolmentServer(await makeServerCert(dir, 'server', 'drover-ca', 'IP:127.0.0.1,DNS:localhost'));
  // Signed by the pinned CA, but for another name: the name must be checked, not only the chain.
  const misnamed = await enrolmentServer(await makeServerCert(dir, 'misnamed', 'drover-ca', 'DNS:elsewhere.invalid'));
  const proxy = await connectProxy();
  const target = new URL(drover.url).host;
  after(async () => {
    for (const server of [drover.server, misnamed.server, proxy.server]) {
      server.closeAllConnections();
      server.close();
    }
    await rm(dir, { recursive: true, force: true });
  });

  describe('TLS', () => {
    it('trusts the server when caFile is the CA that signed its certificate', async () => {
      const before = drover.counts.enrolments;
      const answer = await withProxyEnv({}, () => enroll({ server: drover.url, ca }));
      assert.equal(answer.hostName, 'web-1');
      assert.equal(drover.counts.enrolments, before + 1);
    });

    it('refuses a private CA’s server without caFile: the system’s CAs do not include it', async () => {
      const before = drover.counts.enrolments;
      await assert.rejects(
        withProxyEnv({}, () => enroll({ server: drover.url })),
        certificateRefusal('UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
      );
      assert.equal(drover.counts.enrolments, before, 'the request must not have been sent');
    });

    it('refuses the server when caFile is another CA: the pinned CA is the only one trusted', async () => {
      const before = drover.counts.enrolments;
      await assert.rejects(
        withProxyEnv({}, () => enroll({ server: drover.url, ca: otherCa })),
        certificateRefusal('UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
      );
      assert.equal(drover.counts.enrolments, before, 'the request must not have been sent');
    });

    it('refuses a certificate of the pinned CA that names another host', async () => {
      await assert.rejects(
        withProxyEnv({}, () => enroll({ server: misnamed.url, ca })),
        certificateRefusal('ERR_TLS_CERT_ALTNAME_INVALID'),
      );
      assert.equal(misnamed.counts.enrolments, 0, 'the request must not have been sent');
    });

    it('pins the new caFile from the next request on after configure() (SIGHUP)', async () => {
      await withProxyEnv({}, async () => {
        const api = new AgentApi({ server: drover.url, ca: otherCa }, silentLog);
        try {
          await assert.rejects(api.enroll(ENROLL_REQUEST), certificateRefusal('UNABLE_TO_VERIFY_LEAF_SIGNATURE'));
          api.configure({ server: drover.url, ca });
          assert.equal((await api.enroll(ENROLL_REQUEST)).hostName, 'web-1');
          api.configure({ server: drover.url, ca: otherCa });
          await assert.rejects(api.enroll(ENROLL_REQUEST), certificateRefusal('UNABLE_TO_VERIFY_LEAF_SIGNATURE'));
        } finally {
          await api.close();
        }
      });
    });
  });

  describe('proxies', () => {
    it('tunnels through HTTPS_PROXY, and verifies the server against caFile inside the tunnel', async () => {
      const tunnelsBefore = proxy.tunnels.length;
      const before = drover.counts.enrolments;
      await withProxyEnv({ HTTPS_PROXY: proxy.url }, () => enroll({ server: drover.url, ca }));
      assert.deepEqual(proxy.tunnels.slice(tunnelsBefore), [target]);
      assert.equal(drover.counts.enrolments, before + 1);
    });

    it('refuses a server of another CA through the proxy as well (the tunnel’s TLS gets caFile too)', async () => {
      const tunnelsBefore = proxy.tunnels.length;
      const before = drover.counts.enrolments;
      await assert.rejects(
        withProxyEnv({ HTTPS_PROXY: proxy.url }, () => enroll({ server: drover.url, ca: otherCa })),
        certificateRefusal('UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
      );
      // The tunnel was opened: the refusal is the agent's own verification, not a missed proxy.
      assert.deepEqual(proxy.tunnels.slice(tunnelsBefore), [target]);
      assert.equal(drover.counts.enrolments, before, 'the request must not have been sent');
    });

    it('tunnels HTTPS through HTTP_PROXY when HTTPS_PROXY is not set (undici’s fallback)', async () => {
      const tunnelsBefore = proxy.tunnels.length;
      await withProxyEnv({ HTTP_PROXY: proxy.url }, () => enroll({ server: drover.url, ca }));
      assert.deepEqual(proxy.tunnels.slice(tunnelsBefore), [target]);
    });

    it('honours the lower-case https_proxy as well', async () => {
      const tunnelsBefore = proxy.tunnels.length;
      await withProxyEnv({ https_proxy: proxy.url }, () => enroll({ server: drover.url, ca }));
      assert.deepEqual(proxy.tunnels.slice(tunnelsBefore), [target]);
    });

    for (const noProxy of ['127.0.0.1', '*']) {
      it(`goes straight to the server, past HTTPS_PROXY, when NO_PROXY=${noProxy}`, async () => {
        const tunnelsBefore = proxy.tunnels.length;
        const before = drover.counts.enrolments;
        await withProxyEnv({ HTTPS_PROXY: proxy.url, NO_PROXY: noProxy }, () => enroll({ server: drover.url, ca }));
        assert.equal(drover.counts.enrolments, before + 1);
        assert.deepEqual(proxy.tunnels.slice(tunnelsBefore), [], 'the proxy must have seen nothing');
      });
    }
  });
});

import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

/** How long a proxy may take to open a tunnel (answer CONNECT) before the request fails. */
const PROXY_CONNECT_TIMEOUT_MS = 30_000;
/**
 * How long a kept-alive connection may sit unused before the agent closes it: well under the
 * server's keep-alive (65 s) and the idle limits of proxies and NATs, which may drop a connection
 * without a word (a request sent on it would wait for its timeout).
 */
const IDLE_CONNECTION_MS = 4_000;

type Environment = Record<string, string | undefined>;

export interface HttpRequest {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}

export interface HttpAnswer {
  status: number;
  text: string;
}

function firstSet(...values: (string | undefined)[]): string | undefined {
  return values.find((value) => value !== undefined && value.trim() !== '')?.trim();
}

function bare(hostname: string): string {
  return hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

function portOf(url: URL): number {
  return Number(url.port || (url.protocol === 'https:' ? 443 : 80));
}

/**
 * Whether NO_PROXY sends `target` straight to the server: `*` does for every host; an entry
 * `name[:port]` does for that host and its subdomains (a leading `.` or `*.` changes nothing), an
 * address for that address only, on any port unless the entry names one. Entries are separated by
 * commas or spaces.
 */
export function bypassesProxy(target: URL, noProxy: string): boolean {
  const host = bare(target.hostname);
  for (const entry of noProxy.split(/[\s,]+/).filter((part) => part !== '')) {
    if (entry === '*') return true;
    // A port follows a name or a bracketed IPv6 address, never a bare one (whose last group it would be).
    const withPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (withPort && Number(withPort[2]) !== portOf(target)) continue;
    const name = bare((withPort?.[1] ?? entry).replace(/^\*?\./, ''));
    if (host === name || (isIP(host) === 0 && host.endsWith(`.${name}`))) return true;
  }
  return false;
}

/**
 * The proxy the environment names for `target`: https_proxy or HTTPS_PROXY for an https URL, else
 * http_proxy or HTTP_PROXY (the lower-case name first; undici's EnvHttpProxyAgent, which the agent
 * used before, reads them so); none when NO_PROXY covers the host. A proxy without a scheme is http://.
 */
export function proxyFor(target: URL, environment: Environment = process.env): URL | null {
  const named = firstSet(
    ...(target.protocol === 'https:' ? [environment.https_proxy, environment.HTTPS_PROXY] : []),
    environment.http_proxy,
    environment.HTTP_PROXY,
  );
  if (named === undefined) return null;
  if (bypassesProxy(target, firstSet(environment.no_proxy, environment.NO_PROXY) ?? '')) return null;
  const proxy = new URL(named.includes('://') ? named : `http://${named}`);
  if (proxy.protocol !== 'http:' && proxy.protocol !== 'https:') {
    throw new Error(`the proxy ${proxy.href} is neither http:// nor https://`);
  }
  return proxy;
}

/**
 * A tunnel through `proxy` to host:port (HTTP CONNECT), with the proxy's credentials if its URL has
 * them. `signal` is the request's: node does not hand it to the agent, so it is passed on here, or
 * an abort (a timeout, the agent stopping) would wait for the proxy.
 */
function openTunnel(proxy: URL, host: string, port: number, signal: AbortSignal | undefined): Promise<Duplex> {
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const headers: Record<string, string> = { host: authority };
  if (proxy.username !== '') {
    const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    headers['proxy-authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }
  return new Promise((resolve, reject) => {
    const connect = (proxy.protocol === 'https:' ? https : http).request({
      host: bare(proxy.hostname),
      port: portOf(proxy),
      method: 'CONNECT',
      path: authority,
      headers,
      agent: false,
      timeout: PROXY_CONNECT_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
    });
    connect.once('connect', (response, socket, head) => {
      if (signal?.aborted) {
        socket.destroy();
        reject(signal.reason as Error);
        return;
      }
      if (response.statusCode !== 200) {
        socket.destroy();
        reject(new Error(`the proxy ${proxy.host} answered ${response.statusCode} to CONNECT ${authority}`));
        return;
      }
      socket.setTimeout(0);
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    connect.once('timeout', () =>
      connect.destroy(new Error(`the proxy ${proxy.host} did not open a tunnel within ${PROXY_CONNECT_TIMEOUT_MS} ms`)),
    );
    connect.once('error', reject);
    connect.end();
  });
}

type ConnectionCallback = (error: Error | null, stream: Duplex) => void;
/** The options node hands an agent's createConnection: the request's, with the signal under our own key. */
type TunnelOptions = http.ClientRequestArgs & { tunnelSignal?: AbortSignal };

/** Connections to an https server through a proxy: TLS (verified, `ca` pinned) inside the tunnel. */
class HttpsTunnelAgent extends https.Agent {
  constructor(
    private readonly proxy: URL,
    options: https.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: TunnelOptions, callback?: ConnectionCallback): undefined {
    openTunnel(this.proxy, bare(options.host ?? ''), Number(options.port), options.tunnelSignal).then(
      (socket) => callback?.(null, tls.connect({ ...(options as tls.ConnectionOptions), socket })),
      (error: Error) => callback?.(error, undefined as unknown as Duplex),
    );
    return undefined;
  }
}

/** Connections to an http server through a proxy: the tunnel itself. */
class HttpTunnelAgent extends http.Agent {
  constructor(
    private readonly proxy: URL,
    options: http.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: TunnelOptions, callback?: ConnectionCallback): undefined {
    openTunnel(this.proxy, bare(options.host ?? ''), Number(options.port), options.tunnelSignal).then(
      (socket) => callback?.(null, socket),
      (error: Error) => callback?.(error, undefined as unknown as Duplex),
    );
    return undefined;
  }
}

/**
 * Requests to one server over node's own http/https (an HTTP client library would cost the agent
 * ~16 MB of memory for what it needs: JSON over kept-alive connections). TLS is always verified,
 * against `ca` alone when given; the proxy is the environment's (proxyFor), read when built.
 */
export class HttpClient {
  private readonly agent: http.Agent;
  private readonly secure: boolean;
  private inFlight = 0;
  private closed = false;
  /** Who waits for the requests under way to end (close). */
  private readonly waitingForIdle: (() => void)[] = [];

  constructor(origin: URL, options: { ca?: string }, environment: Environment = process.env) {
    this.secure = origin.protocol === 'https:';
    const proxy = proxyFor(origin, environment);
    const agentOptions = {
      keepAlive: true,
      timeout: IDLE_CONNECTION_MS,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
    };
    if (proxy) {
      this.agent = this.secure ? new HttpsTunnelAgent(proxy, agentOptions) : new HttpTunnelAgent(proxy, agentOptions);
    } else {
      this.agent = this.secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    }
  }

  /** The status and the body of the answer to one request; rejects when no answer came (the signal included). */
  async request(url: string, init: HttpRequest): Promise<HttpAnswer> {
    if (this.closed) throw new Error('this client was closed (the agent switched to new settings or stops)');
    this.inFlight += 1;
    try {
      return await new Promise<HttpAnswer>((resolve, reject) => {
        const request = (this.secure ? https : http).request(
          url,
          {
            method: init.method,
            headers: init.headers,
            agent: this.agent,
            signal: init.signal,
            tunnelSignal: init.signal,
          } as TunnelOptions,
          (response) => {
            response.setEncoding('utf8');
            let text = '';
            response.on('data', (chunk: string) => (text += chunk));
            response.once('end', () => resolve({ status: response.statusCode ?? 0, text }));
            response.once('error', reject);
          },
        );
        request.once('error', reject);
        request.end(init.body);
      });
    } finally {
      this.inFlight -= 1;
      if (this.inFlight === 0) for (const resume of this.waitingForIdle.splice(0)) resume();
    }
  }

  /** Closes the connections once the requests under way were answered (or failed). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.waitingForIdle.push(resolve));
    this.agent.destroy();
  }
}

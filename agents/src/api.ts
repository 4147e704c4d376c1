import {
  AGENT_PROTOCOL_HEADER,
  AGENT_PROTOCOL_VERSION,
  challengeResponseSchema,
  type EnrollRequest,
  enrollResponseSchema,
  type EnrollResponse,
  heartbeatResponseSchema,
  type HostFacts,
  nextCommandResponseSchema,
  type NextCommandResponse,
  type OutputChunk,
  type ReadResult,
  sessionResponseSchema,
  stoppedResponseSchema,
  taskResultResponseSchema,
  type UnitActionOutcome,
  type UnitSnapshot,
  type UnitsReport,
} from '@drover/protocol';
import { type Dispatcher, EnvHttpProxyAgent, request } from 'undici';
import { z } from 'zod';
import type { AgentKey } from './identity';
import type { Logger } from './log';
import { AGENT_VERSION } from './version';

/** A request that is not a long poll gives up after this long. */
const REQUEST_TIMEOUT_MS = 30_000;
/** A long poll's answer may come this much later than the wait it asked for. */
const LONG_POLL_MARGIN_MS = 15_000;
/** Clock skew beyond this is logged (it never stops the agent: the server's clock decides). */
const NOTABLE_SKEW_MS = 5_000;

const problemSchema = z.object({
  title: z.string().optional(),
  detail: z.string().optional(),
  errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
});
type Problem = z.output<typeof problemSchema>;

/** A body as JSON; null when empty or not JSON (a proxy's error page: its status still counts). */
function parseJson(text: string): unknown {
  try {
    return text === '' ? null : (JSON.parse(text) as unknown);
  } catch {
    return null;
  }
}

/** The server answered with an error status (a problem+json body, when it sent one). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
    what: string,
  ) {
    const fields = problem?.errors?.map((error) => `${error.field}: ${error.message}`).join('; ');
    const words = [problem?.title, problem?.detail, fields].filter(Boolean).join(': ');
    super(`${what} answered ${status}${words ? ` (${words})` : ''}`);
  }
}

/** The server revoked this agent (403): it must stop all work. */
export class RevokedError extends ApiError {}

/** The server could not be reached, or its answer did not follow the protocol. */
export class TransportError extends Error {}

/** What the server answered, its JSON body parsed (null when it had none). */
interface Answer {
  status: number;
  body: unknown;
}

interface SendOptions {
  body?: unknown;
  credential?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ApiSettings {
  server: string;
  /** PEM of the only CA trusted for the server; undefined: the system's CAs. */
  ca?: string;
}

/**
 * The agent's side of the protocol (@drover/protocol agent.ts): typed calls, each answer checked
 * against its schema. It holds the session: a credential obtained by signing the server's
 * challenge, renewed at half its lifetime and once more when the server says it expired (401).
 * TLS is always verified; HTTPS_PROXY/HTTP_PROXY/NO_PROXY are honoured.
 */
export class AgentApi {
  private settings!: ApiSettings;
  private dispatcher!: Dispatcher;
  private identity: { agentId: string; key: AgentKey } | null = null;
  private session: { credential: string; renewAt: number } | null = null;
  private renewing: Promise<string> | null = null;
  private loggedSkewMs = 0;

  constructor(
    settings: ApiSettings,
    private readonly log: Logger,
  ) {
    this.configure(settings);
  }

  /** Switches to new settings (SIGHUP); requests under way finish on the old connections. */
  configure(settings: ApiSettings): void {
    const previous = this.dispatcher as Dispatcher | undefined;
    const tls = settings.ca === undefined ? {} : { ca: settings.ca };
    // requestTls: the server's TLS through a proxy tunnel; connect: without a proxy.
    this.dispatcher = new EnvHttpProxyAgent({ connect: tls, requestTls: tls });
    this.settings = settings;
    void previous?.close().catch(() => undefined);
  }

  setIdentity(agentId: string, key: AgentKey): void {
    this.identity = { agentId, key };
    this.session = null;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  // --- without a credential ---

  async enroll(request: EnrollRequest): Promise<EnrollResponse> {
    const answer = await this.send('POST', '/enroll', { body: request });
    return this.expect(answer, 'POST /enroll', 201, enrollResponseSchema);
  }

  /** A new credential (challenge, signature, session); RevokedError when the server refuses this agent. */
  openSession(): Promise<string> {
    this.renewing ??= this.createSession().finally(() => {
      this.renewing = null;
    });
    return this.renewing;
  }

  // --- with a credential ---

  /** Tells the server this agent's new key (asked with a credential of the current one). */
  async rotateKey(publicKey: string, proof: string): Promise<void> {
    const answer = await this.authed('POST', '/keys', { body: { publicKey, proof } });
    if (answer.status !== 204) throw this.failure(answer, 'POST /keys');
  }

  /** The host's units as they changed, or all of them. */
  async reportUnits(report: UnitsReport): Promise<void> {
    const answer = await this.authed('POST', '/units', { body: report });
    if (answer.status !== 204) throw this.failure(answer, 'POST /units');
  }

  async heartbeat(facts: HostFacts, signal?: AbortSignal): Promise<{ outdated: boolean }> {
    const answer = await this.authed('POST', '/heartbeat', { body: { facts }, ...(signal ? { signal } : {}) });
    return this.expect(answer, 'POST /heartbeat', 200, heartbeatResponseSchema);
  }

  async nextCommand(waitMs: number, signal?: AbortSignal): Promise<NextCommandResponse> {
    const answer = await this.authed('GET', `/commands/next?waitMs=${waitMs}`, {
      timeoutMs: waitMs + LONG_POLL_MARGIN_MS,
      ...(signal ? { signal } : {}),
    });
    return this.expect(answer, 'GET /commands/next', 200, nextCommandResponseSchema);
  }

  /** Renews the claim on a task; false when the attempt lost it (409). */
  async renewLease(taskId: string, attempt: number): Promise<boolean> {
    const path = `${this.attemptPath(taskId, attempt)}/lease`;
    return this.fenced(await this.authed('POST', path), `POST ${path}`);
  }

  /** Stores the state before acting; true clears the attempt to act, false: superseded (409), it must not. */
  async clearToAct(taskId: string, attempt: number, before: UnitSnapshot | null): Promise<boolean> {
    const path = `${this.attemptPath(taskId, attempt)}/clear`;
    return this.fenced(await this.authed('POST', path, { body: { before } }), `POST ${path}`);
  }

  async waiting(taskId: string, attempt: number, reason: string): Promise<boolean> {
    const path = `${this.attemptPath(taskId, attempt)}/waiting`;
    return this.fenced(await this.authed('POST', path, { body: { reason: reason.slice(0, 2000) } }), `POST ${path}`);
  }

  /** Why the attempt must not act any more (its rollout stopped), or null. */
  async stopped(taskId: string, attempt: number): Promise<string | null> {
    const path = `${this.attemptPath(taskId, attempt)}/stopped`;
    const answer = await this.authed('GET', path);
    return this.expect(answer, `GET ${path}`, 200, stoppedResponseSchema).stopped;
  }

  async output(taskId: string, attempt: number, chunk: OutputChunk): Promise<boolean> {
    const path = `${this.attemptPath(taskId, attempt)}/output`;
    return this.fenced(await this.authed('POST', path, { body: chunk }), `POST ${path}`);
  }

  /** Reports the outcome; 'superseded' when the server answers 409 (another attempt owns the task). */
  async result(taskId: string, attempt: number, outcome: UnitActionOutcome): Promise<boolean | 'superseded'> {
    const path = `${this.attemptPath(taskId, attempt)}/result`;
    const answer = await this.authed('POST', path, { body: { outcome } });
    if (answer.status === 409) return 'superseded';
    return this.expect(answer, `POST ${path}`, 200, taskResultResponseSchema).recorded;
  }

  async readResults(requestId: string, results: ReadResult[]): Promise<void> {
    const path = `/reads/${encodeURIComponent(requestId)}/result`;
    const answer = await this.authed('POST', path, { body: { results } });
    if (answer.status !== 204 && answer.status !== 200) throw this.failure(answer, `POST ${path}`);
  }

  // --- underneath ---

  private attemptPath(taskId: string, attempt: number): string {
    return `/tasks/${encodeURIComponent(taskId)}/attempts/${attempt}`;
  }

  private async createSession(): Promise<string> {
    if (!this.identity) throw new Error('the agent has not enrolled yet');
    const { agentId, key } = this.identity;
    const challenge = await this.send('POST', '/challenge', { body: { agentId } });
    this.refuseRevoked(challenge, 'POST /challenge');
    const { challenge: text } = this.expect(challenge, 'POST /challenge', 200, challengeResponseSchema);
    const signature = key.signChallenge(agentId, text);
    const answer = await this.send('POST', '/sessions', { body: { agentId, challenge: text, signature } });
    this.refuseRevoked(answer, 'POST /sessions');
    const session = this.expect(answer, 'POST /sessions', 201, sessionResponseSchema);
    this.session = { credential: session.credential, renewAt: Date.now() + session.ttlMs / 2 };
    this.log.debug('opened a session', { ttlMs: session.ttlMs });
    return session.credential;
  }

  private async credential(): Promise<string> {
    if (this.session && Date.now() < this.session.renewAt) return this.session.credential;
    return this.openSession();
  }

  /** A call with the credential: on 401 a new session, and the call once more. */
  private async authed(method: string, path: string, options: Omit<SendOptions, 'credential'> = {}): Promise<Answer> {
    let answer = await this.send(method, path, { ...options, credential: await this.credential() });
    if (answer.status === 401) {
      this.session = null;
      answer = await this.send(method, path, { ...options, credential: await this.openSession() });
    }
    this.refuseRevoked(answer, `${method} ${path}`);
    return answer;
  }

  private refuseRevoked(answer: Answer, what: string): void {
    if (answer.status === 403) {
      this.session = null;
      throw new RevokedError(403, this.problemOf(answer), what);
    }
  }

  /** 204 (or 200): true; 409: false (the attempt lost the task); anything else throws. */
  private fenced(answer: Answer, what: string): boolean {
    if (answer.status === 204 || answer.status === 200) return true;
    if (answer.status === 409) return false;
    throw this.failure(answer, what);
  }

  private expect<T>(answer: Answer, what: string, status: number, schema: z.ZodType<T>): T {
    if (answer.status !== status) throw this.failure(answer, what);
    const parsed = schema.safeParse(answer.body);
    if (!parsed.success) {
      throw new TransportError(`${what}: the answer does not follow the protocol: ${z.prettifyError(parsed.error)}`);
    }
    return parsed.data;
  }

  private failure(answer: Answer, what: string): ApiError {
    return new ApiError(answer.status, this.problemOf(answer), what);
  }

  private problemOf(answer: Answer): Problem | null {
    const parsed = problemSchema.safeParse(answer.body);
    return parsed.success ? parsed.data : null;
  }

  private async send(method: string, path: string, options: SendOptions): Promise<Answer> {
    const headers: Record<string, string> = {
      accept: 'application/json, application/problem+json',
      'user-agent': `drover-agent/${AGENT_VERSION}`,
      [AGENT_PROTOCOL_HEADER]: String(AGENT_PROTOCOL_VERSION),
    };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.credential !== undefined) headers.authorization = `Bearer ${options.credential}`;
    const timeout = AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    try {
      // undici's request, not fetch: the same dispatcher (proxies, TLS) without the WHATWG streams
      // and objects around it, which cost the agent ~0.5 ms of CPU per request (measured warm).
      const response = await request(`${this.settings.server}/agent/v1${path}`, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        dispatcher: this.dispatcher,
        signal,
      });
      const body = parseJson(await response.body.text());
      this.measureSkew(body, Date.now());
      return { status: response.statusCode, body };
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
      throw new TransportError(`${method} ${path} failed: ${(error as Error).message}${cause}`, { cause: error });
    }
  }

  /** Logs the server's clock against ours when it is off by more than NOTABLE_SKEW_MS (and when it is back). */
  private measureSkew(body: unknown, receivedAt: number): void {
    const serverTime = (body as { serverTime?: unknown } | null)?.serverTime;
    if (typeof serverTime !== 'string') return;
    const server = Date.parse(serverTime);
    if (Number.isNaN(server)) return;
    // The server stamps serverTime as it answers (a long poll: after holding the request for up to
    // its wait), so the answer's arrival, not the request's midpoint, is when that time was read,
    // give or take the one-way latency.
    const skewMs = Math.round(server - receivedAt);
    const notable = Math.abs(skewMs) > NOTABLE_SKEW_MS;
    const wasNotable = Math.abs(this.loggedSkewMs) > NOTABLE_SKEW_MS;
    if (notable && Math.abs(skewMs - this.loggedSkewMs) > 1_000) {
      this.log.warn('this host’s clock is off from the server’s (only logged: the server’s clock decides)', {
        skewMs,
      });
      this.loggedSkewMs = skewMs;
    } else if (!notable && wasNotable) {
      this.log.info('this host’s clock agrees with the server’s again', { skewMs });
      this.loggedSkewMs = skewMs;
    }
  }
}

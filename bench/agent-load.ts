/**
 * The load process of `bench:agent`'s many-agents part, run in a process of its own so that its
 * CPU is not the API's: it signs in every simulated agent (challenge, then a session, as the agent
 * does) and then holds one long poll per agent (GET /agent/v1/commands/next?waitMs=W), each asking
 * again as soon as it is answered: the first polls spread over R seconds, then S seconds more. It prints one JSON object (LoadReport) on
 * stdout; progress goes to stderr.
 *
 *   node dist/bench/agent-load.js --url URL --agents FILE --seconds S --ramp-seconds R --wait-ms W
 *
 * FILE holds one JSON object per line: {"agentId": "...", "privateKey": "<PKCS#8 DER, base64>"}.
 */
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { login, readSimulatedAgents, request, SimulatedAgent, sockets } from './lib/simulated-agents';

const LOGIN_CONCURRENCY = 64;
/** A poll answered this much before its wait ended counts as answered early. */
const EARLY_MS = 1_000;
/** A long poll's answer may come this much later than its wait (as the agent allows). */
const POLL_MARGIN_MS = 15_000;

export interface LoadReport {
  agents: number;
  loggedIn: number;
  loginFailures: Record<string, number>;
  loginSeconds: number;
  /** Date.now() when the first poll was sent, when the last agent's first poll was, and at the end. */
  pollStartedAt: number;
  rampEndedAt: number;
  endedAt: number;
  /** Polls answered, by HTTP status (or the error's message), over the whole polling time. */
  answered: Record<string, number>;
  /** Polls answered with 200 before their wait ended (less EARLY_MS). */
  answeredEarly: number;
  /** Polls answered per whole second since pollStartedAt. */
  answeredPerSecond: number[];
  /** Agents whose first poll the server had not answered (nor refused) when the time was up: waiting. */
  openAtEnd: number;
  /** Polls the server was holding (sent, not answered) at most at once, and when the time was up. */
  maxInFlight: number;
  inFlightAtEnd: number;
  /** Of the answers that were not long waits (errors and early answers), the slowest, in ms. */
  slowestShortAnswerMs: number;
}

interface Options {
  url: string;
  agentsFile: string;
  seconds: number;
  rampSeconds: number;
  waitMs: number;
}

function parseOptions(argv: string[]): Options {
  const value = (name: string): string => {
    const index = argv.indexOf(name);
    const found = index >= 0 ? argv[index + 1] : undefined;
    if (found === undefined) throw new Error(`${name} is required`);
    return found;
  };
  return {
    url: value('--url'),
    agentsFile: value('--agents'),
    seconds: Number(value('--seconds')),
    rampSeconds: Number(value('--ramp-seconds')),
    waitMs: Number(value('--wait-ms')),
  };
}

const progress = (message: string): void => void process.stderr.write(`[bench:agent-load] ${message}\n`);

const errorKey = (error: unknown): string =>
  error instanceof Error ? ((error as { code?: string }).code ?? error.message).slice(0, 80) : String(error);

function count(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const agents = await readSimulatedAgents(options.agentsFile);
  const stop = new AbortController();
  // Every request in flight listens to it: 10,000 and more.
  setMaxListeners(Infinity, stop.signal);

  const loginFailures: Record<string, number> = {};
  const loginStarted = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: LOGIN_CONCURRENCY }, async () => {
      for (let i = next++; i < agents.length; i = next++) {
        await login(options.url, agents[i]!, stop.signal).catch((error: unknown) =>
          count(loginFailures, errorKey(error)),
        );
        if (i % 1_000 === 999) progress(`${i + 1} agents signed in or refused`);
      }
    }),
  );
  const loginSeconds = (performance.now() - loginStarted) / 1000;
  const ready = agents.filter((agent) => agent.credential !== '');
  progress(`${ready.length} of ${agents.length} agents signed in in ${loginSeconds.toFixed(1)} s; polling`);

  const answered: Record<string, number> = {};
  const answeredPerSecond: number[] = [];
  let answeredEarly = 0;
  let slowestShortAnswerMs = 0;
  let neverAnswered = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const pollStartedAt = Date.now();
  const endAt = pollStartedAt + (options.rampSeconds + options.seconds) * 1000;
  const record = (key: string, sentAt: number): void => {
    count(answered, key);
    const second = Math.floor((Date.now() - pollStartedAt) / 1000);
    answeredPerSecond[second] = (answeredPerSecond[second] ?? 0) + 1;
    const tookMs = Date.now() - sentAt;
    const early = key !== '200' || tookMs < options.waitMs - EARLY_MS;
    if (key === '200' && tookMs < options.waitMs - EARLY_MS) answeredEarly += 1;
    if (early) slowestShortAnswerMs = Math.max(slowestShortAnswerMs, tookMs);
  };
  const pollFor = async (agent: SimulatedAgent, startAfterMs: number): Promise<void> => {
    await sleep(startAfterMs);
    let answers = 0;
    while (Date.now() < endAt && !stop.signal.aborted) {
      const sentAt = Date.now();
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        const reply = await request(
          `${options.url}/agent/v1/commands/next?waitMs=${options.waitMs}`,
          'GET',
          { authorization: `Bearer ${agent.credential}` },
          undefined,
          options.waitMs + POLL_MARGIN_MS,
          stop.signal,
        );
        answers += 1;
        record(String(reply.status), sentAt);
        // A refusal asked again at once would only measure how fast the server refuses.
        if (reply.status !== 200) await sleep(1_000);
      } catch (error) {
        if (stop.signal.aborted) break;
        answers += 1;
        record(errorKey(error), sentAt);
        await sleep(1_000);
      } finally {
        inFlight -= 1;
      }
    }
    if (answers === 0) neverAnswered += 1;
  };
  const spread = (options.rampSeconds * 1000) / Math.max(1, ready.length);
  const polls = ready.map((agent, i) => pollFor(agent, Math.floor(i * spread)));
  const rampEndedAt = pollStartedAt + options.rampSeconds * 1000;
  const ticker = setInterval(() => {
    const total = Object.values(answered).reduce((sum, n) => sum + n, 0);
    progress(
      `${Math.round((Date.now() - pollStartedAt) / 1000)} s: ${total} polls answered ${JSON.stringify(answered)}`,
    );
  }, 10_000);
  await sleep(Math.max(0, endAt - Date.now()));
  clearInterval(ticker);
  const inFlightAtEnd = inFlight;
  stop.abort();
  await Promise.allSettled(polls);
  sockets.destroy();
  const report: LoadReport = {
    agents: agents.length,
    loggedIn: ready.length,
    loginFailures,
    loginSeconds,
    pollStartedAt,
    rampEndedAt,
    endedAt: Date.now(),
    answered,
    answeredEarly,
    answeredPerSecond: Array.from(answeredPerSecond, (n) => n ?? 0),
    openAtEnd: neverAnswered,
    maxInFlight,
    inFlightAtEnd,
    slowestShortAnswerMs,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((error: unknown) => {
  progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});

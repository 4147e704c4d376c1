import { request } from 'node:http';
import { connect } from 'node:net';
import type { Probe } from './dto/rollout.dto';

type NetworkProbe = Extract<Probe, { type: 'http' | 'tcp' }>;
type HttpProbe = Extract<Probe, { type: 'http' }>;

function describe(probe: NetworkProbe): string {
  return probe.type === 'http' ? `http :${probe.port}${probe.path}` : `tcp :${probe.port}`;
}

/**
 * Runs an HTTP or TCP probe from this worker to the host. Returns null when it passed, or why it
 * did not. Never throws and never outlives its timeout.
 */
export async function runNetworkProbe(address: string, probe: NetworkProbe): Promise<string | null> {
  if (probe.type === 'http') return httpProbe(address, probe);
  return new Promise((resolve) => {
    const socket = connect({ host: address, port: probe.port });
    const done = (problem: string | null) => {
      socket.destroy();
      clearTimeout(timer);
      resolve(problem);
    };
    const timer = setTimeout(
      () => done(`${describe(probe)}: no connection within ${probe.timeoutMs} ms`),
      probe.timeoutMs,
    );
    socket.once('connect', () => done(null));
    socket.once('error', (error) => done(`${describe(probe)} failed: ${error.message}`));
  });
}

/**
 * One GET on a connection of its own, closed after the answer: a pooled keep-alive connection
 * could outlive the process that accepted it, and the probe is about whether the new one accepts.
 * Redirects are not followed: their status is the answer.
 */
function httpProbe(address: string, probe: HttpProbe): Promise<string | null> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: address,
        port: probe.port,
        path: probe.path,
        method: 'GET',
        agent: false,
        headers: { connection: 'close' },
        signal: AbortSignal.timeout(probe.timeoutMs),
      },
      (response) => {
        response.resume();
        resolve(
          response.statusCode === probe.expectStatus
            ? null
            : `${describe(probe)} answered ${response.statusCode}, expected ${probe.expectStatus}`,
        );
        req.destroy();
      },
    );
    req.once('error', (error) =>
      resolve(
        error.name === 'AbortError' || error.name === 'TimeoutError'
          ? `${describe(probe)} failed: no answer within ${probe.timeoutMs} ms`
          : `${describe(probe)} failed: ${error.message}`,
      ),
    );
    req.end();
  });
}

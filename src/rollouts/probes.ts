import { connect } from 'node:net';
import type { Probe } from './dto/rollout.dto';

type NetworkProbe = Extract<Probe, { type: 'http' | 'tcp' }>;

/** An address as a URL's host part: IPv6 literals go in brackets. */
function urlHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

function describe(probe: NetworkProbe): string {
  return probe.type === 'http' ? `http :${probe.port}${probe.path}` : `tcp :${probe.port}`;
}

/**
 * Runs an HTTP or TCP probe from this worker to the host. Returns null when it passed, or why it
 * did not. Never throws and never outlives its timeout.
 */
export async function runNetworkProbe(address: string, probe: NetworkProbe): Promise<string | null> {
  if (probe.type === 'http') {
    try {
      const response = await fetch(`http://${urlHost(address)}:${probe.port}${probe.path}`, {
        signal: AbortSignal.timeout(probe.timeoutMs),
        redirect: 'manual',
      });
      await response.body?.cancel();
      return response.status === probe.expectStatus
        ? null
        : `${describe(probe)} answered ${response.status}, expected ${probe.expectStatus}`;
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      return `${describe(probe)} failed: ${error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${probe.timeoutMs} ms` : cause}`;
    }
  }
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

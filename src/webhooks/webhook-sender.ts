import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { addressProblem, literalAddress, TargetPolicy } from './webhook-target';

export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

/** How one attempt went: the status (null when no response came), how long it took, what went wrong. */
export interface AttemptResult {
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
}

/**
 * A DNS lookup that refuses names resolving to an address the policy forbids: checked on the
 * addresses the connection will actually use, at every attempt, so a name that later resolves to
 * 169.254.169.254 or 127.0.0.1 (DNS rebinding) is refused too.
 */
function guardedLookup(policy: TargetPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) {
        callback(error, '', 0);
        return;
      }
      for (const { address } of addresses) {
        const problem = addressProblem(address, policy);
        if (problem) {
          callback(Object.assign(new Error(`refused ${hostname}: ${problem}`), { code: 'EWEBHOOKTARGET' }), '', 0);
          return;
        }
      }
      if (options.all) (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, addresses);
      else if (addresses[0]) callback(null, addresses[0].address, addresses[0].family);
      else callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
    });
  };
}

/**
 * Sends one webhook request: POST, no redirects followed (a 3xx is a failed attempt), no
 * connection reuse, the whole exchange bounded by timeoutMs, the response body never read.
 */
export async function sendWebhook(request: WebhookRequest, policy: TargetPolicy): Promise<AttemptResult> {
  const url = new URL(request.url);
  const literal = literalAddress(url);
  const problem = literal === null ? null : addressProblem(literal, policy);
  if (problem) return { statusCode: null, latencyMs: 0, error: `refused ${url.hostname}: ${problem}` };
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (statusCode: number | null, error: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ statusCode, latencyMs: elapsed(), error });
    };
    const client = url.protocol === 'https:' ? https : http;
    const outgoing = client.request(url, {
      method: 'POST',
      agent: false,
      lookup: guardedLookup(policy),
      headers: { ...request.headers, 'Content-Length': String(Buffer.byteLength(request.body)) },
    });
    const timer = setTimeout(
      () => outgoing.destroy(new Error(`no response within ${request.timeoutMs} ms`)),
      request.timeoutMs,
    );
    outgoing.on('response', (response) => {
      const statusCode = response.statusCode ?? null;
      finish(statusCode, statusCode !== null && statusCode >= 200 && statusCode < 300 ? null : `HTTP ${statusCode}`);
      // The status is all drover reads: the connection is closed at once, so a receiver that
      // trickles a body out cannot hold it open.
      response.on('error', () => undefined);
      response.destroy();
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => {
      finish(
        null,
        error.code && !error.message.includes(error.code) ? `${error.code}: ${error.message}` : error.message,
      );
    });
    outgoing.end(request.body);
  });
}

/**
 * Simulated agents for the agent benchmarks: agents seeded by SQL with Ed25519 keys of their own,
 * and the protocol's HTTP calls as an agent makes them (its sign-in: a challenge, then a session).
 */
import { createPrivateKey, generateKeyPairSync, KeyObject, randomUUID, sign } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { AGENT_PROTOCOL_HEADER, AGENT_PROTOCOL_VERSION, sessionSigningText } from '@drover/protocol';
import type { Drover } from './drover';
import { progress, secs } from './harness';

/** One socket per simulated agent, kept open between its polls, as each agent's own connection is. */
export const sockets = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: Infinity });

/** Hosts and agents rows for `count` agents, each with an Ed25519 key of its own; writes their keys for the load process. */
export async function seedAgents(drover: Drover, count: number, file: string): Promise<void> {
  const started = performance.now();
  const names: string[] = [];
  const ids: string[] = [];
  const publicKeys: string[] = [];
  const lines: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const pair = generateKeyPairSync('ed25519');
    const agentId = randomUUID();
    names.push(`sim-${String(i).padStart(5, '0')}`);
    ids.push(agentId);
    publicKeys.push(pair.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'));
    lines.push(
      JSON.stringify({
        agentId,
        privateKey: pair.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
      }),
    );
  }
  const facts = {
    hostname: 'sim',
    os: 'Debian GNU/Linux 12 (bookworm)',
    kernel: os.release(),
    systemdVersion: 'systemd 252',
    uptimeSeconds: 1,
    agentVersion: 'bench',
    protocolVersion: 1,
    runsAsRoot: true,
  };
  await drover.db.query(
    `WITH new AS (SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[]) AS n(name, agent_id, public_key)),
       hosts_made AS (
         INSERT INTO hosts (id, name, address, port, transport, labels, status, last_seen_at, created_at, updated_at)
         SELECT gen_random_uuid(), name, name, 0, 'agent', '{"sim":"yes"}', 'reachable', now(), now(), now() FROM new
         RETURNING id, name)
     INSERT INTO agents (id, host_id, public_key, facts, protocol_version, enrolled_at, last_seen_at)
     SELECT new.agent_id, hosts_made.id, new.public_key, $4::jsonb, 1, now(), now()
     FROM new JOIN hosts_made USING (name)`,
    [names, ids, publicKeys, JSON.stringify(facts)],
  );
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
  progress(`seeded ${count} agents (keys, hosts and agents rows) in ${secs((performance.now() - started) / 1000)} s`);
}

export function request(
  url: string,
  method: 'GET' | 'POST',
  headers: Record<string, string>,
  body: unknown,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const outgoing = http.request(
      url,
      {
        method,
        agent: sockets,
        headers: {
          ...headers,
          [AGENT_PROTOCOL_HEADER]: String(AGENT_PROTOCOL_VERSION),
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        },
        timeout: timeoutMs,
        signal,
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
        response.on('error', reject);
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error('no answer in time')));
    outgoing.on('error', reject);
    outgoing.end(payload);
  });
}

export interface SimulatedAgent {
  agentId: string;
  key: KeyObject;
  credential: string;
}

export async function login(url: string, agent: SimulatedAgent, signal: AbortSignal): Promise<void> {
  const challenge = await request(`${url}/agent/v1/challenge`, 'POST', {}, { agentId: agent.agentId }, 30_000, signal);
  if (challenge.status !== 200) throw new Error(`challenge ${challenge.status}`);
  const { challenge: text } = JSON.parse(challenge.text) as { challenge: string };
  const signature = sign(null, Buffer.from(sessionSigningText(agent.agentId, text)), agent.key).toString('base64');
  const session = await request(
    `${url}/agent/v1/sessions`,
    'POST',
    {},
    { agentId: agent.agentId, challenge: text, signature },
    30_000,
    signal,
  );
  if (session.status !== 201) throw new Error(`session ${session.status}`);
  agent.credential = (JSON.parse(session.text) as { credential: string }).credential;
}

/** The agents `seedAgents` wrote to `file`, not signed in yet. */
export async function readSimulatedAgents(file: string): Promise<SimulatedAgent[]> {
  const lines = (await readFile(file, 'utf8')).split('\n').filter((line) => line !== '');
  return lines.map((line) => {
    const parsed = JSON.parse(line) as { agentId: string; privateKey: string };
    const key = createPrivateKey({ key: Buffer.from(parsed.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
    return { agentId: parsed.agentId, key, credential: '' };
  });
}

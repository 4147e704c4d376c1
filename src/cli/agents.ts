import { DroverClient, Schemas, unwrap } from '../client';
import { renderTable } from './table';

export class AgentsUsageError extends Error {}

export interface AgentOptions {
  selector?: string | undefined;
  host?: string | undefined;
  'expires-in'?: string | undefined;
  /** install-command: the system user the agent runs as (install.sh --user) instead of root. */
  user?: string | undefined;
  json?: boolean | undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `-l role=web,tier=front` as labels for an enrolled host (only equalities: they are values, not a query). */
function labelsOf(text: string | undefined): Record<string, string> {
  if (text === undefined) return {};
  const labels: Record<string, string> = {};
  for (const pair of text.split(',')) {
    const match = /^\s*([^=\s]+)\s*=\s*([^=\s]*)\s*$/.exec(pair);
    if (!match?.[1]) throw new AgentsUsageError(`-l takes labels as KEY=VALUE[,KEY=VALUE...], not '${pair}'`);
    labels[match[1]] = match[2] ?? '';
  }
  return labels;
}

/** A value as one POSIX shell word. */
function shellWord(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * The line an operator runs as root on a host that has Node: it fetches the install script with
 * Node (hosts may have no curl) and runs it with the server and the one-time join token, and the
 * agent's system user when it is not to run as root.
 */
export function installCommandLine(baseUrl: string, joinToken: string, user?: string): string {
  const server = baseUrl.replace(/\/+$/, '');
  const fetchScript =
    'fetch(process.argv[1]).then(async(r)=>{if(!r.ok)throw new Error("HTTP "+r.status);process.stdout.write(await r.text())})' +
    '.catch((e)=>{console.error("drover install: "+e.message);process.exit(1)})';
  return (
    `f=$(mktemp) && node -e ${shellWord(fetchScript)} ${shellWord(`${server}/agent/v1/install.sh`)} > "$f" && ` +
    `sh "$f" --server ${shellWord(server)} --join-token ${shellWord(joinToken)}` +
    `${user === undefined ? '' : ` --user ${shellWord(user)}`}; rm -f "$f"`
  );
}

async function createJoinToken(api: DroverClient, values: AgentOptions): Promise<Schemas['CreatedJoinToken']> {
  const minutes = values['expires-in'] === undefined ? undefined : Number(values['expires-in']);
  if (minutes !== undefined && !Number.isInteger(minutes))
    throw new AgentsUsageError('--expires-in takes whole minutes');
  return unwrap(
    await api.POST('/v1/agent-join-tokens', {
      body: {
        ...(values.host === undefined ? {} : { hostName: values.host }),
        labels: labelsOf(values.selector),
        ...(minutes === undefined ? {} : { expiresInMinutes: minutes }),
      },
    }),
  );
}

async function resolveAgentId(api: DroverClient, hostOrId: string): Promise<string> {
  if (UUID.test(hostOrId)) return hostOrId;
  const agents = unwrap(await api.GET('/v1/agents')).items;
  const found = agents.find((agent) => agent.hostName === hostOrId && agent.revokedAt === null);
  if (!found) throw new AgentsUsageError(`no enrolled agent on a host named '${hostOrId}'`);
  return found.id;
}

function printAgents(agents: Schemas['AgentList']['items']): void {
  process.stdout.write(
    renderTable(
      ['HOST', 'AGENT', 'STATE', 'LAST SEEN', 'VERSION', 'OS', 'KERNEL', 'SYSTEMD'],
      agents.map((agent) => [
        agent.hostName,
        agent.id,
        agent.revokedAt ? 'revoked' : agent.online ? 'online' : 'offline',
        agent.lastSeenAt ?? '-',
        `${agent.facts?.agentVersion ?? '?'} (protocol ${agent.protocolVersion}${agent.outdated ? ', outdated' : ''})`,
        agent.facts?.os ?? '-',
        agent.facts?.kernel ?? '-',
        agent.facts?.systemdVersion ?? '-',
      ]),
    ),
  );
}

/** `drover agent ...`: enrol agents, list them, revoke them. */
export async function agentsCommand(
  api: DroverClient,
  baseUrl: string,
  args: string[],
  values: AgentOptions,
): Promise<void> {
  const [action, first] = args;
  const print = (value: unknown, human: () => void) =>
    values.json ? process.stdout.write(`${JSON.stringify(value, null, 2)}\n`) : human();
  if (action === 'install-command') {
    const token = await createJoinToken(api, values);
    const line = installCommandLine(baseUrl, token.joinToken, values.user);
    print({ ...token, installCommand: line }, () => process.stdout.write(`${line}\n`));
  } else if (action === 'join-token') {
    const token = await createJoinToken(api, values);
    print(token, () =>
      process.stdout.write(
        `${token.joinToken}\n(one agent, once, until ${token.expiresAt}${token.hostName ? `, as ${token.hostName}` : ''})\n`,
      ),
    );
  } else if (action === 'list') {
    const agents = unwrap(await api.GET('/v1/agents')).items;
    print(agents, () => printAgents(agents));
  } else if (action === 'revoke' && first) {
    const id = await resolveAgentId(api, first);
    unwrap(await api.POST('/v1/agents/{id}/revoke', { params: { path: { id } } }));
    process.stdout.write(`agent ${id} revoked: it is refused from its next request on\n`);
  } else {
    throw new AgentsUsageError(
      'agent takes: install-command [-l KEY=VALUE,...] [--host NAME] [--expires-in MINUTES] [--user NAME] | join-token [same] | list | revoke HOST|ID',
    );
  }
}

import { AGENT_PROTOCOL_VERSION } from '@drover/protocol';
import { AgentApi } from './api';
import { apiSettings, DroverAgent, EnrollRefusedError, ensureEnrolled } from './agent';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig } from './config';
import { AgentKey, readAgentState } from './identity';
import { Logger } from './log';
import { AGENT_VERSION } from './version';

/** Exit statuses (the unit's RestartPreventExitStatus names the ones a restart cannot fix). */
const EXIT_FAILURE = 1;
const EXIT_ENROLL_REFUSED = 2;
const EXIT_USAGE = 64;
const EXIT_CONFIG = 78;

const USAGE = `usage:
  drover-agent run [--config FILE] [--join-token TOKEN]     run the agent (enrols first when needed)
  drover-agent enroll [--config FILE] [--join-token TOKEN]  enrol once and exit (nothing when enrolled already)
  drover-agent rotate-key [--config FILE]                   replace the agent's key (audited); restart the agent after
  drover-agent version                                      print the agent's version
FILE defaults to ${DEFAULT_CONFIG_FILE}; TOKEN also comes from DROVER_JOIN_TOKEN or the config's joinToken.`;

class UsageError extends Error {}

interface Invocation {
  command: 'run' | 'enroll' | 'rotate-key' | 'version';
  configFile: string;
  joinToken: string | undefined;
}

export function parseArguments(argv: readonly string[]): Invocation {
  const [command, ...rest] = argv;
  if (command !== 'run' && command !== 'enroll' && command !== 'rotate-key' && command !== 'version') {
    throw new UsageError(command === undefined ? 'no command given' : `unknown command ${command}`);
  }
  const options = new Map<string, string>();
  for (let index = 0; index < rest.length; index++) {
    const [name, inline] = rest[index]!.split(/=(.*)/s, 2) as [string, string | undefined];
    if (name !== '--config' && name !== '--join-token') throw new UsageError(`unknown option ${name}`);
    const value = inline ?? rest[++index];
    if (value === undefined || value === '') throw new UsageError(`${name} needs a value`);
    options.set(name, value);
  }
  return {
    command,
    configFile: options.get('--config') ?? DEFAULT_CONFIG_FILE,
    joinToken: options.get('--join-token') ?? (process.env.DROVER_JOIN_TOKEN || undefined),
  };
}

async function main(argv: readonly string[]): Promise<number> {
  const log = new Logger();
  let invocation: Invocation;
  try {
    invocation = parseArguments(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  if (invocation.command === 'version') {
    process.stdout.write(`drover-agent ${AGENT_VERSION} (protocol ${AGENT_PROTOCOL_VERSION})\n`);
    return 0;
  }
  try {
    const config = await loadConfig(invocation.configFile);
    log.level = config.logLevel;
    const joinToken = invocation.joinToken ?? config.joinToken;
    if (invocation.command === 'enroll') {
      const api = new AgentApi(await apiSettings(config), log);
      try {
        const key = await AgentKey.loadOrCreate(config.stateDir);
        const state = await ensureEnrolled({ config, api, key, joinToken, log, retry: 'few' });
        process.stdout.write(`enrolled as agent ${state.agentId} for host ${state.hostName}\n`);
      } finally {
        await api.close();
      }
      return 0;
    }
    if (invocation.command === 'rotate-key') {
      const state = await readAgentState(config.stateDir);
      if (!state) throw new EnrollRefusedError('this agent has not enrolled yet: there is no key to rotate');
      const api = new AgentApi(await apiSettings(config), log);
      try {
        api.setIdentity(state.agentId, await AgentKey.loadOrCreate(config.stateDir));
        const next = await AgentKey.stageNext(config.stateDir);
        await api.rotateKey(next.publicKey, next.signRotation(state.agentId));
        await AgentKey.promoteStaged(config.stateDir);
      } finally {
        await api.close();
      }
      process.stdout.write(
        'rotated the agent key; restart the agent to sign with it: systemctl restart drover-agent\n',
      );
      return 0;
    }
    const agent = new DroverAgent(config, invocation.configFile, log);
    process.on('SIGTERM', () => agent.stop());
    process.on('SIGINT', () => agent.stop());
    process.on('SIGHUP', () => void agent.reload());
    return await agent.run(joinToken);
  } catch (error) {
    if (error instanceof ConfigError) {
      log.error(error.message);
      return EXIT_CONFIG;
    }
    if (error instanceof EnrollRefusedError) {
      log.error(error.message);
      return EXIT_ENROLL_REFUSED;
    }
    log.error('the agent failed', { err: error });
    return EXIT_FAILURE;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exit(EXIT_FAILURE);
    },
  );
}

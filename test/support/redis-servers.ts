import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { waitUntil } from './wait';

/** A TCP port nothing listens on right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Whether a Redis server on 127.0.0.1:port answers PING (false while it is still starting). */
export function redisAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(1_000);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Every redis-server this test process started and has not stopped: killed if the process exits. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface RedisServer {
  port: number;
  child: ChildProcess;
  /** SIGKILL (a crash, not a shutdown) and wait for the exit. */
  kill(): Promise<void>;
}

/**
 * A redis-server started as a child of this process, on 127.0.0.1 with nothing kept on disk beyond
 * its life (a replica's copy of the master's data goes to a directory of its own, removed with it)
 * and `args` added; or, given `sentinelConfig`, a sentinel with that config file (which names its port).
 */
export async function startRedisServer(
  options: { port?: number; args?: string[]; sentinelConfig?: string } = {},
): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const directory = await mkdtemp(path.join(tmpdir(), 'drover-redis-'));
  const argv =
    options.sentinelConfig === undefined
      ? ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', directory].concat(
          options.args ?? [],
        )
      : [options.sentinelConfig, '--sentinel'];
  const child = spawn('redis-server', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = once(child, 'exit');
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    running.delete(child);
    await rm(directory, { recursive: true, force: true });
  };
  try {
    await waitUntil(() => redisAnswers(port), `redis-server on port ${port} answers PING`);
  } catch (error) {
    await kill();
    throw new Error(`${(error as Error).message}; its output:\n${output}`, { cause: error });
  }
  return { port, child, kill };
}

export interface SentinelSet {
  masterName: string;
  master: RedisServer;
  replica: RedisServer;
  sentinels: RedisServer[];
  /** The sentinels as REDIS_SENTINELS wants them. */
  sentinelsSetting: string;
  /** The master's port as the sentinels see it now. */
  currentMasterPort(): Promise<number>;
  /** Has the sentinels fail over at once: the master stays up and becomes a replica of the new one. */
  failover(): Promise<void>;
  /** Starts a killed server again on its port; resolves once the sentinels made it a synchronised replica. */
  revive(server: RedisServer): Promise<RedisServer>;
  /** Kills every server of the set (safe to call more than once). */
  stop(): Promise<void>;
}

/**
 * A master, a replica of it and three sentinels (quorum 2) watching them, fast to fail over (down
 * after 1 s). Resolves once the sentinels know each other and the replica, so a failover can happen.
 */
export async function startSentinelSet(masterName: string): Promise<SentinelSet> {
  const directory = await mkdtemp(path.join(tmpdir(), 'drover-sentinel-'));
  const started: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(started.map((server) => server.kill()));
    await rm(directory, { recursive: true, force: true });
  };
  const ask = async <T>(port: number, ...args: string[]): Promise<T> => {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await client.connect();
      return (await client.call(args[0]!, ...args.slice(1))) as T;
    } finally {
      client.disconnect();
    }
  };
  try {
    const master = await startRedisServer();
    started.push(master);
    const replica = await startRedisServer({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
    started.push(replica);
    await waitUntil(
      async () => (await ask<string>(replica.port, 'INFO', 'replication')).includes('master_link_status:up'),
      'the replica has synchronised with the master',
    );
    const sentinels: RedisServer[] = [];
    for (let index = 0; index < 3; index += 1) {
      const port = await freePort();
      // A sentinel rewrites its config file: each gets its own, in the set's directory.
      const file = path.join(directory, `sentinel-${port}.conf`);
      await writeFile(
        file,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${directory}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${masterName} 1000`,
          `sentinel failover-timeout ${masterName} 5000`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      const sentinel = await startRedisServer({ port, sentinelConfig: file });
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    /** Whether every sentinel knows the others and sees `port` as a healthy replica. */
    const readyReplica = async (port: number) => {
      for (const sentinel of sentinels) {
        const quorum = await ask<string>(sentinel.port, 'SENTINEL', 'CKQUORUM', masterName).catch(() => '');
        if (!quorum.startsWith('OK 3 usable')) return false;
        const replicas = await ask<string[][]>(sentinel.port, 'SENTINEL', 'REPLICAS', masterName);
        const known = replicas
          .map(
            (fields) =>
              new Map(fields.flatMap((field, index) => (index % 2 === 0 ? [[field, fields[index + 1]]] : []))),
          )
          .find((fields) => fields.get('port') === String(port));
        if (
          !known ||
          /s_down|disconnected/.test(known.get('flags') ?? '') ||
          known.get('master-link-status') !== 'ok'
        ) {
          return false;
        }
      }
      return true;
    };
    // Sentinels find each other and the replica through the master within a few seconds.
    await waitUntil(() => readyReplica(replica.port), 'the three sentinels know each other and the replica', 30_000);
    return {
      masterName,
      master,
      replica,
      sentinels,
      sentinelsSetting: sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(','),
      currentMasterPort: async () => {
        const [, port] = await ask<[string, string]>(
          sentinels[0]!.port,
          'SENTINEL',
          'GET-MASTER-ADDR-BY-NAME',
          masterName,
        );
        return Number(port);
      },
      failover: async () => {
        assert.equal(await ask<string>(sentinels[0]!.port, 'SENTINEL', 'FAILOVER', masterName), 'OK');
      },
      revive: async (server) => {
        const revived = await startRedisServer({ port: server.port });
        started.push(revived);
        // It comes back as an empty master; the sentinels turn it into a replica of the current one.
        await waitUntil(() => readyReplica(server.port), `the sentinels made port ${server.port} a replica`, 30_000);
        return revived;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export interface RedisCluster {
  nodes: RedisServer[];
  /** The nodes as REDIS_CLUSTER_NODES wants them. */
  nodesSetting: string;
  /** Kills every node (safe to call more than once). */
  stop(): Promise<void>;
}

/** A free port whose cluster bus port (+10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port > 55_535) continue;
    const bus = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port + 10_000, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (bus) return port;
  }
}

/** A Redis Cluster of three masters (no replicas), its slots all assigned. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.kill()));
  };
  try {
    for (let index = 0; index < 3; index += 1) {
      const port = await freeClusterPort();
      // Each node keeps its nodes.conf in its own directory.
      nodes.push(await startRedisServer({ port, args: ['--cluster-enabled', 'yes'] }));
    }
    const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
    await new Promise<void>((resolve, reject) => {
      const create = spawn('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-yes'], { stdio: 'pipe' });
      let output = '';
      create.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      create.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      create.once('error', reject);
      create.once('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create: ${output}`)),
      );
    });
    const ask = new Redis({ port: nodes[0]!.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await ask.connect();
      await waitUntil(
        async () => ((await ask.call('CLUSTER', 'INFO')) as string).includes('cluster_state:ok'),
        'the cluster is ok',
        30_000,
      );
    } finally {
      ask.disconnect();
    }
    return { nodes, nodesSetting: addresses.join(','), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

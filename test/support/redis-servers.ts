import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as connectTls } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
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

/** A certificate for 127.0.0.1 that is its own CA: what TLS servers present and their clients trust. */
export interface RedisTls {
  certFile: string;
  keyFile: string;
  /** Removes the files (safe to call more than once). */
  remove(): Promise<void>;
}

/** A fresh self-signed certificate (EC P-256, one day) for servers on 127.0.0.1. */
export async function makeRedisTls(): Promise<RedisTls> {
  const directory = await mkdtemp(path.join(tmpdir(), 'drover-redis-tls-'));
  const certFile = path.join(directory, 'redis.pem');
  const keyFile = path.join(directory, 'redis.key');
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
      ...['-keyout', keyFile, '-out', certFile, '-subj', '/CN=drover-test-redis'],
      ...['-addext', 'subjectAltName=IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:TRUE'],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { certFile, keyFile, remove: () => rm(directory, { recursive: true, force: true }) };
}

/** ioredis options for a server of these (TLS trusting its certificate, or plain TCP). */
export function clientTls(tls: RedisTls | undefined): Pick<RedisOptions, 'tls'> {
  return tls ? { tls: { ca: readFileSync(tls.certFile) } } : {};
}

/**
 * Whether a Redis server on 127.0.0.1:port answers PING (false while it is still starting); one
 * that wants a password first answers too (NOAUTH).
 */
export function redisAnswers(port: number, tls?: RedisTls): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls
      ? connectTls({ port, host: '127.0.0.1', ca: readFileSync(tls.certFile) })
      : connect(port, '127.0.0.1');
    socket.setTimeout(1_000);
    socket.once(tls ? 'secureConnect' : 'connect', () => socket.write('PING\r\n'));
    socket.once('data', (data: Buffer) => {
      socket.destroy();
      resolve(/^(\+PONG|-NOAUTH)/.test(data.toString()));
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
 * and `args` added; with `tls`, it speaks only TLS on that port. Or, given `sentinelConfig`, a
 * sentinel with that config file (which names its port).
 */
export async function startRedisServer(
  options: { port?: number; args?: string[]; sentinelConfig?: string; tls?: RedisTls } = {},
): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const directory = await mkdtemp(path.join(tmpdir(), 'drover-redis-'));
  const { tls } = options;
  const listen = tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile]
        // Clients are not asked for certificates; the CA is what servers check each other against.
        .concat(['--tls-ca-cert-file', tls.certFile, '--tls-auth-clients', 'no'])
    : ['--port', String(port)];
  const argv =
    options.sentinelConfig === undefined
      ? [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', directory].concat(
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
    await waitUntil(() => redisAnswers(port, tls), `redis-server on port ${port} answers PING`);
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

/** Passwords of a Sentinel set: of its Redis servers (requirepass), and of its sentinels. */
export interface SentinelPasswords {
  servers: string;
  sentinels: string;
}

/**
 * A master, a replica of it and three sentinels (quorum 2) watching them, fast to fail over (down
 * after 1 s). Resolves once the sentinels know each other and the replica, so a failover can happen.
 * With `tls`, servers and sentinels speak only TLS, to clients and to each other; with `passwords`,
 * each wants its password (the sentinels use them among themselves too).
 */
export async function startSentinelSet(
  masterName: string,
  options: { tls?: RedisTls; passwords?: SentinelPasswords } = {},
): Promise<SentinelSet> {
  const { tls, passwords } = options;
  const directory = await mkdtemp(path.join(tmpdir(), 'drover-sentinel-'));
  const started: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(started.map((server) => server.kill()));
    await rm(directory, { recursive: true, force: true });
  };
  const sentinelPorts = new Set<number>();
  const ask = async <T>(port: number, ...args: string[]): Promise<T> => {
    const password = sentinelPorts.has(port) ? passwords?.sentinels : passwords?.servers;
    const client = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      ...(password === undefined ? {} : { password }),
      ...clientTls(tls),
    });
    try {
      await client.connect();
      return (await client.call(args[0]!, ...args.slice(1))) as T;
    } finally {
      client.disconnect();
    }
  };
  // Every server may become a replica (a failover demotes the master): each can replicate over TLS
  // and log in to whichever is master.
  const serverArgs = [
    ...(tls ? ['--tls-replication', 'yes'] : []),
    ...(passwords ? ['--requirepass', passwords.servers, '--masterauth', passwords.servers] : []),
  ];
  const startServer = (port?: number, args: string[] = []) =>
    startRedisServer({ ...(port === undefined ? {} : { port }), tls, args: [...serverArgs, ...args] });
  try {
    const master = await startServer();
    started.push(master);
    const replica = await startServer(undefined, ['--replicaof', '127.0.0.1', String(master.port)]);
    started.push(replica);
    await waitUntil(
      async () => (await ask<string>(replica.port, 'INFO', 'replication')).includes('master_link_status:up'),
      'the replica has synchronised with the master',
    );
    const sentinels: RedisServer[] = [];
    for (let index = 0; index < 3; index += 1) {
      const port = await freePort();
      sentinelPorts.add(port);
      // A sentinel rewrites its config file: each gets its own, in the set's directory.
      const file = path.join(directory, `sentinel-${port}.conf`);
      await writeFile(
        file,
        [
          ...(tls
            ? ['port 0', `tls-port ${port}`, `tls-cert-file ${tls.certFile}`, `tls-key-file ${tls.keyFile}`].concat([
                `tls-ca-cert-file ${tls.certFile}`,
                'tls-auth-clients no',
                'tls-replication yes',
              ])
            : [`port ${port}`]),
          'bind 127.0.0.1',
          `dir ${directory}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${masterName} 1000`,
          `sentinel failover-timeout ${masterName} 5000`,
          `sentinel parallel-syncs ${masterName} 1`,
          ...(passwords
            ? [
                `sentinel auth-pass ${masterName} ${passwords.servers}`,
                `requirepass ${passwords.sentinels}`,
                `sentinel sentinel-pass ${passwords.sentinels}`,
              ]
            : []),
          '',
        ].join('\n'),
      );
      const sentinel = await startRedisServer({ port, sentinelConfig: file, tls });
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
        const revived = await startServer(server.port);
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
  /** The ports of the master serving `key`'s slot and of its replica (null: none), as the cluster says now. */
  shardOf(key: string): Promise<{ master: number; replica: number | null }>;
  /** CLUSTER FAILOVER on a replica: it takes over its master's slots, and the master becomes its replica. */
  failover(replicaPort: number): Promise<void>;
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

/**
 * A Redis Cluster of three masters, its slots all assigned; with `replicas`, each master has a
 * replica, and a master that stops answering for a second is replaced by it. With `tls`, clients,
 * replication and the cluster bus speak only TLS.
 */
export async function startRedisCluster(options: { replicas?: boolean; tls?: RedisTls } = {}): Promise<RedisCluster> {
  const { tls } = options;
  const nodes: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.kill()));
  };
  // One short-lived connection to a node for one command; `port` must answer.
  const ask = async <T>(port: number, ...command: string[]): Promise<T> => {
    const client = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      ...clientTls(tls),
    });
    try {
      await client.connect();
      return (await client.call(command[0]!, ...command.slice(1))) as T;
    } finally {
      client.disconnect();
    }
  };
  const args = ['--cluster-enabled', 'yes', '--cluster-node-timeout', '1000'].concat(
    tls ? ['--tls-cluster', 'yes', '--tls-replication', 'yes'] : [],
  );
  try {
    for (let index = 0; index < (options.replicas ? 6 : 3); index += 1) {
      const port = await freeClusterPort();
      // Each node keeps its nodes.conf in its own directory.
      nodes.push(await startRedisServer({ port, args, ...(tls ? { tls } : {}) }));
    }
    const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
    const createArgs = ['--cluster', 'create', ...addresses, '--cluster-yes']
      .concat(options.replicas ? ['--cluster-replicas', '1'] : [])
      .concat(tls ? ['--tls', '--cacert', tls.certFile] : []);
    await new Promise<void>((resolve, reject) => {
      const create = spawn('redis-cli', createArgs, { stdio: 'pipe' });
      let output = '';
      create.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      create.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      create.once('error', reject);
      create.once('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create: ${output}`)),
      );
    });
    const shardOf = async (key: string) => {
      // Any node that still runs knows the cluster's map (a test may have killed some).
      const { port } = nodes.find((node) => node.child.exitCode === null && node.child.signalCode === null)!;
      const slot = await ask<number>(port, 'CLUSTER', 'KEYSLOT', key);
      const ranges = await ask<[number, number, [string, number], ...[string, number][]][]>(port, 'CLUSTER', 'SLOTS');
      const range = ranges.find(([first, last]) => first <= slot && slot <= last);
      assert.ok(range, `no node serves slot ${slot}`);
      const [, , master, replica] = range;
      return { master: master[1], replica: replica ? replica[1] : null };
    };
    await waitUntil(
      async () => {
        for (const node of nodes) {
          if (!(await ask<string>(node.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
          const replication = await ask<string>(node.port, 'INFO', 'replication');
          if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false;
        }
        return true;
      },
      'every node sees the cluster ok, and every replica has synchronised',
      30_000,
    );
    return {
      nodes,
      nodesSetting: addresses.join(','),
      shardOf,
      failover: async (replicaPort) => {
        assert.equal(await ask<string>(replicaPort, 'CLUSTER', 'FAILOVER'), 'OK');
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

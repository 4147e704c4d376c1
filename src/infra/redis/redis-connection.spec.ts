import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { parseConfig } from '../../config/config.schema';
import { bullmqConnection, createRedisClient, duplicateRedisClient } from './redis-connection';

const database = { DATABASE_URL: 'postgresql://drover@db/drover' };
const sentinelConfig = parseConfig({
  ...database,
  REDIS_SENTINELS: 'sentinel-1:26379,sentinel-2:26380',
  REDIS_SENTINEL_MASTER: 'drover',
  REDIS_PASSWORD: 'server-secret',
  REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
});
const clusterConfig = parseConfig({ ...database, REDIS_CLUSTER_NODES: 'redis-1:7000,redis-2:7001', REDIS_TLS: 'true' });

describe('createRedisClient', () => {
  it('connects to REDIS_URL as given', () => {
    const client = createRedisClient(parseConfig({ ...database, REDIS_URL: 'redis://cache:6390/2' }), {
      lazyConnect: true,
    });
    assert.ok(client instanceof Redis);
    assert.equal(client.options.host, 'cache');
    assert.equal(client.options.port, 6390);
    assert.equal(client.options.db, 2);
    assert.equal(client.options.sentinels, null);
    client.disconnect();
  });

  it('asks the sentinels for the master by name, with both passwords, and follows failovers', () => {
    const client = createRedisClient(sentinelConfig, { lazyConnect: true, maxRetriesPerRequest: 1 });
    assert.ok(client instanceof Redis);
    assert.deepEqual(client.options.sentinels, [
      { host: 'sentinel-1', port: 26379 },
      { host: 'sentinel-2', port: 26380 },
    ]);
    assert.equal(client.options.name, 'drover');
    assert.equal(client.options.password, 'server-secret');
    assert.equal(client.options.sentinelPassword, 'sentinel-secret');
    assert.equal(client.options.maxRetriesPerRequest, 1, 'the caller’s behaviour options are kept');
    assert.equal(client.options.enableTLSForSentinelMode, false);
    const reconnect = client.options.reconnectOnError;
    assert.ok(reconnect);
    assert.equal(reconnect(new Error("READONLY You can't write against a read only replica.")), 2);
    assert.equal(reconnect(new Error('WRONGTYPE Operation against a key holding the wrong kind of value')), false);
    client.disconnect();
  });

  it('speaks TLS to the sentinels and to the master they name when REDIS_TLS is true', () => {
    const client = createRedisClient(
      parseConfig({ ...database, REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_MASTER: 'm', REDIS_TLS: 'true' }),
      { lazyConnect: true },
    );
    assert.ok(client instanceof Redis);
    assert.deepEqual(client.options.tls, {});
    assert.deepEqual(client.options.sentinelTLS, {});
    assert.equal(client.options.enableTLSForSentinelMode, true);
    client.disconnect();
  });

  it('opens a Cluster client on the given nodes, server options (TLS, behaviour) for every node', () => {
    const client = createRedisClient(clusterConfig, { lazyConnect: true, maxRetriesPerRequest: 1 });
    assert.ok(client instanceof Cluster);
    // Private in the typings, and what ioredis connects to first.
    assert.deepEqual(Reflect.get(client, 'startupNodes'), [
      { host: 'redis-1', port: 7000 },
      { host: 'redis-2', port: 7001 },
    ]);
    assert.equal(client.options.lazyConnect, true);
    assert.deepEqual(client.options.redisOptions?.tls, {});
    assert.equal(client.options.redisOptions?.maxRetriesPerRequest, 1);
    const copy = duplicateRedisClient(client);
    assert.ok(copy instanceof Cluster);
    client.disconnect();
    copy.disconnect();
  });
});

describe('a private CA for Redis’s TLS (REDIS_TLS_CA_FILE)', () => {
  const pem = '-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n';
  const withCa = async <T>(use: (file: string) => T): Promise<T> => {
    const directory = await mkdtemp(path.join(tmpdir(), 'drover-ca-'));
    try {
      const file = path.join(directory, 'ca.pem');
      await writeFile(file, pem);
      return use(file);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  };

  it('is trusted on every connection: a Cluster’s nodes, sentinels and their master, a rediss:// URL, BullMQ’s', async () => {
    await withCa((file) => {
      const cluster = createRedisClient({ ...clusterConfig, REDIS_TLS_CA_FILE: file }, { lazyConnect: true });
      assert.ok(cluster instanceof Cluster);
      assert.equal(String((cluster.options.redisOptions?.tls as { ca: Buffer }).ca), pem);
      cluster.disconnect();

      const sentinels = parseConfig({
        ...database,
        REDIS_SENTINELS: 's:26379',
        REDIS_SENTINEL_MASTER: 'm',
        REDIS_TLS: 'true',
        REDIS_TLS_CA_FILE: file,
      });
      const viaSentinels = createRedisClient(sentinels, { lazyConnect: true });
      assert.equal(String((viaSentinels.options as { tls: { ca: Buffer } }).tls.ca), pem);
      assert.equal(String((viaSentinels.options as { sentinelTLS: { ca: Buffer } }).sentinelTLS.ca), pem);
      viaSentinels.disconnect();

      const url = parseConfig({ ...database, REDIS_URL: 'rediss://cache:6380', REDIS_TLS_CA_FILE: file });
      const direct = createRedisClient(url, { lazyConnect: true });
      assert.equal(String((direct.options as { tls: { ca: Buffer } }).tls.ca), pem);
      direct.disconnect();
      const forBullmq = bullmqConnection(url) as { url: string; tls: { ca: Buffer } };
      assert.equal(forBullmq.url, 'rediss://cache:6380');
      assert.equal(String(forBullmq.tls.ca), pem);
    });
  });

  it('names the variable when the file cannot be read', () => {
    const config = { ...clusterConfig, REDIS_TLS_CA_FILE: '/nonexistent/drover-ca.pem' };
    assert.throws(
      () => createRedisClient(config, { lazyConnect: true }),
      /^Error: REDIS_TLS_CA_FILE: cannot read \/nonexistent\/drover-ca\.pem: ENOENT/,
    );
  });
});

describe('bullmqConnection', () => {
  it('gives options for one server or sentinels, never retrying a command out (workers block)', () => {
    assert.deepEqual(bullmqConnection(parseConfig({ ...database, REDIS_URL: 'redis://cache:6379' })), {
      url: 'redis://cache:6379',
      maxRetriesPerRequest: null,
    });
    const sentinel = bullmqConnection(sentinelConfig) as Record<string, unknown>;
    assert.equal(sentinel.name, 'drover');
    assert.equal(sentinel.maxRetriesPerRequest, null);
    assert.equal(sentinel.url, undefined);
  });

  it('gives BullMQ a lazily connecting Cluster client, as it accepts a Cluster only that way', () => {
    const connection = bullmqConnection(clusterConfig);
    assert.ok(connection instanceof Cluster);
    assert.equal(connection.status, 'wait');
    assert.equal(connection.options.redisOptions?.maxRetriesPerRequest, null);
    connection.disconnect();
  });
});

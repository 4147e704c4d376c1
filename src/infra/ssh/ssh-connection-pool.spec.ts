import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { SshConnectionPool } from './ssh-connection-pool';
import type { SshConnection } from './ssh-connection';

/** A connection that never touches the network: it opens (or fails) when the test says so. */
class FakeConnection {
  readonly ready: Promise<void>;
  open!: () => void;
  fail!: (error: Error) => void;
  isClosed = false;
  ended = false;
  readonly logFields = { hostId: 'h', host: 'h' };
  readonly closeReason = '';

  constructor(private readonly onClose: () => void) {
    this.ready = new Promise((resolve, reject) => {
      this.open = resolve;
      this.fail = reject;
    });
    // The pool handles a failed attempt itself; the acquirer or warmer sees the error.
    this.ready.catch(() => undefined);
  }

  whenClosed(): Promise<void> {
    return Promise.resolve();
  }

  end(): void {
    this.ended = true;
    this.destroy();
  }

  destroy(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.onClose();
  }
}

function pool(maxConnections: number) {
  const made = new Map<string, FakeConnection[]>();
  const connectAs = (key: string) => (onClose: () => void) => {
    const connection = new FakeConnection(onClose);
    made.set(key, [...(made.get(key) ?? []), connection]);
    return connection as unknown as SshConnection;
  };
  const subject = new SshConnectionPool(
    { maxConnections, maxSessionsPerConnection: 4, idleTimeoutMs: 60_000 },
    new Logger('pool-spec'),
  );
  return { subject, made, connectAs };
}

/** Lets every pending promise callback run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('SshConnectionPool.warm: connecting ahead of the first command', () => {
  it('opens a connection the next command on that host then reuses', async () => {
    const { subject, made, connectAs } = pool(2);
    const warming = subject.warm('a', connectAs('a'));
    made.get('a')![0]!.open();
    await warming;
    assert.deepEqual(subject.stats, { connectionsOpened: 1, openConnections: 1 });

    const lease = await subject.acquire('a', connectAs('a'));
    assert.equal(lease.reused, true);
    assert.equal(made.get('a')!.length, 1, 'no second connection');
    lease.release();
    await subject.closeAll(0);
  });

  it('does nothing for a host already connected or connecting', async () => {
    const { subject, made, connectAs } = pool(2);
    const acquiring = subject.acquire('a', connectAs('a'));
    await subject.warm('a', connectAs('a'));
    assert.equal(made.get('a')!.length, 1);
    made.get('a')![0]!.open();
    (await acquiring).release();
    await subject.closeAll(0);
  });

  it('never takes the last free place: a full pool is neither evicted from nor waited on', async () => {
    const { subject, made, connectAs } = pool(1);
    const idle = subject.warm('a', connectAs('a'));
    made.get('a')![0]!.open();
    await idle;
    await subject.warm('b', connectAs('b'));
    assert.equal(made.get('b'), undefined, 'no connection to b was attempted');
    assert.equal(made.get('a')![0]!.ended, false, 'the idle connection to a was kept');
    await subject.closeAll(0);
  });

  it('rejects with the connect error and keeps nothing of a failed attempt', async () => {
    const { subject, made, connectAs } = pool(1);
    const warming = subject.warm('a', connectAs('a'));
    made.get('a')![0]!.fail(new Error('host key mismatch'));
    await assert.rejects(warming, /host key mismatch/);
    await settle();
    assert.deepEqual(subject.stats, { connectionsOpened: 0, openConnections: 0 });

    // The place is free again: a command's acquire opens a new connection.
    const acquiring = subject.acquire('a', connectAs('a'));
    made.get('a')![1]!.open();
    const lease = await acquiring;
    assert.equal(lease.reused, false);
    lease.release();
    await subject.closeAll(0);
  });
});

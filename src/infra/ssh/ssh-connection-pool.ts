import type { Logger } from '@nestjs/common';
import { ChannelFailure, SshConnection } from './ssh-connection';
import { waitAtMost } from '../../common/concurrency/wait-at-most';

export interface PoolLimits {
  maxConnections: number;
  maxSessionsPerConnection: number;
  idleTimeoutMs: number;
}

/** A session slot on a pooled connection. Release it exactly once, when its channel has closed. */
export interface Lease {
  connection: SshConnection;
  /** False when this acquire opened the connection; true when it joined an existing one. */
  reused: boolean;
  release(): void;
}

interface Entry {
  key: string;
  connection: SshConnection;
  isReady: boolean;
  /** Acquirers attached to the entry: waiting for the connection or a session, or holding one. */
  users: number;
  activeSessions: number;
  /** Acquirers waiting for a session, first come first served. */
  sessionQueue: { resolve: () => void; reject: (error: Error) => void }[];
  idleTimer?: NodeJS.Timeout;
}

/**
 * One SSH connection per key (host + address + port + user + host key policy, so an inventory
 * change opens a new one), shared by every command for that host:
 * - concurrent first uses join the same connect attempt; a failed attempt is never pooled;
 * - at most `maxSessionsPerConnection` channels at once per connection, the rest wait in order;
 * - at most `maxConnections` connections (connecting ones included): the least recently used idle
 *   one is closed to make room, and when all are busy the acquirer waits for one to become idle;
 * - a connection idle for `idleTimeoutMs` is closed; a closed one leaves the pool at once.
 */
export class SshConnectionPool {
  /** Map order is recency: every use moves an entry to the end, so the first idle one is the LRU. */
  private readonly entries = new Map<string, Entry>();
  private capacityWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private shutDown = false;
  private opened = 0;
  private open = 0;

  constructor(
    private readonly limits: PoolLimits,
    private readonly logger: Logger,
  ) {}

  /** Connections that completed authentication since start, and those open now. */
  get stats(): { connectionsOpened: number; openConnections: number } {
    return { connectionsOpened: this.opened, openConnections: this.open };
  }

  /**
   * A session slot on the connection for `key`, opening it with `connect` if there is none. Rejects
   * with the connect attempt's SshError, or a ChannelFailure when the connection closed while the
   * caller waited for a slot (nothing started then).
   */
  async acquire(key: string, connect: (onClose: () => void) => SshConnection): Promise<Lease> {
    const { entry, reused } = await this.attach(key, connect);
    try {
      await entry.connection.ready;
      await this.takeSession(entry);
    } catch (error) {
      this.detach(entry);
      throw error;
    }
    let released = false;
    return {
      connection: entry.connection,
      reused,
      release: () => {
        if (released) return;
        released = true;
        this.releaseSession(entry);
        this.detach(entry);
      },
    };
  }

  /**
   * Opens the connection for `key` ahead of its first command, only when there is none yet and the
   * pool has a free place: it never evicts a connection nor waits for room, so a connection opened
   * ahead never takes the place a command needs. Resolves when it is open (idle from then on, closed
   * after the idle timeout like any other) or nothing was to be done; rejects with the connect
   * attempt's error.
   */
  async warm(key: string, connect: (onClose: () => void) => SshConnection): Promise<void> {
    if (this.shutDown || this.entries.has(key) || this.entries.size >= this.limits.maxConnections) return;
    const entry = this.create(key, connect);
    this.use(entry);
    try {
      await entry.connection.ready;
    } finally {
      this.detach(entry);
    }
  }

  /** Closes every connection (politely, then forcibly after `graceMs`) and refuses new work. */
  async closeAll(graceMs: number): Promise<void> {
    this.shutDown = true;
    for (const waiter of this.capacityWaiters.splice(0)) waiter.reject(new Error('the SSH executor is shut down'));
    const entries = [...this.entries.values()];
    for (const entry of entries) {
      if (entry.isReady) entry.connection.end();
      else entry.connection.destroy('the SSH executor is shutting down');
    }
    await waitAtMost(Promise.all(entries.map((entry) => entry.connection.whenClosed())), graceMs);
    for (const entry of entries) entry.connection.destroy('the SSH executor is shutting down');
  }

  /** The entry for `key` with this acquirer attached; creates it when there is room. */
  private async attach(
    key: string,
    connect: (onClose: () => void) => SshConnection,
  ): Promise<{ entry: Entry; reused: boolean }> {
    for (;;) {
      if (this.shutDown) throw new Error('the SSH executor is shut down');
      // Checking and creating happen in one synchronous step, so concurrent first uses share one
      // entry and the limit is never overshot.
      const existing = this.entries.get(key);
      if (existing) {
        this.use(existing);
        return { entry: existing, reused: true };
      }
      if (this.entries.size < this.limits.maxConnections || this.evictLeastRecentlyUsedIdle()) {
        const entry = this.create(key, connect);
        this.use(entry);
        return { entry, reused: false };
      }
      await new Promise<void>((resolve, reject) => this.capacityWaiters.push({ resolve, reject }));
    }
  }

  private create(key: string, connect: (onClose: () => void) => SshConnection): Entry {
    const entry: Entry = {
      key,
      connection: connect(() => this.onClosed(entry)),
      isReady: false,
      users: 0,
      activeSessions: 0,
      sessionQueue: [],
    };
    this.entries.set(key, entry);
    entry.connection.ready.then(
      () => {
        entry.isReady = true;
        this.opened++;
        this.open++;
        this.logger.debug({ ...entry.connection.logFields }, 'SSH connection opened');
      },
      () => {
        // The acquirers get the error; the entry must not be found by anyone else.
        this.remove(entry);
        entry.connection.destroy('the connect attempt failed');
      },
    );
    return entry;
  }

  private use(entry: Entry): void {
    entry.users++;
    clearTimeout(entry.idleTimer);
    this.touch(entry);
  }

  private detach(entry: Entry): void {
    entry.users--;
    if (entry.users > 0 || !entry.isReady || entry.connection.isClosed || this.entries.get(entry.key) !== entry) return;
    this.touch(entry);
    entry.idleTimer = setTimeout(() => {
      this.logger.debug({ ...entry.connection.logFields }, 'closing idle SSH connection');
      this.remove(entry);
      entry.connection.end();
    }, this.limits.idleTimeoutMs).unref();
    this.wakeCapacityWaiters();
  }

  private takeSession(entry: Entry): Promise<void> {
    if (entry.connection.isClosed) {
      return Promise.reject(new ChannelFailure('the connection closed before the command was sent', false, true));
    }
    if (entry.activeSessions < this.limits.maxSessionsPerConnection) {
      entry.activeSessions++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => entry.sessionQueue.push({ resolve, reject }));
  }

  private releaseSession(entry: Entry): void {
    const next = entry.sessionQueue.shift();
    // The slot passes straight to the next waiter, so nobody can jump the queue.
    if (next) next.resolve();
    else entry.activeSessions--;
  }

  private evictLeastRecentlyUsedIdle(): boolean {
    for (const entry of this.entries.values()) {
      if (entry.users === 0 && entry.isReady) {
        this.logger.debug({ ...entry.connection.logFields }, 'closing least recently used SSH connection: pool full');
        this.remove(entry);
        entry.connection.end();
        return true;
      }
    }
    return false;
  }

  private onClosed(entry: Entry): void {
    if (entry.isReady) {
      this.open--;
      this.logger.debug({ ...entry.connection.logFields }, `SSH connection closed: ${entry.connection.closeReason}`);
    }
    this.remove(entry);
    const failure = new ChannelFailure('the connection closed while the command waited for a session', false, true);
    for (const waiter of entry.sessionQueue.splice(0)) waiter.reject(failure);
  }

  private remove(entry: Entry): void {
    clearTimeout(entry.idleTimer);
    if (this.entries.get(entry.key) !== entry) return;
    this.entries.delete(entry.key);
    this.wakeCapacityWaiters();
  }

  private touch(entry: Entry): void {
    if (this.entries.get(entry.key) !== entry) return;
    this.entries.delete(entry.key);
    this.entries.set(entry.key, entry);
  }

  /** Every waiter re-checks, in arrival order; those that still find no room queue again. */
  private wakeCapacityWaiters(): void {
    for (const waiter of this.capacityWaiters.splice(0)) waiter.resolve();
  }
}

import { Client, ClientChannel, ClientErrorExtensions } from 'ssh2';
import type { Turns } from '../../common/concurrency/turns';
import { sha256Fingerprint } from './host-key';
import { HostKeyMismatchError, HostUnreachableError, SshError } from './ssh-errors';
import type { HostKeyPolicy, SshTarget } from './ssh-target';

export interface ConnectionSettings {
  privateKey: Buffer;
  /** Bounds TCP connect + banner + key exchange + authentication (ssh2's readyTimeout), from its turn at the gate. */
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
  /** Where the connection waits for its turn to start the handshake. */
  handshakes: Turns;
}

/**
 * Three unanswered keepalives (one every keepaliveIntervalMs) and ssh2 drops the connection: a dead
 * or frozen peer is noticed within 4 intervals even when no command is running.
 */
const KEEPALIVE_COUNT_MAX = 3;

/**
 * A command could not be run on a connection. Internal to the executor, which turns it into a
 * HostUnreachableError or, when nothing started and the connection is gone, reconnects once.
 */
export interface ExitStatus {
  exitCode: number | null;
  signal: string | null;
}

/** A command started on a channel; its exit status once the server reported one. */
export interface StartedCommand {
  channel: ClientChannel;
  exitStatus: () => ExitStatus | null;
}

export class ChannelFailure extends Error {
  constructor(
    message: string,
    readonly commandMayHaveStarted: boolean,
    readonly connectionLost: boolean,
  ) {
    super(message);
  }
}

/**
 * One authenticated ssh2 connection to a host. It starts connecting when constructed, as soon as the
 * handshake gate gives it a turn; `ready` settles when it can run commands or with the SshError that
 * prevented it. The host key is
 * checked in the handshake, before authentication: a refused key means no command can run.
 */
export class SshConnection {
  readonly ready: Promise<void>;
  /** The host key the server presented, once it did (the pinned one, or the first-use one). */
  presentedFingerprint: string | null = null;
  private readonly client = new Client();
  private closed = false;
  /** The first known cause of the close ('Keepalive timeout', 'read ECONNRESET', ours). */
  private reason: string | null = null;
  private readonly closedPromise: Promise<void>;
  private readonly markClosed: (reason: string | null) => void;

  constructor(
    private readonly target: SshTarget,
    private readonly hostKeyPolicy: HostKeyPolicy,
    settings: ConnectionSettings,
    onClose: () => void,
  ) {
    let resolveClosed = (): void => undefined;
    this.closedPromise = new Promise((resolve) => (resolveClosed = resolve));
    let rejectReady = (_error: Error): void => undefined;
    this.ready = new Promise((resolve, reject) => {
      rejectReady = reject;
      let isReady = false;
      this.client.on('ready', () => {
        isReady = true;
        resolve();
      });
      // ssh2 reports a failure as 'error' and then 'end'/'close': the error says what happened.
      this.client.on('error', (error: Error & ClientErrorExtensions) => {
        this.reason ??= error.message;
        if (!isReady) reject(this.connectFailure(error, settings.connectTimeoutMs));
      });
    });
    this.markClosed = (reason) => {
      if (this.closed) return;
      this.closed = true;
      this.reason ??= reason;
      rejectReady(
        new HostUnreachableError(target.name, `connection to ${this.endpoint} closed: ${this.closeReason}`, false),
      );
      resolveClosed();
      onClose();
    };
    this.client.on('end', () => this.markClosed(null));
    this.client.on('close', () => this.markClosed(null));
    const turn = settings.handshakes.enter();
    void turn.then((leave) => {
      // Closed while it waited (the executor shut down): it never connects.
      if (this.closed) return leave();
      // The turn ends with the handshake, however it ends.
      this.ready.then(leave, leave);
      this.client.connect({
        host: target.address,
        port: target.port,
        username: target.sshUser,
        privateKey: settings.privateKey,
        readyTimeout: settings.connectTimeoutMs,
        keepaliveInterval: settings.keepaliveIntervalMs,
        keepaliveCountMax: KEEPALIVE_COUNT_MAX,
        hostVerifier: (key: Buffer) => this.verifyHostKey(key),
      });
    });
  }

  /** What every log line about this connection carries (never secrets). */
  get logFields(): { hostId: string; host: string } {
    return { hostId: this.target.hostId, host: this.target.name };
  }

  /** Why the connection failed or closed, for error messages. */
  get closeReason(): string {
    return this.reason ?? 'the server closed the connection';
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves once the connection is closed, for whatever reason. */
  whenClosed(): Promise<void> {
    return this.closedPromise;
  }

  /**
   * Opens a session channel and starts `command` in it. A rejection is a ChannelFailure that says
   * whether the command may have started (the exec request was sent) and whether the connection
   * is gone.
   */
  exec(command: string): Promise<StartedCommand> {
    return new Promise((resolve, reject) => {
      try {
        this.client.exec(command, (error, channel) => {
          if (!error) {
            // Listen for the exit status right here, synchronously: with several sessions on one
            // connection the server's exit-status can arrive in the same tick, before a listener
            // attached after the promise resolves, and a plain event is not replayed.
            let exit: ExitStatus | null = null;
            channel.on('exit', (code: number | null, signal?: string) => {
              exit = { exitCode: code ?? null, signal: signal ?? null };
            });
            resolve({ channel, exitStatus: () => exit });
            return;
          }
          // ssh2 reports a failed exec request (the server said no, or the connection died while we
          // waited for its answer) as 'Unable to exec'; anything else failed before the request.
          const execRequestSent = error.message === 'Unable to exec';
          const lost = this.closed;
          reject(new ChannelFailure(`could not start the command: ${error.message}`, execRequestSent && lost, lost));
        });
      } catch (error) {
        // ssh2 throws 'Not connected' synchronously when the socket is already gone.
        reject(new ChannelFailure(`could not start the command: ${(error as Error).message}`, false, true));
      }
    });
  }

  /** Polite close: SSH disconnect, then the socket ends. */
  end(): void {
    this.client.end();
  }

  /** Immediate close (a peer that no longer answers, or shutdown); counts as closed at once. */
  destroy(reason: string): void {
    this.client.destroy();
    this.markClosed(reason);
  }

  private get endpoint(): string {
    return `${this.target.sshUser}@${this.target.address}:${this.target.port}`;
  }

  private verifyHostKey(key: Buffer): boolean {
    this.presentedFingerprint = sha256Fingerprint(key);
    return 'trustOnFirstUse' in this.hostKeyPolicy || this.presentedFingerprint === this.hostKeyPolicy.pinned;
  }

  private connectFailure(error: Error & ClientErrorExtensions, connectTimeoutMs: number): SshError {
    const { name } = this.target;
    const presented = this.presentedFingerprint;
    if ('pinned' in this.hostKeyPolicy && presented !== null && presented !== this.hostKeyPolicy.pinned) {
      return new HostKeyMismatchError(name, this.hostKeyPolicy.pinned, presented);
    }
    const options = { cause: error };
    switch (error.level) {
      case 'client-timeout':
        return new HostUnreachableError(
          name,
          `no SSH handshake with ${this.endpoint} within ${connectTimeoutMs} ms`,
          false,
          options,
        );
      case 'client-authentication':
        return new HostUnreachableError(name, `${this.endpoint} refused our key: ${error.message}`, false, options);
      default:
        return new HostUnreachableError(name, `cannot connect to ${this.endpoint}: ${error.message}`, false, options);
    }
  }
}

import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import type { ClientChannel } from 'ssh2';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { CappedOutput, DEFAULT_MAX_OUTPUT_BYTES } from './capped-output';
import { readPrivateKey } from './private-key';
import { shellQuote } from './shell-quote';
import { ChannelFailure, SshConnection } from './ssh-connection';
import { Lease, SshConnectionPool } from './ssh-connection-pool';
import { CommandTimeoutError, HostKeyNotPinnedError, HostUnreachableError, SudoRefusedError } from './ssh-errors';
import type { HostKeyPolicy, SshTarget } from './ssh-target';

export type { SshTarget } from './ssh-target';

export interface ExecOptions {
  /** Upper bound for the command, from the moment it is sent; default SSH_COMMAND_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Only for a target without a pinned fingerprint: accept the presented key and report it. */
  trustOnFirstUse?: boolean;
  /** Per stream; beyond it the head and the tail are kept (default 1 MiB). */
  maxOutputBytes?: number;
  /** Every piece of output as it arrives (whole UTF-8 characters), e.g. to stream it to storage. */
  onData?: (chunk: string, stream: 'stdout' | 'stderr') => void;
}

export interface ExecResult {
  exitCode: number | null;
  /** e.g. 'SIGKILL' when the command died of a signal (exitCode is null then). */
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  truncated: boolean;
  /** The key the host presented: the pinned one, or the one trusted on first use (to be pinned). */
  hostKeyFingerprint: string;
  connectionReused: boolean;
}

/**
 * Seconds between the watchdog's SIGTERM and its SIGKILL. TERM first because sudo relays TERM to
 * the command but cannot relay KILL (a killed sudo would leave the command running).
 */
const WATCHDOG_KILL_AFTER_S = 2;

/** What coreutils `timeout` exits with when it had to stop the command. */
const WATCHDOG_EXIT_CODE = 124;

/** sudo's own refusals (sudo 1.8/1.9 wording), printed on stderr with exit status 1. */
const SUDO_REFUSAL =
  /^sudo: (a password is required|a terminal is required|sorry, you must have a tty)|is not allowed to execute|is not in the sudoers file|may not run sudo/m;

const MAX_TIMER_MS = 2 ** 31 - 1;

/** How long onModuleDestroy lets connections say goodbye before cutting them. */
const SHUTDOWN_GRACE_MS = 2_000;

/**
 * Runs commands on fleet hosts over SSH, as root (directly, or through `sudo -n` for another login
 * user). Callers give an argv, never shell text: it is quoted for the remote shell element by
 * element. Host keys are always verified against the pinned fingerprint. Connections are pooled
 * per host (see SshConnectionPool). Every failure about a host is an SshError subclass.
 *
 * Killing a command that runs too long: each command runs under coreutils `timeout` on the host
 * (TERM at the deadline, KILL 2 s later), so it is stopped even when the connection is gone. On
 * our side the deadline sends the channel a KILL signal and closes it, but that alone is not
 * enough: OpenSSH refuses signal requests for root logins ("session signalling requires privilege
 * separation") and cannot signal a root command under sudo for another user, and closing a channel
 * without a pty does not signal the command at all (sshd waits for it to exit). Hosts therefore
 * need coreutils' `timeout` and a POSIX-compatible login shell.
 */
@Injectable()
export class SshExecutor implements OnModuleDestroy {
  private readonly logger = new Logger(SshExecutor.name);
  private readonly pool: SshConnectionPool;
  private privateKey: Promise<Buffer> | undefined;
  private commandsRun = 0;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.pool = new SshConnectionPool(
      {
        maxConnections: config.SSH_POOL_MAX_CONNECTIONS,
        maxSessionsPerConnection: config.SSH_MAX_SESSIONS_PER_HOST,
        idleTimeoutMs: config.SSH_IDLE_TIMEOUT_MS,
      },
      this.logger,
    );
  }

  /**
   * Runs `argv` on `target` as root. A non-zero exit status is a result, not an error. Throws
   * HostKeyNotPinnedError, HostKeyMismatchError, HostUnreachableError, CommandTimeoutError or
   * SudoRefusedError about the host; a plain Error for a bad argv, options or private key.
   */
  async exec(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = options.timeoutMs ?? this.config.SSH_COMMAND_TIMEOUT_MS;
    // Node's timers cannot wait longer than 2^31 - 1 ms (they would fire at once).
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMER_MS) {
      throw new RangeError(`timeoutMs must be a whole number of ms from 1 to ${MAX_TIMER_MS}`);
    }
    const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes < 2) {
      throw new RangeError('maxOutputBytes must be a whole number ≥ 2');
    }
    const hostKeyPolicy = this.hostKeyPolicy(target, options);
    const usesSudo = target.sshUser !== 'root';
    // The only unquoted words are ours. `exec`: the login shell becomes the command (no shell left
    // between sshd and it, so exit signals are reported as such). stdin is /dev/null: the command
    // sees EOF instead of waiting for input, and our side of the channel stays open, which sshd
    // needs to accept a signal for it.
    const command = `exec ${shellQuote(this.prefix(timeoutMs, usesSudo))} ${shellQuote(argv)} </dev/null`;
    const privateKey = await this.loadPrivateKey();
    const key = JSON.stringify([target.hostId, target.address, target.port, target.sshUser, hostKeyPolicy]);
    const connect = (onClose: () => void): SshConnection =>
      new SshConnection(
        target,
        hostKeyPolicy,
        {
          privateKey,
          connectTimeoutMs: this.config.SSH_CONNECT_TIMEOUT_MS,
          keepaliveIntervalMs: this.config.SSH_KEEPALIVE_INTERVAL_MS,
        },
        onClose,
      );

    for (let attempt = 1; ; attempt++) {
      try {
        const lease = await this.pool.acquire(key, connect);
        return await this.run(target, lease, command, argv, { ...options, timeoutMs, maxOutputBytes, usesSudo });
      } catch (error) {
        if (!(error instanceof ChannelFailure)) throw error;
        // A pooled connection found dead before the command was sent: nothing ran, so one fresh
        // connection is safe. A command that may have started is never sent twice.
        if (attempt === 1 && error.connectionLost && !error.commandMayHaveStarted) {
          this.logger.warn({ hostId: target.hostId, host: target.name }, `reconnecting: ${error.message}`);
          continue;
        }
        throw new HostUnreachableError(target.name, error.message, error.commandMayHaveStarted, { cause: error });
      }
    }
  }

  stats(): { connectionsOpened: number; openConnections: number; commandsRun: number } {
    return { ...this.pool.stats, commandsRun: this.commandsRun };
  }

  async onModuleDestroy(): Promise<void> {
    await this.pool.closeAll(SHUTDOWN_GRACE_MS);
  }

  private hostKeyPolicy(target: SshTarget, options: ExecOptions): HostKeyPolicy {
    if (target.hostKeyFingerprint !== null) return { pinned: target.hostKeyFingerprint };
    if (options.trustOnFirstUse === true) return { trustOnFirstUse: true };
    throw new HostKeyNotPinnedError(target.name);
  }

  /** What runs before the caller's argv: the remote watchdog, then sudo for a non-root login. */
  private prefix(timeoutMs: number, usesSudo: boolean): string[] {
    const watchdog = ['timeout', `--kill-after=${WATCHDOG_KILL_AFTER_S}s`, `${timeoutMs / 1000}s`];
    // -n: fail instead of prompting for a password; --: the argv is never read as sudo options.
    return usesSudo ? [...watchdog, 'sudo', '-n', '--'] : watchdog;
  }

  /** Read once; a failed read is retried next time (the file may be fixed without a restart). */
  private loadPrivateKey(): Promise<Buffer> {
    this.privateKey ??= readPrivateKey(this.config.SSH_PRIVATE_KEY_PATH).catch((error: unknown) => {
      this.privateKey = undefined;
      throw error;
    });
    return this.privateKey;
  }

  /**
   * Runs one command on a leased session. Settles at exit, at the deadline, or when the
   * connection dies; the lease is released only when the channel has really closed, because until
   * then the server still counts the session.
   */
  private run(
    target: SshTarget,
    lease: Lease,
    command: string,
    argv: readonly string[],
    options: ExecOptions & { timeoutMs: number; maxOutputBytes: number; usesSudo: boolean },
  ): Promise<ExecResult> {
    const { connection } = lease;
    const { timeoutMs, maxOutputBytes } = options;
    const logFields = { hostId: target.hostId, host: target.name };
    const display = shellQuote(argv);
    const output = { stdout: new CappedOutput(maxOutputBytes), stderr: new CappedOutput(maxOutputBytes) };
    const startedAt = performance.now();

    return new Promise((resolve, reject) => {
      let channel: ClientChannel | undefined;
      let settled = false;
      const settle = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        outcome();
      };

      const deadline = setTimeout(() => {
        if (channel === undefined) {
          // A live sshd answers a channel open within milliseconds: this one is hung (frozen host,
          // dead peer keepalive has not caught yet). Drop the connection so nobody else waits on it.
          this.logger.warn(
            logFields,
            `no answer to starting a command within ${timeoutMs} ms; dropping the connection`,
          );
          settle(() =>
            reject(
              new HostUnreachableError(target.name, `no answer to starting the command within ${timeoutMs} ms`, true),
            ),
          );
          connection.destroy(`no answer to starting a command within ${timeoutMs} ms`);
          return;
        }
        this.logger.warn(logFields, `command timed out after ${timeoutMs} ms; killing it`);
        settle(() =>
          reject(
            new CommandTimeoutError(
              target.name,
              display,
              timeoutMs,
              output.stdout.toString(),
              output.stderr.toString(),
            ),
          ),
        );
        channel.signal('KILL');
        channel.close();
      }, timeoutMs);

      connection.exec(command).then(
        ({ channel: opened, exitStatus }) => {
          this.commandsRun++;
          channel = opened;
          this.collect(opened, output, options.onData, logFields, () => {
            const exit = exitStatus();
            lease.release();
            const durationMs = Math.round(performance.now() - startedAt);
            if (exit === null && connection.isClosed) {
              const reason = `connection lost while the command ran: ${connection.closeReason}`;
              settle(() => reject(new HostUnreachableError(target.name, reason, true)));
              return;
            }
            // A server may close a channel without an exit status; then both stay null.
            const status = exit ?? { exitCode: null, signal: null };
            const stdout = output.stdout.toString();
            const stderr = output.stderr.toString();
            if (status.exitCode === WATCHDOG_EXIT_CODE && durationMs >= timeoutMs) {
              // The host's watchdog fired before our timer got to run (a busy event loop).
              settle(() => reject(new CommandTimeoutError(target.name, display, timeoutMs, stdout, stderr)));
              return;
            }
            if (options.usesSudo && status.exitCode === 1 && SUDO_REFUSAL.test(stderr)) {
              settle(() => reject(new SudoRefusedError(target.name, target.sshUser, display, stderr)));
              return;
            }
            settle(() =>
              resolve({
                ...status,
                stdout,
                stderr,
                durationMs,
                truncated: output.stdout.truncated || output.stderr.truncated,
                hostKeyFingerprint: connection.presentedFingerprint!,
                connectionReused: lease.reused,
              }),
            );
          });
        },
        (error: Error) => {
          lease.release();
          settle(() => reject(error));
        },
      );
    });
  }

  /**
   * Collects both streams of a channel and calls `done` once the channel and its stderr have
   * closed (the exit status, if any, is known by then).
   */
  private collect(
    channel: ClientChannel,
    output: { stdout: CappedOutput; stderr: CappedOutput },
    onData: ExecOptions['onData'],
    logFields: { hostId: string; host: string },
    done: () => void,
  ): void {
    let streaming = onData !== undefined;
    const emit = (text: string, stream: 'stdout' | 'stderr'): void => {
      if (!streaming || text === '') return;
      try {
        onData!(text, stream);
      } catch (error) {
        // A failing consumer must not crash the process from inside an ssh2 event.
        streaming = false;
        this.logger.error({ ...logFields, err: error }, 'onData threw; output is no longer streamed for this command');
      }
    };
    for (const stream of ['stdout', 'stderr'] as const) {
      const readable = stream === 'stdout' ? channel : channel.stderr;
      const decoder = new StringDecoder('utf8');
      readable.on('data', (chunk: Buffer) => {
        output[stream].append(chunk);
        emit(decoder.write(chunk), stream);
      });
      readable.once('end', () => emit(decoder.end(), stream));
    }
    channel.on('error', (error: Error) => this.logger.debug({ ...logFields, err: error }, 'SSH channel error'));
    let open = 2;
    const closed = (): void => {
      if (--open === 0) done();
    };
    channel.once('close', closed);
    channel.stderr.once('close', closed);
  }
}

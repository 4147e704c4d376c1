import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import type { ClientChannel } from 'ssh2';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { CappedOutput, DEFAULT_MAX_OUTPUT_BYTES } from './capped-output';
import { Turns } from '../../common/concurrency/turns';
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
  /**
   * Run as the login user even when it is not root (no sudo): for reads any user may do, such as
   * unit definitions, which a sudoers drop-in of exact command lines could not allow.
   */
  asLoginUser?: boolean;
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

/** What one command of a sequence did. */
export type StepResult = Pick<ExecResult, 'exitCode' | 'signal' | 'stdout' | 'stderr' | 'durationMs'>;

export interface SequenceOptions extends Omit<ExecOptions, 'onData'> {
  /** Pause after the first `after` steps until `proceed` says whether to run the others. */
  confirm?: { after: number; proceed: (done: StepResult[]) => Promise<boolean> };
  /**
   * Steps (by index) the caller can do without: a sudo refusal (exit 1, sudo's words on stderr) or
   * the watchdog's exit is returned as their result instead of failing the whole sequence.
   */
  optional?: readonly number[];
}

export interface SequenceResult {
  /** One per command that ran, in order (only those before the pause when it did not proceed). */
  steps: StepResult[];
  /** With `confirm`: whether the steps after the pause ran. */
  proceeded?: boolean;
  durationMs: number;
  hostKeyFingerprint: string;
  connectionReused: boolean;
}

type ExecSettings = ExecOptions & {
  timeoutMs: number;
  maxOutputBytes: number;
  usesSudo: boolean;
  hostKeyPolicy: HostKeyPolicy;
  /** Sees the output as it arrives, with the channel to answer on (its stdin). */
  interact?: (channel: ClientChannel, chunk: string, stream: 'stdout' | 'stderr') => void;
};

/**
 * Seconds between the watchdog's SIGTERM and its SIGKILL. TERM first because sudo relays TERM to
 * the command but cannot relay KILL (a killed sudo would leave the command running).
 */
const WATCHDOG_KILL_AFTER_S = 2;

/** Whether commands on `target` run through `sudo -n` (a login other than root), so only the sudoers drop-in's lines. */
export function runsThroughSudo(target: Pick<SshTarget, 'sshUser'>): boolean {
  return target.sshUser !== 'root';
}

/** Before a command, for a non-root login. -n: fail instead of prompting for a password; --: the argv is never read as sudo options. */
const SUDO: readonly string[] = ['sudo', '-n', '--'];

/**
 * What coreutils `timeout` exits with when it had to stop the command (124), or when the command
 * outlived the TERM too and had to be killed (128 + SIGKILL).
 */
const WATCHDOG_EXIT_CODES: readonly (number | null)[] = [124, 128 + 9];

/** sudo's own refusals (sudo 1.8/1.9 wording), printed on stderr with exit status 1. */
const SUDO_REFUSAL =
  /^sudo: (a password is required|a terminal is required|sorry, you must have a tty)|is not allowed to execute|is not in the sudoers file|may not run sudo/m;

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * How long after the start of a sequence with `confirm` its host may still act on a "go": its
 * timeout (when the host's watchdog ends the session), with a second to spare. (Hosts counted it
 * in whole seconds of their clock before, up to a second more: the window kept its length.)
 */
export function confirmWindowMs(timeoutMs: number): number {
  return Math.ceil(timeoutMs / 1000) * 1000 + 1000;
}

/** How long onModuleDestroy lets connections say goodbye before cutting them. */
const SHUTDOWN_GRACE_MS = 2_000;

/**
 * Runs commands on fleet hosts over SSH, as root (directly, or through `sudo -n` for another login
 * user). Callers give an argv, never shell text: it is quoted for the remote shell element by
 * element. Host keys are always verified against the pinned fingerprint. Connections are pooled
 * per host (see SshConnectionPool). Every failure about a host is an SshError subclass.
 *
 * Killing a command that runs too long: each command (each sequence's shell, with its steps) runs
 * under coreutils `timeout` on the host (TERM at the deadline, KILL 2 s later), so it is stopped
 * even when the connection is gone. On our side the deadline sends the channel a KILL signal and
 * closes it, but that alone is not enough: OpenSSH refuses signal requests for root logins
 * ("session signalling requires privilege separation") and cannot signal a root command under sudo
 * for another user, and closing a channel without a pty does not signal the command at all (sshd
 * waits for it to exit). Hosts therefore need coreutils' `timeout` and a POSIX-compatible login
 * shell.
 */
@Injectable()
export class SshExecutor implements OnModuleDestroy {
  private readonly logger = new Logger(SshExecutor.name);
  private readonly pool: SshConnectionPool;
  /**
   * At most SSH_MAX_HANDSHAKES at once; the others wait in arrival order. A key exchange costs CPU
   * on both ends: hundreds started at once on a busy machine (a restart of a whole fleet by a worker
   * whose pool is cold) all slow down together, and some run past their connect timeout and end
   * unreachable although their host is fine. Waiting instead lets the first ones finish at full
   * speed; a connection's connect timeout starts when its handshake does.
   */
  private readonly handshakes: Turns;
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
    this.handshakes = new Turns(config.SSH_MAX_HANDSHAKES);
  }

  /**
   * Runs `argv` on `target` as root. A non-zero exit status is a result, not an error. Throws
   * HostKeyNotPinnedError, HostKeyMismatchError, HostUnreachableError, CommandTimeoutError or
   * SudoRefusedError about the host; a plain Error for a bad argv, options or private key.
   */
  async exec(target: SshTarget, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const settings = this.settingsOf(target, options);
    // The only unquoted words are ours. `exec`: the login shell becomes the command (no shell left
    // between sshd and it, so exit signals are reported as such). stdin is /dev/null: the command
    // sees EOF instead of waiting for input, and our side of the channel stays open, which sshd
    // needs to accept a signal for it.
    const prefix = [...this.watchdog(settings.timeoutMs), ...(settings.usesSudo ? SUDO : [])];
    const command = `exec ${shellQuote(prefix)} ${shellQuote(argv)} </dev/null`;
    const result = await this.send(target, command, shellQuote(argv), settings);
    if (this.endedByWatchdog(result, settings)) {
      throw new CommandTimeoutError(target.name, shellQuote(argv), settings.timeoutMs, result.stdout, result.stderr);
    }
    this.checkSudo(target, shellQuote(argv), result, settings);
    return result;
  }

  /**
   * Runs several commands one after the other in one SSH session, each whatever the previous one
   * exited with: one round trip and one remote shell instead of one per command, for short
   * commands whose outputs are small (each step's output is told apart by a random marker line,
   * which output cut down to maxOutputBytes could lose: that is an error). Each step is quoted,
   * guarded by the watchdog and run through sudo exactly like `exec` runs one; `timeoutMs` bounds
   * the whole sequence.
   *
   * `confirm`: the remote shell stops after the first `confirm.after` steps and waits, reading its
   * stdin, until `confirm.proceed` (given those steps' results) says whether to run the rest. Only
   * a "go" line lets it go on; anything else — false, an error, our process or connection dying —
   * ends its stdin and the rest never runs, and so does a "go" that comes later than
   * confirmWindowMs(timeoutMs) after the session began. One session can so read a state, have the
   * caller store it, and only then act. The output before the pause is bounded by maxOutputBytes
   * too: past it the rest never runs and the sequence fails.
   *
   * One watchdog guards the whole session (a shell under `timeout`), not one per step: a process
   * started on a host costs milliseconds of its CPU, and a restart's session ran eleven of them
   * where it now runs six. It also keeps the "go" window: a shell still waiting when the timeout
   * ends is killed, so the rest cannot run later (by the host's monotonic clock, not its date).
   */
  async execSequence(
    target: SshTarget,
    steps: readonly (readonly string[])[],
    options: SequenceOptions = {},
  ): Promise<SequenceResult> {
    if (steps.length === 0) throw new Error('a sequence needs at least one command');
    const { confirm, optional = [], ...execOptions } = options;
    if (confirm && !(Number.isInteger(confirm.after) && confirm.after >= 1 && confirm.after < steps.length)) {
      throw new RangeError('confirm.after must leave steps on both sides of the pause');
    }
    const settings = this.settingsOf(target, execOptions);
    const marker = `drover-step-${randomBytes(12).toString('hex')}`;
    const sudo = settings.usesSudo ? `${shellQuote(SUDO)} ` : '';
    // After each step: its exit status on stdout and a bare marker on stderr, each on a line of
    // its own (the leading \n ends a last line the step left open; the split removes it again).
    const run = (argv: readonly string[]) =>
      `${sudo}${shellQuote(argv)} </dev/null; printf '\\n%s:%s\\n' ${marker} "$?"; printf '\\n%s\\n' ${marker} >&2`;
    const script = confirm
      ? `${steps.slice(0, confirm.after).map(run).join('; ')}; ` +
        `if read -r drover_go && [ "$drover_go" = go ]; then ${steps.slice(confirm.after).map(run).join('; ')}; fi`
      : steps.map(run).join('; ');
    // `exec`: the login shell becomes the watchdog, whose TERM (then KILL) reaches the whole
    // process group: the inner shell, the step it runs, and sudo, which relays TERM to its command.
    const command = `exec ${shellQuote([...this.watchdog(settings.timeoutMs), 'sh', '-c', script])}`;
    const display = steps.map((argv) => shellQuote(argv)).join('; ');
    /** The steps whose both markers arrived; `check` also reads their exit statuses for sudo's refusals. */
    const split = (stdout: string, stderr: string, durationMs: number, check = true): StepResult[] => {
      const stdouts = stdout.split(new RegExp(`\n${marker}:(\\d+)\n`));
      const stderrs = stderr.split(`\n${marker}\n`);
      const count = Math.min((stdouts.length - 1) / 2, stderrs.length - 1);
      return steps.slice(0, count).map((argv, index) => {
        const step = {
          exitCode: Number(stdouts[2 * index + 1]),
          signal: null,
          stdout: stdouts[2 * index]!,
          stderr: stderrs[index]!,
          durationMs,
        };
        if (check && !optional.includes(index)) this.checkSudo(target, shellQuote(argv), step, settings);
        return step;
      });
    };

    let pause: Promise<boolean> | undefined;
    let overflowed = false;
    // Until the pause, the output is held whole (it must be split into steps), so it is bounded like
    // any output, and scanned once: each chunk is searched for step ends from where the last stopped.
    const seen = { stdout: '', stderr: '' };
    const stepEnds = { stdout: 0, stderr: 0 };
    const scanned = { stdout: 0, stderr: 0 };
    const stepEnd = { stdout: new RegExp(`\n${marker}:\\d+\n`, 'g'), stderr: new RegExp(`\n${marker}\n`, 'g') };
    const interact = confirm
      ? (channel: ClientChannel, chunk: string, stream: 'stdout' | 'stderr') => {
          if (pause) return;
          seen[stream] += chunk;
          if (seen[stream].length > settings.maxOutputBytes) {
            // Past the cap the steps could not be told apart anyway: drop what was held and never go on.
            overflowed = true;
            seen.stdout = seen.stderr = '';
            pause = Promise.resolve(false);
            channel.end();
            return;
          }
          const pattern = stepEnd[stream];
          pattern.lastIndex = scanned[stream];
          while (pattern.exec(seen[stream]) !== null) {
            stepEnds[stream]++;
            scanned[stream] = pattern.lastIndex;
          }
          // A step end may be cut between chunks: its start is scanned again with the next one.
          scanned[stream] = Math.max(scanned[stream], seen[stream].length - marker.length - 16);
          if (Math.min(stepEnds.stdout, stepEnds.stderr) < confirm.after) return;
          pause = (async () => {
            try {
              const proceed = await confirm.proceed(split(seen.stdout, seen.stderr, 0));
              if (proceed) channel.write('go\n');
              return proceed;
            } finally {
              channel.end();
            }
          })();
          // Awaited once the session ends; until then a rejection must not count as unhandled.
          pause.catch(() => undefined);
        }
      : undefined;

    const result = await this.send(target, command, display, { ...settings, ...(interact ? { interact } : {}) });
    const proceeded = pause ? await pause : undefined;
    if (overflowed) {
      throw new Error(
        `the commands before the pause in ${display} on ${target.name} printed more than ${settings.maxOutputBytes} bytes on one stream; the rest was not run`,
      );
    }
    const ran = split(result.stdout, result.stderr, result.durationMs);
    const expected = confirm && !proceeded ? confirm.after : steps.length;
    if (ran.length < expected && this.endedByWatchdog(result, settings)) {
      // The host's watchdog ended the session before our timer got to run (this process stood
      // still): a step was cut short, or our "go" came after the timeout and, as designed, the rest
      // never ran. Either way the sequence timed out.
      throw new CommandTimeoutError(target.name, display, settings.timeoutMs, result.stdout, result.stderr);
    }
    if (ran.length !== expected) {
      throw new Error(
        `the output of ${display} on ${target.name} does not show where each command ended` +
          (result.truncated ? ' (it was cut to maxOutputBytes)' : ''),
      );
    }
    return {
      steps: ran,
      ...(confirm ? { proceeded: proceeded === true } : {}),
      durationMs: result.durationMs,
      hostKeyFingerprint: result.hostKeyFingerprint,
      connectionReused: result.connectionReused,
    };
  }

  private settingsOf(target: SshTarget, options: ExecOptions): ExecSettings {
    const timeoutMs = options.timeoutMs ?? this.config.SSH_COMMAND_TIMEOUT_MS;
    // Node's timers cannot wait longer than 2^31 - 1 ms (they would fire at once).
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMER_MS) {
      throw new RangeError(`timeoutMs must be a whole number of ms from 1 to ${MAX_TIMER_MS}`);
    }
    const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes < 2) {
      throw new RangeError('maxOutputBytes must be a whole number ≥ 2');
    }
    return {
      ...options,
      timeoutMs,
      maxOutputBytes,
      usesSudo: runsThroughSudo(target) && options.asLoginUser !== true,
      hostKeyPolicy: this.hostKeyPolicy(target, options),
    };
  }

  /**
   * Connects to `target` ahead of its first command, verifying its host key as `exec` would, when
   * the pool has a free place (see SshConnectionPool.warm). Rejects with the SshError of the attempt.
   */
  async warm(target: SshTarget): Promise<void> {
    const { key, connect } = await this.connector(target, this.hostKeyPolicy(target, {}));
    await this.pool.warm(key, connect);
  }

  /** The pool key of a connection to `target` under `hostKeyPolicy`, and how to open it. */
  private async connector(
    target: SshTarget,
    hostKeyPolicy: HostKeyPolicy,
  ): Promise<{ key: string; connect: (onClose: () => void) => SshConnection }> {
    const privateKey = await this.loadPrivateKey();
    return {
      key: JSON.stringify([target.hostId, target.address, target.port, target.sshUser, hostKeyPolicy]),
      connect: (onClose) =>
        new SshConnection(
          target,
          hostKeyPolicy,
          {
            privateKey,
            connectTimeoutMs: this.config.SSH_CONNECT_TIMEOUT_MS,
            keepaliveIntervalMs: this.config.SSH_KEEPALIVE_INTERVAL_MS,
            handshakes: this.handshakes,
          },
          onClose,
        ),
    };
  }

  /** Sends one command line on a pooled connection (reconnecting once if the pooled one was dead). */
  private async send(target: SshTarget, command: string, display: string, settings: ExecSettings): Promise<ExecResult> {
    const { key, connect } = await this.connector(target, settings.hostKeyPolicy);
    for (let attempt = 1; ; attempt++) {
      try {
        const lease = await this.pool.acquire(key, connect);
        return await this.run(target, lease, command, display, settings);
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

  /**
   * Whether the host's watchdog ended the command or session before our timer got to run (a busy
   * event loop): only the watchdog's exit statuses, and only once the timeout has passed.
   */
  private endedByWatchdog(result: StepResult, settings: ExecSettings): boolean {
    return WATCHDOG_EXIT_CODES.includes(result.exitCode) && result.durationMs >= settings.timeoutMs;
  }

  /** sudo's refusal is an error, not the command's exit status. */
  private checkSudo(target: SshTarget, display: string, result: StepResult, settings: ExecSettings): void {
    if (settings.usesSudo && result.exitCode === 1 && SUDO_REFUSAL.test(result.stderr)) {
      throw new SudoRefusedError(target.name, target.sshUser, display, result.stderr);
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

  /** The remote watchdog: what runs before a command (then sudo, for a non-root login) or a sequence's shell. */
  private watchdog(timeoutMs: number): string[] {
    return ['timeout', `--kill-after=${WATCHDOG_KILL_AFTER_S}s`, `${timeoutMs / 1000}s`];
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
    display: string,
    options: ExecSettings,
  ): Promise<ExecResult> {
    const { connection } = lease;
    const { timeoutMs, maxOutputBytes } = options;
    const logFields = { hostId: target.hostId, host: target.name };
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
          const { onData, interact } = options;
          const observe = interact
            ? (chunk: string, stream: 'stdout' | 'stderr') => {
                onData?.(chunk, stream);
                interact(opened, chunk, stream);
              }
            : onData;
          this.collect(opened, output, observe, logFields, () => {
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

import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import type { CommandResult, Host, RunOptions, SequenceOptions, SequenceResult } from '@drover/systemd';

/** The most output kept per stream of one command: its tail (systemctl's useful part is at the end). */
export const MAX_STREAM_CHARS = 64 * 1024;
/** Between SIGTERM and SIGKILL of a command that ran past its time. */
const KILL_GRACE_MS = 2_000;
/**
 * After a command exited, how long its output pipes may stay open (a daemon an init script started
 * inherits them) before they are closed on our side.
 */
const PIPE_LINGER_MS = 1_000;

/** A command ran past its time; it was killed (the Host contract: the host could not run it). */
export class CommandTimeoutError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly timeoutMs: number,
    readonly partial: CommandResult,
  ) {
    super(`${argv.join(' ')} did not finish within ${timeoutMs} ms and was killed`);
  }
}

/** Keeps the last `max` characters of what it is given. */
class Tail {
  private text = '';
  constructor(private readonly max: number) {}

  push(chunk: string): void {
    this.text += chunk;
    // Cut only once it is twice the bound, so long output is not copied on every chunk.
    if (this.text.length > 2 * this.max) this.text = this.text.slice(-this.max);
  }

  get value(): string {
    return this.text.length > this.max ? this.text.slice(-this.max) : this.text;
  }
}

export interface LocalHostOptions {
  name?: string;
  maxStreamChars?: number;
  killGraceMs?: number;
  /**
   * Answers some commands in the agent's own process (SystemdBus: the unit's state and its jobs over
   * D-Bus, the clock) instead of starting a child process for each; null runs the argv as a command.
   * An answer past `timeoutMs` rejects with CommandTimeoutError, as a command past its time does.
   */
  answer?: (argv: readonly string[], timeoutMs: number) => Promise<CommandResult | null>;
}

/**
 * This machine as a unit action's Host: each argv runs as a child process of the agent (as the
 * agent's user: root, or a system user whose systemctl calls polkit limits), never through a
 * shell. A command past its time gets SIGTERM, then SIGKILL, and fails; its output is kept bounded
 * (the tail).
 */
export class LocalHost implements Host {
  readonly name: string;
  /** The agent is on the host itself: nothing about its identity is left to settle. */
  readonly identified = true;
  /** Any command line: the agent's reads may carry a time window. */
  readonly fixedCommandLines = false;
  private readonly maxStreamChars: number;
  private readonly killGraceMs: number;

  constructor(private readonly options: LocalHostOptions = {}) {
    this.name = options.name ?? hostname();
    this.maxStreamChars = options.maxStreamChars ?? MAX_STREAM_CHARS;
    this.killGraceMs = options.killGraceMs ?? KILL_GRACE_MS;
  }

  /** A "go" counts until the sequence's timeout after it began (the agent's own clock). */
  goWindowMs(timeoutMs: number): number {
    return timeoutMs;
  }

  async run(argv: readonly string[], options: RunOptions): Promise<CommandResult> {
    const answered = await this.options.answer?.(argv, options.timeoutMs);
    if (answered) {
      // Streamed as a command's output is: both streams.
      for (const text of [answered.stdout, answered.stderr]) if (text !== '') options.onData?.(text);
      return answered;
    }
    return this.spawn(argv, options);
  }

  private spawn(argv: readonly string[], { timeoutMs, onData }: RunOptions): Promise<CommandResult> {
    const [command, ...args] = argv;
    if (command === undefined) return Promise.reject(new Error('an empty argv cannot run'));
    return new Promise<CommandResult>((resolve, reject) => {
      const stdout = new Tail(this.maxStreamChars);
      const stderr = new Tail(this.maxStreamChars);
      // Its own process group, so a timeout also stops what the command started.
      const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, shell: false });
      let timedOut = false;
      let settled = false;
      const timers: NodeJS.Timeout[] = [];
      const signalGroup = (signal: NodeJS.Signals) => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, signal);
        } catch {
          // Already gone.
        }
      };
      const finish = (exitCode: number | null, error?: Error) => {
        if (settled) return;
        settled = true;
        for (const timer of timers) clearTimeout(timer);
        const result = { exitCode, stdout: stdout.value, stderr: stderr.value };
        if (error) reject(error);
        else if (timedOut) reject(new CommandTimeoutError(argv, timeoutMs, result));
        else resolve(result);
      };
      for (const [stream, tail] of [
        [child.stdout, stdout],
        [child.stderr, stderr],
      ] as const) {
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => {
          tail.push(chunk);
          onData?.(chunk);
        });
      }
      timers.push(
        setTimeout(() => {
          timedOut = true;
          signalGroup('SIGTERM');
          timers.push(setTimeout(() => signalGroup('SIGKILL'), this.killGraceMs));
          // A process stuck in the kernel ignores even SIGKILL: the caller is not kept waiting for it.
          timers.push(setTimeout(() => finish(null), this.killGraceMs + PIPE_LINGER_MS));
        }, timeoutMs),
      );
      child.on('error', (error) => finish(null, new Error(`could not run ${command}: ${error.message}`)));
      child.on('exit', (code) => {
        timers.push(
          setTimeout(() => {
            child.stdout.destroy();
            child.stderr.destroy();
            finish(code);
          }, PIPE_LINGER_MS),
        );
      });
      child.on('close', (code) => finish(code));
    });
  }

  async runSequence(steps: readonly (readonly string[])[], options: SequenceOptions): Promise<SequenceResult> {
    const { timeoutMs, pause, optional = [] } = options;
    if (pause && !(Number.isInteger(pause.after) && pause.after >= 1 && pause.after < steps.length)) {
      throw new RangeError('pause.after must leave steps on both sides of the pause');
    }
    const began = Date.now();
    const before = pause ? steps.slice(0, pause.after) : steps;
    const done = await this.runSteps(before, 0, began + timeoutMs, optional);
    if (!pause) return { steps: done };
    // A "no" or an error (which reaches the caller) ends the sequence here.
    const go = await pause.proceed(done);
    // A "go" that came too late (the caller was paused, another may have taken over) does not act.
    if (go !== true || Date.now() - began > this.goWindowMs(timeoutMs)) return { steps: done, proceeded: false };
    const rest = await this.runSteps(steps.slice(pause.after), pause.after, Date.now() + timeoutMs, optional);
    return { steps: [...done, ...rest], proceeded: true };
  }

  /** Steps one after the other until `deadline`; an optional step that cannot run gives a result instead of failing. */
  private async runSteps(
    steps: readonly (readonly string[])[],
    offset: number,
    deadline: number,
    optional: readonly number[],
  ): Promise<CommandResult[]> {
    const results: CommandResult[] = [];
    for (const [index, argv] of steps.entries()) {
      const timeoutMs = Math.max(1, deadline - Date.now());
      try {
        results.push(await this.run(argv, { timeoutMs }));
      } catch (error) {
        if (!optional.includes(offset + index)) throw error;
        const partial = error instanceof CommandTimeoutError ? error.partial : { stdout: '', stderr: '' };
        results.push({ exitCode: null, stdout: partial.stdout, stderr: (error as Error).message });
      }
    }
    return results;
  }
}

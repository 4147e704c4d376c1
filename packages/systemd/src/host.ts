/**
 * A host as a unit action needs it, whatever carries the commands: SSH from the worker (the
 * SshExecutor's adapter), or the host itself (an agent). Every argv runs as root. A non-zero exit
 * status is a result; a host that cannot run the command (unreachable, timed out, refused) throws,
 * and the caller of the action records that.
 */
export interface Host {
  /** For people: the host's name in reasons and errors. */
  readonly name: string;
  /**
   * False while the host's identity is not settled yet (SSH: no pinned host key), so that what the
   * first contact learns is recorded before anything acts: the action then reads in a round trip of
   * its own before it runs a paused sequence.
   */
  readonly identified: boolean;
  /**
   * True when the host runs only command lines allowed word for word in advance (SSH through sudo
   * and a sudoers drop-in): its reads then keep their fixed words, with no time window in them.
   */
  readonly fixedCommandLines: boolean;
  /** Runs one argv, bounded by `timeoutMs`; `onData` sees its output as it arrives. */
  run(argv: readonly string[], options: RunOptions): Promise<CommandResult>;
  /**
   * Runs argv steps one after the other, each whatever the previous one exited with, bounded by
   * `timeoutMs` in all. With `pause`, the host stops after the first `pause.after` steps and waits
   * until `pause.proceed` (given their results) says whether to run the rest: only a yes runs them;
   * a no, an error or the caller dying ends the sequence there, and so does a yes later than
   * goWindowMs(timeoutMs) after it began.
   */
  runSequence(steps: readonly (readonly string[])[], options: SequenceOptions): Promise<SequenceResult>;
  /** How long after a paused sequence began the host may still act on its "go". */
  goWindowMs(timeoutMs: number): number;
}

/** What one command did: its exit status (null when it died of a signal) and its output, bounded. */
export interface CommandResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs: number;
  /** Every piece of output as it arrives (whole characters), e.g. to stream it to storage. */
  onData?: (chunk: string) => void;
}

export interface SequenceOptions {
  timeoutMs: number;
  pause?: { after: number; proceed: (done: CommandResult[]) => Promise<boolean> };
  /**
   * Steps (by index) the caller can do without: when the host would not run them (sudo refused,
   * the watchdog fired), that is returned as their result instead of failing the whole sequence.
   */
  optional?: readonly number[];
}

export interface SequenceResult {
  /** One per step that ran, in order (only those before the pause when it did not proceed). */
  steps: CommandResult[];
  /** With `pause`: whether the steps after it ran. */
  proceeded?: boolean;
}

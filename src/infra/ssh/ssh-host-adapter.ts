import type { CommandResult, Host, RunOptions, SequenceOptions, SequenceResult } from '@drover/systemd';
import { confirmWindowMs, runsThroughSudo, SshExecutor } from './ssh-executor';
import type { SshTarget } from './ssh-target';

export interface SshHostAdapterOptions {
  /** Only for a target without a pinned fingerprint: accept the presented key (see ExecOptions). */
  trustOnFirstUse?: boolean;
  /**
   * Called after every command while the target has no pinned key, with the key it presented: the
   * caller pins it (and sets target.hostKeyFingerprint), or throws.
   */
  onFirstKey?: (fingerprint: string) => Promise<void>;
}

/** A host reached over SSH: the SshExecutor as a unit action's Host (see @drover/systemd). */
export class SshHostAdapter implements Host {
  constructor(
    private readonly ssh: SshExecutor,
    private readonly target: SshTarget,
    private readonly options: SshHostAdapterOptions = {},
  ) {}

  get name(): string {
    return this.target.name;
  }

  /** A paused session needs a pinned key: the first contact pins it before anything acts. */
  get identified(): boolean {
    return this.target.hostKeyFingerprint !== null;
  }

  /** A login through sudo runs only its sudoers drop-in's exact lines. */
  get fixedCommandLines(): boolean {
    return runsThroughSudo(this.target);
  }

  async run(argv: readonly string[], { timeoutMs, onData }: RunOptions): Promise<CommandResult> {
    const result = await this.ssh.exec(this.target, argv, {
      timeoutMs,
      ...this.trust(),
      ...(onData ? { onData: (chunk: string) => onData(chunk) } : {}),
    });
    await this.seen(result.hostKeyFingerprint);
    return result;
  }

  async runSequence(steps: readonly (readonly string[])[], options: SequenceOptions): Promise<SequenceResult> {
    const { pause, ...rest } = options;
    const ran = await this.ssh.execSequence(this.target, steps, {
      ...rest,
      ...this.trust(),
      ...(pause ? { confirm: pause } : {}),
    });
    await this.seen(ran.hostKeyFingerprint);
    return ran;
  }

  goWindowMs(timeoutMs: number): number {
    return confirmWindowMs(timeoutMs);
  }

  private trust(): { trustOnFirstUse?: boolean } {
    return this.options.trustOnFirstUse === undefined ? {} : { trustOnFirstUse: this.options.trustOnFirstUse };
  }

  private async seen(fingerprint: string): Promise<void> {
    if (this.target.hostKeyFingerprint === null && this.options.onFirstKey) await this.options.onFirstKey(fingerprint);
  }
}

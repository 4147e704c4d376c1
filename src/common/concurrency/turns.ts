/**
 * At most `limit` holders at once; the others wait for a turn in arrival order. For work of one
 * kind that would slow everything down, or take a shared resource from everyone, when many run at
 * once (SSH handshakes, agents' unit reports).
 */
export class Turns {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Holders now, and those waiting for a turn. */
  get stats(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  /**
   * Resolves with the function that gives the turn back (calling it again does nothing) once it is
   * ours; rejects with the signal's reason when `signal` aborts first (it then waits no more).
   */
  async enter(signal?: AbortSignal): Promise<() => void> {
    if (this.running < this.limit) this.running++;
    // The turn is handed over by the one leaving: `running` stays counted for this one.
    else await this.wait(signal);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
  }

  private wait(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const abort = () => {
        this.waiting.splice(this.waiting.indexOf(given), 1);
        reject(signal!.reason as Error);
      };
      const given = () => {
        signal?.removeEventListener('abort', abort);
        resolve();
      };
      this.waiting.push(given);
      signal?.addEventListener('abort', abort, { once: true });
    });
  }
}

/**
 * Appends a command's output to its task's stored output as it arrives, in batches, so a long
 * command's progress is visible while it runs and the worker holds at most one batch in memory.
 * Storage is bounded too: past `maxChars` the rest is dropped and a note says so.
 */
export class TaskOutputStream {
  private pending = '';
  private stored = 0;
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly append: (text: string) => Promise<void>,
    private readonly maxChars = 1_048_576,
    private readonly batchMs = 500,
  ) {}

  /** True once anything was handed to storage (the task's output is then what was streamed). */
  get wrote(): boolean {
    return this.stored > 0;
  }

  readonly push = (chunk: string): void => {
    const room = this.maxChars - this.stored - this.pending.length;
    if (chunk.length > room) this.dropped += chunk.length - Math.max(room, 0);
    if (room <= 0) return;
    this.pending += chunk.slice(0, room);
    // A failed write is reported by the final flush(), which the task awaits.
    this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), this.batchMs);
  };

  /** Writes what is pending (and, at the end, how much was dropped); rejects if any write failed. */
  async flush(final = false): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    let text = this.pending;
    this.pending = '';
    if (final && this.dropped > 0) text += `\n[drover: ${this.dropped} more characters of output were not stored]\n`;
    if (text !== '') {
      this.stored += text.length;
      this.writes = this.writes.then(() => this.append(text));
    }
    await this.writes;
  }
}

/** NUL, and a UTF-16 surrogate without its pair (a string cut inside a character). */
const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Text a host printed, made storable: PostgreSQL's text refuses NUL bytes, and a lone surrogate has
 * no UTF-8 form. Each becomes U+FFFD, so what a host prints can never make storing its output fail.
 */
export function storableText(text: string): string {
  return text.replace(UNSTORABLE, '\uFFFD');
}

/**
 * Appends a command's output to its task's stored output as it arrives, in batches, so a long
 * command's progress is visible while it runs and the worker holds at most one batch in memory.
 * Storage is bounded too: past `maxChars` the rest is dropped and a note says so. A failed write is
 * reported to `onError` and ends the streaming (never the command): the caller stores the output
 * it kept instead (see `wrote`).
 */
export class TaskOutputStream {
  private pending = '';
  private stored = 0;
  private dropped = 0;
  private failed = false;
  private timer: NodeJS.Timeout | undefined;
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly append: (text: string) => Promise<void>,
    private readonly onError: (error: unknown) => void,
    private readonly maxChars = 1_048_576,
    private readonly batchMs = 500,
  ) {}

  /** True once anything was stored and every write succeeded: the task's output is what was streamed. */
  get wrote(): boolean {
    return this.stored > 0 && !this.failed;
  }

  readonly push = (chunk: string): void => {
    if (this.failed) return;
    const room = this.maxChars - this.stored - this.pending.length;
    if (chunk.length > room) this.dropped += chunk.length - Math.max(room, 0);
    if (room <= 0) return;
    this.pending += chunk.slice(0, room);
    this.timer ??= setTimeout(() => void this.flush(), this.batchMs);
  };

  /** Writes what is pending (and, at the end, how much was dropped); never rejects. */
  async flush(final = false): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    let text = this.pending;
    this.pending = '';
    if (final && this.dropped > 0) text += `\n[drover: ${this.dropped} more characters of output were not stored]\n`;
    if (text !== '' && !this.failed) {
      this.stored += text.length;
      this.writes = this.writes.then(async () => {
        if (this.failed) return;
        try {
          await this.append(text);
        } catch (error) {
          this.failed = true;
          this.onError(error);
        }
      });
    }
    await this.writes;
  }
}

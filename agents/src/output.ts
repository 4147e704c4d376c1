import type { OutputChunk } from '@drover/protocol';

/** The longest text of one output chunk (the protocol's bound). */
export const OUTPUT_CHUNK_CHARS = 16 * 1024;
/** The most output streamed per attempt; the rest is dropped and a note says so. */
const MAX_STREAMED_CHARS = 1_048_576;
const BATCH_MS = 500;
const POST_TRIES = 3;

/** `text` cut into chunks of at most `size` characters, never inside a surrogate pair. */
export function chunksOf(text: string, size = OUTPUT_CHUNK_CHARS): string[] {
  const chunks: string[] = [];
  for (let start = 0; start < text.length;) {
    let end = Math.min(text.length, start + size);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    chunks.push(text.slice(start, end));
    start = end;
  }
  return chunks;
}

/**
 * Streams a task's output to the server as it arrives (an init script's), in chunks numbered 0, 1,
 * 2... per attempt, at least every BATCH_MS and once more before the result. A chunk is sent again
 * when its post fails (the server stores a sequence number once); after POST_TRIES failures, or a
 * 409 (the attempt lost the task), streaming stops: the outcome still carries the output's tail.
 */
export class AttemptOutput {
  private pending = '';
  private streamed = 0;
  private dropped = 0;
  private seq = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private posts: Promise<void> = Promise.resolve();

  constructor(
    private readonly post: (chunk: OutputChunk) => Promise<boolean>,
    private readonly onError: (error: unknown) => void,
    private readonly retryDelayMs = 1_000,
  ) {}

  readonly push = (chunk: string): void => {
    if (this.stopped) return;
    // NUL cannot be stored as text on the server's side.
    const text = chunk.replace(/\0/g, '\uFFFD');
    const room = MAX_STREAMED_CHARS - this.streamed - this.pending.length;
    if (text.length > room) this.dropped += text.length - Math.max(room, 0);
    if (room <= 0) return;
    this.pending += text.slice(0, room);
    this.timer ??= setTimeout(() => void this.flush(), BATCH_MS);
  };

  /** Sends what is pending (and at the end how much was dropped); never rejects. */
  async flush(final = false): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    let text = this.pending;
    this.pending = '';
    if (final && this.dropped > 0)
      text += `\n[drover-agent: ${this.dropped} more characters of output were not streamed]\n`;
    this.streamed += text.length;
    for (const piece of text === '' ? [] : chunksOf(text)) {
      const chunk = { seq: this.seq++, text: piece };
      this.posts = this.posts.then(() => this.send(chunk));
    }
    await this.posts;
  }

  /** No more posts (the attempt lost the task). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async send(chunk: OutputChunk): Promise<void> {
    for (let tries = 1; !this.stopped; tries++) {
      try {
        if (!(await this.post(chunk))) this.stop();
        return;
      } catch (error) {
        if (tries >= POST_TRIES) {
          this.stop();
          this.onError(error);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, this.retryDelayMs * tries));
      }
    }
  }
}

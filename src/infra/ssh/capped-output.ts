/** 1 MiB per stream unless the caller asks otherwise. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * The output of one stream of a command, in bounded memory: the first half of `maxBytes` and the
 * last half are kept, whatever is in between is counted and dropped. The head tells what the
 * command set out to do, the tail how it ended; both matter more than the middle.
 */
export class CappedOutput {
  private readonly headLimit: number;
  private readonly tailLimit: number;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private totalBytes = 0;

  constructor(maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 2) throw new RangeError('maxOutputBytes must be an integer ≥ 2');
    this.headLimit = Math.ceil(maxBytes / 2);
    this.tailLimit = maxBytes - this.headLimit;
  }

  append(chunk: Buffer): void {
    this.totalBytes += chunk.length;
    let rest = chunk;
    if (this.headBytes < this.headLimit) {
      const taken = Math.min(this.headLimit - this.headBytes, rest.length);
      // Copies: the stream may reuse the memory behind the chunks it hands out.
      this.head.push(Buffer.from(rest.subarray(0, taken)));
      this.headBytes += taken;
      rest = rest.subarray(taken);
    }
    if (rest.length === 0) return;
    if (rest.length >= this.tailLimit) {
      this.tail = [Buffer.from(rest.subarray(rest.length - this.tailLimit))];
      this.tailBytes = this.tailLimit;
      return;
    }
    this.tail.push(Buffer.from(rest));
    this.tailBytes += rest.length;
    while (this.tailBytes > this.tailLimit) {
      const first = this.tail[0]!;
      const excess = this.tailBytes - this.tailLimit;
      if (first.length <= excess) {
        this.tail.shift();
        this.tailBytes -= first.length;
      } else {
        this.tail[0] = first.subarray(excess);
        this.tailBytes -= excess;
      }
    }
  }

  get truncated(): boolean {
    return this.totalBytes > this.headBytes + this.tailBytes;
  }

  /**
   * The kept output as UTF-8. When something was dropped, a marker line says how many bytes, and
   * the cut never splits a character (the few bytes of a split character count as dropped).
   */
  toString(): string {
    const head = Buffer.concat(this.head);
    const tail = Buffer.concat(this.tail);
    if (!this.truncated) return Buffer.concat([head, tail]).toString('utf8');
    const headEnd = completeUtf8Prefix(head);
    const tailStart = firstUtf8Boundary(tail);
    const dropped = this.totalBytes - headEnd - (tail.length - tailStart);
    return `${head.subarray(0, headEnd).toString('utf8')}\n[... ${dropped} bytes of output dropped ...]\n${tail.subarray(tailStart).toString('utf8')}`;
  }
}

const isContinuationByte = (byte: number): boolean => (byte & 0xc0) === 0x80;

/** Length of `bytes` without a multi-byte character cut off at its end. */
function completeUtf8Prefix(bytes: Buffer): number {
  for (let back = 1; back <= Math.min(4, bytes.length); back++) {
    const byte = bytes[bytes.length - back]!;
    if (isContinuationByte(byte)) continue;
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return length > back ? bytes.length - back : bytes.length;
  }
  return bytes.length;
}

/** Offset of the first byte in `bytes` that starts a character (skips the rest of a cut one). */
function firstUtf8Boundary(bytes: Buffer): number {
  let start = 0;
  while (start < Math.min(3, bytes.length) && isContinuationByte(bytes[start]!)) start++;
  return start;
}

export interface BatcherOptions<Item, Result> {
  /** Runs items together: one result per item, in their order. A rejection applies nothing. */
  runMany(items: readonly Item[]): Promise<Result[]>;
  /** Items of one batch never share a key (a second one waits for the next batch). */
  keyOf(item: Item): string;
  /** The most items one batch takes. */
  maxSize: number;
  /** Told when a batch of several failed (each of its items is then run alone, whatever this does). */
  onBatchFailed?(error: unknown, size: number): void;
}

interface Pending<Item, Result> {
  item: Item;
  resolve(result: Result): void;
  reject(error: unknown): void;
}

/**
 * Runs the calls made while the event loop was busy as one: a call joins the batch gathered since the
 * last one left, which leaves once this turn's callbacks have run (setImmediate), or as soon as it is
 * full. Under load, the tasks whose database replies arrived together make their next statements
 * together; alone, a call leaves at once in a batch of one. `runMany` must be all-or-nothing (one
 * statement is): a batch of several that fails is run again item by item, so that one item's error
 * (or a deadlock between batches) is each item's own outcome, as it would be without batching.
 */
export class Batcher<Item, Result> {
  private pending: Pending<Item, Result>[] = [];
  private readonly keys = new Set<string>();
  private flushScheduled = false;

  constructor(private readonly options: BatcherOptions<Item, Result>) {}

  run(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      const key = this.options.keyOf(item);
      if (this.keys.has(key)) this.flush();
      this.pending.push({ item, resolve, reject });
      this.keys.add(key);
      if (this.pending.length >= this.options.maxSize) {
        this.flush();
      } else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  private flush(): void {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.keys.clear();
    void this.settle(batch);
  }

  private async settle(batch: Pending<Item, Result>[]): Promise<void> {
    let results: Result[];
    try {
      results = await this.options.runMany(batch.map((entry) => entry.item));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
      try {
        this.options.onBatchFailed?.(error, batch.length);
      } catch {
        // Only a listener: the calls are made whatever it does.
      }
      await Promise.all(batch.map((entry) => this.settle([entry])));
      return;
    }
    if (results.length !== batch.length) {
      // Not run again: the batch may have applied.
      const error = new Error(`a batch of ${batch.length} gave ${results.length} result(s)`);
      for (const entry of batch) entry.reject(error);
      return;
    }
    batch.forEach((entry, index) => entry.resolve(results[index] as Result));
  }
}

/** Where statementBatcher reports a failed batch (a Nest Logger). */
export interface BatchWarnings {
  warn(fields: object, message: string): void;
}

/**
 * A Batcher of one kind of database statement (`what`, for the log), at most `maxSize` calls a
 * statement: a failed batch of several is logged as a warning, then each call is made on its own.
 */
export function statementBatcher<Item, Result>(
  logger: BatchWarnings,
  what: string,
  options: Omit<BatcherOptions<Item, Result>, 'onBatchFailed'>,
): Batcher<Item, Result> {
  return new Batcher({
    ...options,
    onBatchFailed: (error, size) =>
      logger.warn({ err: error, size }, `a batch of ${size} ${what} failed; each is made on its own`),
  });
}

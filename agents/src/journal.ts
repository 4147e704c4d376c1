import { type FileHandle, open, readFile } from 'node:fs/promises';
import { unitActionOutcomeSchema, type UnitActionOutcome } from '@drover/protocol';
import { z } from 'zod';
import { writeFileAtomically } from './files';

/** The entries kept when the journal is opened; older ones are dropped then. */
export const JOURNAL_KEEP_ENTRIES = 10_000;

export const journalEntrySchema = z.strictObject({
  taskId: z.string(),
  attempt: z.number().int(),
  event: z.enum(['cleared', 'result']),
  at: z.string(),
  outcome: unitActionOutcomeSchema.optional(),
});
export type JournalEntry = z.output<typeof journalEntrySchema>;

/** What an earlier attempt at a task recorded as its outcome. */
export interface RecordedResult {
  attempt: number;
  outcome: UnitActionOutcome;
}

/**
 * What this agent did, one JSON line per event, fsynced before the agent goes on: that an attempt
 * was cleared to act, and the outcome of each task it carried out. It outlives restarts, so a task
 * the server hands out again (its result was lost on the way) is answered from here, not repeated.
 */
export class TaskJournal {
  private readonly results = new Map<string, RecordedResult>();
  private writes: Promise<void> = Promise.resolve();

  private constructor(
    private readonly handle: FileHandle,
    entries: readonly JournalEntry[],
    /** Lines that could not be read (a crash cut the last one), for the caller to log. */
    readonly skippedLines: number,
  ) {
    for (const entry of entries) this.index(entry);
  }

  /** Opens (creating) the journal, keeping only its last `keep` entries. */
  static async open(file: string, keep = JOURNAL_KEEP_ENTRIES): Promise<TaskJournal> {
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const entries: JournalEntry[] = [];
    let skipped = 0;
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        entries.push(journalEntrySchema.parse(JSON.parse(line)));
      } catch {
        skipped++;
      }
    }
    const kept = entries.slice(-keep);
    if (kept.length < entries.length || skipped > 0) {
      await writeFileAtomically(file, kept.map((entry) => `${JSON.stringify(entry)}\n`).join(''));
    }
    return new TaskJournal(await open(file, 'a', 0o600), kept, skipped);
  }

  /** The outcome an attempt at this task already recorded, if any (from any attempt). */
  resultOf(taskId: string): RecordedResult | undefined {
    return this.results.get(taskId);
  }

  /** Appends the entry; resolves once it is on disk. */
  append(entry: JournalEntry): Promise<void> {
    const write = this.writes.then(async () => {
      await this.handle.write(`${JSON.stringify(entry)}\n`);
      await this.handle.sync();
      this.index(entry);
    });
    // One failed write must not fail every later one.
    this.writes = write.catch(() => undefined);
    return write;
  }

  async close(): Promise<void> {
    await this.writes;
    await this.handle.close();
  }

  private index(entry: JournalEntry): void {
    if (entry.event === 'result' && entry.outcome && !this.results.has(entry.taskId)) {
      this.results.set(entry.taskId, { attempt: entry.attempt, outcome: entry.outcome });
    }
  }
}

/** The outcome a later attempt reports for a task an earlier attempt carried out. */
export function replayedOutcome(recorded: RecordedResult): UnitActionOutcome {
  return {
    ...recorded.outcome,
    reason: `already carried out by attempt ${recorded.attempt}: ${recorded.outcome.reason}`,
  };
}

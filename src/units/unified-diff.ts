import { createTwoFilesPatch } from 'diff';

/** Lines of context around each change, as `diff -u` shows them. */
const CONTEXT_LINES = 3;

/** A unified diff of two definitions' texts, headed by their hashes (short, as git shows commits). */
export function unifiedDiff(fromText: string, toText: string, fromHash: string, toHash: string): string {
  return createTwoFilesPatch(fromHash.slice(0, 12), toHash.slice(0, 12), fromText, toText, undefined, undefined, {
    context: CONTEXT_LINES,
  });
}

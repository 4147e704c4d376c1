import { setTimeout as sleep } from 'node:timers/promises';

/** Polls until `check` holds (bounded): for state that settles asynchronously, never a timing claim. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  description: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${description}`);
    await sleep(50);
  }
}

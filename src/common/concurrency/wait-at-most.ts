/**
 * Waits for `work` to settle, or `ms` at most, whichever comes first; true when it settled. The work
 * goes on either way: for waits that bound a start or a shutdown, not for cancelling anything.
 * `work` must not reject (catch what it may throw before passing it).
 */
export async function waitAtMost(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true), elapsed]);
  } finally {
    clearTimeout(timer);
  }
}

import type { ServerResponse } from 'node:http';

/** Resolves true once the response can take more, false if the client went away first. */
function drainedOrClosed(response: ServerResponse): Promise<boolean> {
  if (response.destroyed || response.closed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onDrain = () => {
      response.off('close', onClose);
      resolve(true);
    };
    const onClose = () => {
      response.off('drain', onDrain);
      resolve(false);
    };
    response.once('drain', onDrain);
    response.once('close', onClose);
  });
}

/**
 * Writes the chunks honouring backpressure (a slow client slows the producer instead of filling
 * memory), and stops pulling them as soon as the client is gone: a closed socket never emits
 * 'drain', so waiting for it alone would leave the handler and its producer suspended for good.
 * Returns whether every chunk was written; stopping early closes the iterator (its `finally` runs).
 */
export async function writeChunks(response: ServerResponse, chunks: AsyncIterable<string>): Promise<boolean> {
  for await (const chunk of chunks) {
    if (response.destroyed || response.closed) return false;
    if (!response.write(chunk) && !(await drainedOrClosed(response))) return false;
  }
  return true;
}

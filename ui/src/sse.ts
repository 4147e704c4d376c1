/** One server-sent event of a rollout's stream. */
export interface StreamEvent {
  id: string;
  type: string;
  data: Record<string, unknown>;
}

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'ended' | 'failed';

export interface FollowOptions {
  token: string;
  rolloutId: string;
  /** Resume after this event id (null: from the first event). */
  after?: string | null;
  onEvent(event: StreamEvent): void;
  onState(state: StreamState, detail?: string): void;
  signal: AbortSignal;
}

/** Splits a text/event-stream body into events; keeps the incomplete tail for the next chunk. */
export function parseEventBlocks(buffer: string): { events: StreamEvent[]; rest: string } {
  const events: StreamEvent[] = [];
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let id = '';
    let type = 'message';
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length === 0) continue;
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(data.join('\n')) as Record<string, unknown>;
    } catch {
      parsed = { text: data.join('\n') };
    }
    events.push({ id, type, data: parsed });
  }
  return { events, rest };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * Follows GET /v1/rollouts/{id}/events with fetch (EventSource cannot send the bearer header, and
 * the token must not go into a URL). A dropped connection is resumed with Last-Event-ID, so nothing
 * is lost or repeated; the stream ends for good after rollout.finished.
 */
export async function followRollout(options: FollowOptions): Promise<void> {
  const { signal } = options;
  let lastId: string | null = options.after ?? null;
  let finished = false;
  let backoff = 500;
  options.onState('connecting');
  while (!signal.aborted) {
    try {
      const headers: Record<string, string> = {
        Authorization: `Bearer ${options.token}`,
        Accept: 'text/event-stream',
      };
      if (lastId !== null) headers['Last-Event-ID'] = lastId;
      const response = await fetch(`/v1/rollouts/${encodeURIComponent(options.rolloutId)}/events`, {
        headers,
        signal,
        cache: 'no-store',
      });
      if (response.status === 401 || response.status === 403 || response.status === 404) {
        options.onState('failed', `HTTP ${response.status}`);
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      options.onState('live');
      backoff = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const parsed = parseEventBlocks(buffer);
        buffer = parsed.rest;
        for (const event of parsed.events) {
          if (event.id !== '') lastId = event.id;
          if (event.type === 'rollout.finished') finished = true;
          options.onEvent(event);
        }
      }
      // The server ends the stream once the rollout finished and no host is in flight.
      if (finished) {
        options.onState('ended');
        return;
      }
    } catch (error) {
      if (signal.aborted) return;
      options.onState('reconnecting', error instanceof Error ? error.message : String(error));
    }
    if (signal.aborted) return;
    options.onState('reconnecting');
    await sleep(backoff, signal);
    backoff = Math.min(backoff * 2, 8_000);
  }
}

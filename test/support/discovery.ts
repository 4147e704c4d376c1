import assert from 'node:assert/strict';
import type { DroverClient } from '../../src/client';
import { waitUntil } from './wait';

/**
 * Asks for a discovery of each host and waits until each has stored `unit` as read after the
 * request (a discovery asked for while one runs lists the host again, so none is missed).
 */
export async function discoverAndWait(
  client: DroverClient,
  hostNames: readonly string[],
  unit: string,
  timeoutMs: number,
): Promise<void> {
  const since = Date.now();
  for (const name of hostNames) {
    const queued = await client.POST('/v1/hosts/{name}/discover', { params: { path: { name } } });
    assert.equal(queued.response.status, 202, JSON.stringify(queued.error));
  }
  await waitUntil(
    async () => {
      for (const name of hostNames) {
        const units = await client.GET('/v1/hosts/{name}/units', { params: { path: { name } } });
        const stored = units.data?.items.find((item) => item.name === unit);
        if (stored === undefined || Date.parse(stored.refreshedAt) < since) return false;
      }
      return true;
    },
    `${hostNames.join(', ')} discovered again`,
    timeoutMs,
  );
}

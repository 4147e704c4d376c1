import assert from 'node:assert/strict';
import type { DroverClient, Schemas } from '../../src/client';

export type Operation = Schemas['Operation'];
export type HostAction = Schemas['HostAction'];

const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

/** Polls an operation until it finishes (or fails the test after `timeoutMs`). */
export async function waitForOperation(client: DroverClient, id: string, timeoutMs = 60_000): Promise<Operation> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await client.GET('/v1/operations/{id}', { params: { path: { id } } });
    assert.equal(result.response.status, 200, JSON.stringify(result.error));
    const operation = result.data!;
    if (FINISHED.has(operation.status)) return operation;
    if (Date.now() > deadline)
      assert.fail(
        `operation ${id} still ${operation.status} after ${timeoutMs} ms: ${JSON.stringify(operation.counts)}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Acts on one unit of one host through the API and waits for the result. */
export async function actOnHost(
  client: DroverClient,
  host: string,
  action: HostAction,
  timeoutMs?: number,
): Promise<Operation> {
  const created = await client.POST('/v1/hosts/{name}/actions', { params: { path: { name: host } }, body: action });
  assert.equal(created.response.status, 202, JSON.stringify(created.error));
  return waitForOperation(client, created.data!.id, timeoutMs);
}

/** The one task of a single-host operation. */
export function onlyTask(operation: Operation): Operation['tasks'][number] {
  assert.equal(operation.tasks.length, 1);
  return operation.tasks[0]!;
}

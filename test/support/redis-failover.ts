import assert from 'node:assert/strict';
import type { DroverClient } from '../../src/client';
import type { TestApi } from './api';
import { query } from './database';
import type { FleetInventory } from './fleet';
import { probeStarts, startRollout, waitForRollout, waitForSettled } from './rollouts';
import { waitUntil } from './wait';

type FleetHost = FleetInventory['hosts'][number];

export interface FailoverRun {
  api: TestApi;
  client: DroverClient;
  /** The rollout's hosts; `selector` names exactly them. */
  hosts: FleetHost[];
  selector: string;
  /** Makes Redis fail over (or crash) once the second batch's restart is under way. */
  failover(): Promise<void>;
  /** Whether the failover is over (the new master serves), and what that means, for the error. */
  failedOver: { check: () => Promise<boolean>; description: string };
}

/**
 * Rolls drover-probe out over the hosts one at a time and, once the second batch's restart is
 * under way on its host, has Redis fail over; then checks that the rollout succeeded with every
 * host started exactly once, and that the audit chain verifies.
 */
export async function rolloutAcrossFailover(run: FailoverRun): Promise<void> {
  const { api, client, hosts } = run;
  const startsBefore = await Promise.all(hosts.map(async (host) => (await probeStarts(host)).length));
  const created = await startRollout(client, {
    unit: 'drover-probe.service',
    selector: run.selector,
    batches: { size: 1 },
    healthGate: { minHealthyTimeMs: 1_000 },
  });
  await waitForRollout(client, created.id, (rollout) => rollout.batches.length >= 2, 60_000);
  await waitUntil(
    async () => {
      const [row] = await query<{ count: string }>(
        api.database.url,
        `SELECT count(*) FROM tasks t JOIN rollout_batches b ON b.operation_id = t.operation_id
          WHERE b.rollout_id = $1 AND b.index = 1 AND t.state = 'running'`,
        [created.id],
      );
      return Number(row?.count) > 0;
    },
    'a task of the second batch runs',
    30_000,
  );
  await run.failover();
  await waitUntil(run.failedOver.check, run.failedOver.description, 30_000);

  const rollout = await waitForSettled(client, created.id, 120_000);
  assert.equal(rollout.status, 'succeeded', rollout.reason ?? '');
  assert.deepEqual(
    await Promise.all(hosts.map(async (host) => (await probeStarts(host)).length)),
    startsBefore.map((count) => count + 1),
    'each host started exactly once, none skipped',
  );
  const auditor = await api.client({ scopes: ['audit'] });
  const verification = await auditor.GET('/v1/audit/verify', {});
  assert.equal(verification.response.status, 200);
  assert.equal(verification.data!.ok, true, JSON.stringify(verification.data));
}

/** How long each close of a failover test's teardown may take. */
const TEARDOWN_STEP_MS = 60_000;

/**
 * Closes what a failover test started, each step on its own and bounded, and returns what did not
 * close: the Redis servers can then go even when a close fails, and a close that never ends is
 * named instead of holding the file until the run's time limit (a worker's close has been seen to
 * wait forever, with BullMQ's blocking connection ended during the failovers and its last read
 * never settled).
 */
export async function closeEachWithin(steps: [name: string, close: (() => Promise<void>) | undefined][]) {
  const problems: string[] = [];
  for (const [name, close] of steps) {
    if (!close) continue;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`did not finish within ${TEARDOWN_STEP_MS / 1000} s`)),
        TEARDOWN_STEP_MS,
      );
    });
    await Promise.race([close(), bound])
      .catch((error: unknown) => problems.push(`${name}: ${String(error)}`))
      .finally(() => clearTimeout(timer));
  }
  return problems;
}

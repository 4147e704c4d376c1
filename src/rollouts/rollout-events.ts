/**
 * Every event a rollout appends to its stream, with its data: the one list of rollout event types.
 * (Its place is the protocol package, beside the other shared vocabulary; it lives here until it
 * moves there.) The stream adds an `at` timestamp to each when it sends it.
 */
import type { UnitBaseline } from './rollout-rules';
import type { RolloutStatus } from '@drover/protocol';

/** What a health check read of a unit. */
export type CheckedUnit = { activeState: string; subState: string; mainPid: number | null; nRestarts: number | null };

export type RolloutEventInput =
  | {
      type: 'rollout.created';
      data: { status: RolloutStatus; total: number; hosts: string[]; superseded?: string[] };
    }
  | { type: 'rollout.queued'; data: { blockedBy: string[]; reason: string | null } }
  | { type: 'rollout.started'; data: { waitedFor: string[] } }
  | {
      type: 'batch.started';
      data: { index: number; run: number; hosts: string[]; unavailableAtStart: number; operationId: string };
    }
  | {
      type: 'task.waiting';
      data: { host: string; unit: string | null; taskId: string; waitingFor: string; heldByRolloutId: string | null };
    }
  | {
      type: 'task.finished';
      data: {
        host: string;
        unit: string | null;
        taskId: string;
        state: string;
        reason: string | null;
        mainPidBefore: number | null;
        mainPidAfter: number | null;
      };
    }
  | { type: 'host.gating'; data: { host: string; batch: number | null; baseline: UnitBaseline[] } }
  | { type: 'gate.check'; data: { host: string; healthy: boolean; problems: string[] } }
  | { type: 'host.succeeded'; data: { host: string; batch: number | null; units: Record<string, CheckedUnit> } }
  | { type: 'host.failed'; data: { host: string; batch: number | null; reason: string } }
  | { type: 'host.interrupted'; data: { host: string; reason: string } }
  | { type: 'host.cancelled'; data: { host: string; batch: number | null; reason: string } }
  | { type: 'batch.finished'; data: { index: number; run: number; succeeded: string[]; failed: string[] } }
  | { type: 'rollout.waiting'; data: { reason: string; downNow: number } }
  | { type: 'rollout.pausing_between_batches'; data: { until: string } }
  | { type: 'rollout.awaiting_approval'; data: { reason: string } }
  | {
      type: 'rollout.paused' | 'rollout.resumed' | 'rollout.approved' | 'rollout.retried';
      data: { by: string; reason: string | null; status: RolloutStatus; blockedBy?: string[] };
    }
  | {
      type: 'rollout.finished';
      data: {
        status: RolloutStatus;
        reason: string | null;
        supersededBy?: string;
        by?: string;
        blockedBy?: string[];
      };
    };

export type RolloutEventType = RolloutEventInput['type'];

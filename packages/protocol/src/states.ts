/**
 * Every state list of drover's records, with the predicates that group them: defined once here, used
 * by the API's schemas, the services, the CLI, the dashboard and the agent. The database keeps the
 * same lists as enums (prisma/schema.prisma); a unit test checks that the two agree.
 */

export const HOST_TRANSPORTS = ['ssh', 'agent'] as const;
export type HostTransport = (typeof HOST_TRANSPORTS)[number];

export const HOST_STATUSES = ['unknown', 'reachable', 'unreachable'] as const;
export type HostStatus = (typeof HOST_STATUSES)[number];

export const OPERATION_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];
/** An operation in one of these has every task at rest: nothing of it will run again. */
export const FINISHED_OPERATION_STATUSES: readonly OperationStatus[] = ['succeeded', 'failed', 'cancelled'];

export const TASK_STATES = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'unreachable',
  'cancelled',
  'skipped',
] as const;
export type TaskState = (typeof TASK_STATES)[number];
/** Task ends that make their operation failed. */
export const FAILED_TASK_STATES: readonly TaskState[] = ['failed', 'timed_out', 'unreachable'];
/** States of a task that may still act; it leaves them for good. */
export const ACTIVE_TASK_STATES: readonly TaskState[] = ['queued', 'running'];

export const ROLLOUT_STATUSES = [
  'queued',
  'running',
  'paused',
  'awaiting_approval',
  'succeeded',
  'aborted',
  'cancelled',
] as const;
export type RolloutStatus = (typeof ROLLOUT_STATUSES)[number];
/** Statuses in which a rollout's steps act on hosts and judge their health gates. */
export const ACTING_ROLLOUT_STATUSES: readonly RolloutStatus[] = ['running', 'paused', 'awaiting_approval'];
/** Statuses of a rollout that has not ended: acting, or queued behind overlapping ones. */
export const UNFINISHED_ROLLOUT_STATUSES: readonly RolloutStatus[] = ['queued', ...ACTING_ROLLOUT_STATUSES];

export function isActingRollout(status: RolloutStatus): boolean {
  return ACTING_ROLLOUT_STATUSES.includes(status);
}

export function isUnfinishedRollout(status: RolloutStatus): boolean {
  return UNFINISHED_ROLLOUT_STATUSES.includes(status);
}

export const ROLLOUT_HOST_STATES = [
  'pending',
  'acting',
  'gating',
  'succeeded',
  'failed',
  'interrupted',
  'cancelled',
] as const;
export type RolloutHostState = (typeof ROLLOUT_HOST_STATES)[number];
/** Hosts whose unit was acted on in the rollout's latest run (cancelled ones never were). */
export const ACTED_ROLLOUT_HOST_STATES: readonly RolloutHostState[] = ['succeeded', 'failed', 'interrupted'];

/** The ways a rollout can be steered once it exists (each a route, an audit action and an event). */
export const ROLLOUT_CONTROLS = ['pause', 'resume', 'approve', 'cancel', 'retry'] as const;
export type RolloutControl = (typeof ROLLOUT_CONTROLS)[number];

/**
 * Every BullMQ queue and job name, with the payload each job carries. Producers and processors
 * import names from here only, so a typo cannot create a queue nobody consumes.
 *
 * Two lanes, each with its own workers and concurrency, so work someone waits for (tasks, rollout
 * steps, the reconciler that revives them) never queues behind background work (discoveries).
 */
export enum QueueName {
  Lifecycle = 'lifecycle',
  Background = 'background',
}

export enum JobName {
  /** Execute one task (a verb on a unit of a host). */
  RunTask = 'task.run',
  /** List a host's units and store them. */
  DiscoverHost = 'host.discover',
  /** Periodic: queue discovery of every host. */
  DiscoverySweep = 'discovery.sweep',
  /** Periodic: re-dispatch unfinished operations and wake unfinished rollouts whose jobs were lost (a crash, a Redis restart). */
  ReconcileOperations = 'operations.reconcile',
  /** Take a rollout's next step (settle finished tasks, gate, advance, start a batch). */
  RolloutStep = 'rollout.step',
  /** Deliver a webhook subscription's pending events, one at a time in order (re-delays itself while idle). */
  DeliverWebhooks = 'webhooks.deliver',
}

export interface JobPayloads {
  [JobName.RunTask]: { taskId: string };
  [JobName.DiscoverHost]: { hostId: string };
  [JobName.DiscoverySweep]: Record<string, never>;
  [JobName.ReconcileOperations]: Record<string, never>;
  [JobName.RolloutStep]: { rolloutId: string };
  [JobName.DeliverWebhooks]: { subscriptionId: string };
}

/** Every job name, so start-up can check each has exactly one handler. */
export const JOB_NAMES: readonly JobName[] = Object.values(JobName);

/** The lane each job runs in. */
export const QUEUE_OF: Readonly<Record<JobName, QueueName>> = {
  [JobName.RunTask]: QueueName.Lifecycle,
  [JobName.RolloutStep]: QueueName.Lifecycle,
  [JobName.ReconcileOperations]: QueueName.Lifecycle,
  [JobName.DiscoverHost]: QueueName.Background,
  [JobName.DiscoverySweep]: QueueName.Background,
  [JobName.DeliverWebhooks]: QueueName.Background,
};

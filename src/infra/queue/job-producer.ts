import { JobName, JobPayloads, QUEUE_OF, QueueName } from '@drover/protocol';
import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { JobsOptions, Queue } from 'bullmq';
import type { RedisClient } from '../redis/redis-connection';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { REDIS } from '../redis/redis.module';

/** A wake signal outlives any step that could miss it; it only expires for rollouts nobody steps any more. */
const WAKE_SIGNAL_TTL_MS = 10 * 60_000;

/** After an action, the host is looked at this much later: actions in quick succession share one look. */
const AFTER_ACTION_DISCOVERY_DELAY_MS = 1_000;

const taskJobId = (taskId: string): string => `task-${taskId}`;

const KEEP_FINISHED = { removeOnComplete: { age: 3_600, count: 10_000 }, removeOnFail: { age: 7 * 86_400 } };

/**
 * The one place jobs are enqueued and their options decided. Job ids derive from what the job
 * is about, so enqueueing the same work twice (a retry, a reconciler pass) never duplicates it.
 */
@Injectable()
export class JobProducer {
  private readonly logger = new Logger(JobProducer.name);
  private readonly queues: Readonly<Record<QueueName, Queue>>;

  constructor(
    @InjectQueue(QueueName.Lifecycle) lifecycle: Queue,
    @InjectQueue(QueueName.Background) background: Queue,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    // BullMQ reconnects on its own; without a listener ioredis prints every failed attempt as an
    // unhandled error event. The reconciler re-queues whatever an outage cost.
    this.queues = { [QueueName.Lifecycle]: lifecycle, [QueueName.Background]: background };
    for (const lane of [lifecycle, background]) {
      lane.on('error', (error: Error) => this.logger.warn(`queue connection: ${error.message}`));
    }
  }

  /** The queue (lane) a job runs in. */
  private lane(name: JobName): Queue {
    return this.queues[QUEUE_OF[name]];
  }

  async runTasks(taskIds: readonly string[]): Promise<void> {
    if (taskIds.length === 0) return;
    const options: JobsOptions = {
      ...KEEP_FINISHED,
      // Retries cover worker-side failures (database or Redis briefly gone). Host failures are
      // task outcomes, not job failures; the task runner never re-runs an action that took effect.
      attempts: 5,
      backoff: { type: 'exponential', delay: 1_000 },
    };
    await this.lane(JobName.RunTask).addBulk(
      taskIds.map((taskId) => ({
        name: JobName.RunTask,
        data: { taskId } satisfies JobPayloads[JobName.RunTask],
        opts: { ...options, jobId: taskJobId(taskId) },
      })),
    );
  }

  /**
   * As runTasks, for tasks that should be running (the reconciler's): a job of theirs that already
   * failed or completed is removed first. BullMQ ignores adding a job id it still holds, so a task
   * whose job failed for good while its end could not be recorded (the database away longer than
   * the retries) would otherwise stay running for as long as failed jobs are kept.
   */
  async requeueTasks(taskIds: readonly string[]): Promise<void> {
    const jobIds = taskIds.map(taskJobId);
    const states = await Promise.all(jobIds.map((jobId) => this.lane(JobName.RunTask).getJobState(jobId)));
    const finished = jobIds.filter((_, index) => states[index] === 'failed' || states[index] === 'completed');
    if (finished.length > 0) {
      this.logger.warn({ jobIds: finished }, 'queueing again tasks still active whose jobs had ended');
      await Promise.all(finished.map((jobId) => this.lane(JobName.RunTask).remove(jobId)));
    }
    await this.runTasks(taskIds);
  }

  /**
   * Makes a rollout take its next step now. Each rollout has one step job (its id derives from the
   * rollout) that re-delays itself while the rollout waits: waking it promotes that job, or queues
   * it when there is none. A step running right now cannot be promoted: the wake signal set first
   * makes it run again as soon as it ends (see JobDeferred), so no wake-up is lost.
   */
  async wakeRollout(rolloutId: string): Promise<void> {
    await this.wakeSteppedJob(
      JobName.RolloutStep,
      `rollout-${rolloutId}`,
      { rolloutId },
      this.rolloutWakeSignal(rolloutId),
      500,
    );
  }

  /**
   * Makes a webhook subscription's delivery job look for due deliveries now: the same one-job,
   * re-delaying, wake-signal pattern as a rollout's steps (see wakeRollout).
   */
  async wakeWebhookSubscription(subscriptionId: string): Promise<void> {
    await this.wakeSteppedJob(
      JobName.DeliverWebhooks,
      `webhooks-${subscriptionId}`,
      { subscriptionId },
      this.webhookWakeSignal(subscriptionId),
      1_000,
    );
  }

  /** The key wake-ups of a webhook subscription set; its delivery job clears it as it starts reading. */
  webhookWakeSignal(subscriptionId: string): string {
    return `${this.config.QUEUE_PREFIX}:webhook-wake:${subscriptionId}`;
  }

  private async wakeSteppedJob<Name extends JobName.RolloutStep | JobName.DeliverWebhooks>(
    name: Name,
    jobId: string,
    data: JobPayloads[Name],
    wakeSignal: string,
    retryDelayMs: number,
  ): Promise<void> {
    await this.redis.set(wakeSignal, '1', 'PX', WAKE_SIGNAL_TTL_MS);
    const existing = await this.lane(name).getJob(jobId);
    if (existing) {
      if (await existing.isDelayed()) await existing.promote().catch(() => undefined);
      return;
    }
    await this.lane(name).add(name, data, {
      jobId,
      // Freed at once so the next wake-up can queue it again; the reconciler re-queues a lost one.
      removeOnComplete: true,
      removeOnFail: true,
      attempts: 5,
      backoff: { type: 'exponential', delay: retryDelayMs },
    });
  }

  /** The key wake-ups of a rollout set; its step clears it as it starts reading. */
  rolloutWakeSignal(rolloutId: string): string {
    return `${this.config.QUEUE_PREFIX}:rollout-wake:${rolloutId}`;
  }

  /** The key discovery requests of a host set; its discovery clears it as it starts listing. */
  discoveryWakeSignal(hostId: string): string {
    return `${this.config.QUEUE_PREFIX}:discover-wake:${hostId}`;
  }

  /** The key set while the host's next discovery is to list every unit, not only those that changed. */
  fullDiscoverySignal(hostId: string): string {
    return `${this.config.QUEUE_PREFIX}:discover-full:${hostId}`;
  }

  /** Clears a wake signal; true when it was set (someone asked for a step since it was last taken). */
  async takeWakeSignal(key: string): Promise<boolean> {
    return (await this.redis.del(key)) > 0;
  }

  /** Queues a discovery of every unit of the host (asked for, periodic, or a host added). */
  async discoverHost(hostId: string, delayMs = 0): Promise<void> {
    await this.redis.set(this.fullDiscoverySignal(hostId), '1', 'PX', WAKE_SIGNAL_TTL_MS);
    await this.queueDiscovery(hostId, delayMs);
  }

  /**
   * Queues a look at a host that was acted on: at the units whose state changed, or, when the
   * action may have changed other units' files (`otherUnitFiles`), at every unit, but that at most
   * once per FULL_DISCOVERY_MIN_GAP_MS and host (the periodic discovery catches up after).
   */
  async discoverAfterAction(hostId: string, otherUnitFiles: boolean): Promise<void> {
    const gapMs = this.config.FULL_DISCOVERY_MIN_GAP_MS;
    const gapKey = `${this.config.QUEUE_PREFIX}:discover-full-gap:${hostId}`;
    if (otherUnitFiles && (gapMs === 0 || (await this.redis.set(gapKey, '1', 'PX', gapMs, 'NX')) === 'OK')) {
      await this.redis.set(this.fullDiscoverySignal(hostId), '1', 'PX', WAKE_SIGNAL_TTL_MS);
    }
    await this.queueDiscovery(hostId, AFTER_ACTION_DISCOVERY_DELAY_MS);
  }

  /**
   * Queues a discovery of the host (background lane) unless one is already queued or running for
   * it. A request while one runs is not lost: the signal set first makes the running discovery
   * list the host again once it ends (it may have read the host before what prompted this request).
   */
  private async queueDiscovery(hostId: string, delayMs: number): Promise<void> {
    await this.redis.set(this.discoveryWakeSignal(hostId), '1', 'PX', WAKE_SIGNAL_TTL_MS);
    await this.lane(JobName.DiscoverHost).add(
      JobName.DiscoverHost,
      { hostId } satisfies JobPayloads[JobName.DiscoverHost],
      {
        ...KEEP_FINISHED,
        attempts: 3,
        backoff: { type: 'exponential', delay: 2_000 },
        delay: delayMs,
        deduplication: { id: `discover-${hostId}` },
      },
    );
  }

  /** Installs (or updates) the periodic jobs; safe to call from every worker at start. */
  async scheduleMaintenance(): Promise<void> {
    await this.lane(JobName.ReconcileOperations).upsertJobScheduler(
      JobName.ReconcileOperations,
      { every: this.config.RECONCILE_INTERVAL_MS },
      { name: JobName.ReconcileOperations, data: {}, opts: KEEP_FINISHED },
    );
    if (this.config.DISCOVERY_INTERVAL_MS > 0) {
      await this.lane(JobName.DiscoverySweep).upsertJobScheduler(
        JobName.DiscoverySweep,
        { every: this.config.DISCOVERY_INTERVAL_MS },
        { name: JobName.DiscoverySweep, data: {}, opts: KEEP_FINISHED },
      );
    } else {
      await this.lane(JobName.DiscoverySweep).removeJobScheduler(JobName.DiscoverySweep);
    }
    // Before lanes, the sweep was scheduled on the lifecycle queue: a scheduler left there from an
    // older version would keep queueing sweeps nobody in that lane handles.
    await this.queues[QueueName.Lifecycle].removeJobScheduler(JobName.DiscoverySweep);
  }
}

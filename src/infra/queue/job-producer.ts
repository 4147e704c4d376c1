import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import type { JobsOptions, Queue } from 'bullmq';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { JobName, JobPayloads, QueueName } from './queue.constants';

const KEEP_FINISHED = { removeOnComplete: { age: 3_600, count: 10_000 }, removeOnFail: { age: 7 * 86_400 } };

/**
 * The one place jobs are enqueued and their options decided. Job ids derive from what the job
 * is about, so enqueueing the same work twice (a retry, a reconciler pass) never duplicates it.
 */
@Injectable()
export class JobProducer {
  constructor(
    @InjectQueue(QueueName.Lifecycle) private readonly queue: Queue,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async runTasks(taskIds: readonly string[]): Promise<void> {
    if (taskIds.length === 0) return;
    const options: JobsOptions = {
      ...KEEP_FINISHED,
      // Retries cover worker-side failures (database or Redis briefly gone). Host failures are
      // task outcomes, not job failures; the task runner never re-runs an action that took effect.
      attempts: 5,
      backoff: { type: 'exponential', delay: 1_000 },
    };
    await this.queue.addBulk(
      taskIds.map((taskId) => ({
        name: JobName.RunTask,
        data: { taskId } satisfies JobPayloads[JobName.RunTask],
        opts: { ...options, jobId: `task-${taskId}` },
      })),
    );
  }

  /**
   * Makes a rollout take its next step now. Each rollout has one step job (its id derives from the
   * rollout) that re-delays itself while the rollout waits: waking it promotes that job, or queues
   * it when there is none. A wake-up that races a running step is covered by that step's own delay.
   */
  async wakeRollout(rolloutId: string): Promise<void> {
    const jobId = `rollout-${rolloutId}`;
    const existing = await this.queue.getJob(jobId);
    if (existing) {
      if (await existing.isDelayed()) await existing.promote().catch(() => undefined);
      return;
    }
    await this.queue.add(JobName.RolloutStep, { rolloutId } satisfies JobPayloads[JobName.RolloutStep], {
      jobId,
      // Freed at once so the next wake-up can queue it again; the reconciler re-queues a lost one.
      removeOnComplete: true,
      removeOnFail: true,
      attempts: 5,
      backoff: { type: 'exponential', delay: 500 },
    });
  }

  /** Queues a discovery of the host unless one is already waiting for it. */
  async discoverHost(hostId: string, delayMs = 0): Promise<void> {
    await this.queue.add(JobName.DiscoverHost, { hostId } satisfies JobPayloads[JobName.DiscoverHost], {
      ...KEEP_FINISHED,
      attempts: 3,
      backoff: { type: 'exponential', delay: 2_000 },
      delay: delayMs,
      deduplication: { id: `discover-${hostId}` },
    });
  }

  /** Installs (or updates) the periodic jobs; safe to call from every worker at start. */
  async scheduleMaintenance(): Promise<void> {
    await this.queue.upsertJobScheduler(
      JobName.ReconcileOperations,
      { every: this.config.RECONCILE_INTERVAL_MS },
      { name: JobName.ReconcileOperations, data: {}, opts: KEEP_FINISHED },
    );
    if (this.config.DISCOVERY_INTERVAL_MS > 0) {
      await this.queue.upsertJobScheduler(
        JobName.DiscoverySweep,
        { every: this.config.DISCOVERY_INTERVAL_MS },
        { name: JobName.DiscoverySweep, data: {}, opts: KEEP_FINISHED },
      );
    } else {
      await this.queue.removeJobScheduler(JobName.DiscoverySweep);
    }
  }
}

import { JOB_NAMES, JobName, JobPayloads, QueueName } from '@drover/protocol';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { type ConnectionOptions, DelayedError, Job, Worker } from 'bullmq';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { DispatcherService } from '../operations/dispatcher.service';
import { TaskRunnerService } from '../operations/task-runner.service';
import { RolloutRunnerService } from '../rollouts/rollout-runner.service';
import { DiscoveryService } from '../units/discovery.service';
import { WebhookDeliveryService } from '../webhooks/webhook-delivery.service';
import { PolicyEvaluationService } from '../policies/policy-evaluation.service';
import { waitAtMost } from '../common/concurrency/wait-at-most';
import { JobDeferred } from '../infra/queue/job-deferred';
import { JobProducer } from '../infra/queue/job-producer';
import { LanePresence } from '../infra/queue/lane-presence';
import { BULLMQ_CONNECTION } from '../infra/redis/redis.token';

/** How long a stop waits to withdraw this worker from the lanes it counts in. */
const WITHDRAW_WAIT_MS = 1_000;
/** Looks in a row finding a lane without a worker before a worker that leaves it out warns. */
const EMPTY_LOOKS_BEFORE_WARNING = 2;

type Handlers = { [Name in JobName]: (payload: JobPayloads[Name]) => Promise<unknown> };

/**
 * Consumes the lanes WORKER_LANES names (both by default): the lifecycle queue (tasks, rollout
 * steps, the reconciler) and the background queue (discoveries, webhook deliveries), each with its own concurrency, so
 * a flood of discoveries never takes a task's place. Thin by design: each job name maps to one
 * service method. The BullMQ workers are built here (not by decorator) so concurrency and lock
 * timing come from config.
 */
@Injectable()
export class LifecycleProcessor implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(LifecycleProcessor.name);
  private readonly handlers: Handlers;
  private readonly lanes: Worker[] = [];
  private maintenanceTimer: NodeJS.Timeout | undefined;
  /** This process, as it counts among a lane's workers. */
  private readonly presenceId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  /** For each lane this process does not consume, how many looks in a row found no worker on it. */
  private readonly emptyLooks = new Map<QueueName, number>();

  constructor(
    private readonly taskRunner: TaskRunnerService,
    discovery: DiscoveryService,
    dispatcher: DispatcherService,
    rolloutRunner: RolloutRunnerService,
    webhooks: WebhookDeliveryService,
    policies: PolicyEvaluationService,
    private readonly producer: JobProducer,
    private readonly presence: LanePresence,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(BULLMQ_CONNECTION) private readonly connection: ConnectionOptions,
  ) {
    this.handlers = {
      [JobName.RunTask]: ({ taskId }) => taskRunner.run(taskId),
      [JobName.DiscoverHost]: ({ hostId }) => discovery.discover(hostId),
      [JobName.DiscoverySweep]: () => discovery.sweep(),
      [JobName.ReconcileOperations]: async () => ({
        operations: await dispatcher.reconcile(),
        rollouts: await rolloutRunner.reconcile(),
        webhookSubscriptions: await webhooks.reconcile(),
        policies: await policies.evaluateAll(),
      }),
      [JobName.RolloutStep]: ({ rolloutId }) => rolloutRunner.step(rolloutId),
      [JobName.DeliverWebhooks]: ({ subscriptionId }) => webhooks.deliver(subscriptionId),
    };
    const missing = JOB_NAMES.filter((name) => typeof this.handlers[name] !== 'function');
    if (missing.length > 0) throw new Error(`no handler for job names: ${missing.join(', ')}`);
  }

  /** Resolves once every lane's worker is connected. */
  async waitUntilReady(): Promise<void> {
    if (this.lanes.length === 0) throw new Error('the workers have not started');
    await Promise.all(this.lanes.map((lane) => lane.waitUntilReady()));
  }

  async onModuleInit(): Promise<void> {
    const concurrency: Record<QueueName, number> = {
      [QueueName.Lifecycle]: this.config.WORKER_CONCURRENCY,
      [QueueName.Background]: this.config.DISCOVERY_CONCURRENCY,
    };
    for (const name of this.config.WORKER_LANES) {
      const lane = new Worker(name, (job, token) => this.process(job, token), {
        connection: this.connection,
        prefix: this.config.QUEUE_PREFIX,
        concurrency: concurrency[name],
        lockDuration: this.config.JOB_LOCK_DURATION_MS,
        // Look for jobs whose worker vanished as often as a lock can lapse.
        stalledInterval: this.config.JOB_LOCK_DURATION_MS,
        maxStalledCount: 3,
      });
      lane.on('failed', (job, error) => void this.onFailed(job, error));
      lane.on('error', (error) => this.logger.error({ err: error, lane: name }, `worker error: ${error.message}`));
      this.lanes.push(lane);
    }
    await this.producer.scheduleMaintenance();
    await this.announce();
    // Redis keeps nothing on disk here: after a restart the schedulers are gone with the queue.
    // Re-installing them is idempotent, and the reconciler they run re-queues the lost jobs.
    this.maintenanceTimer = setInterval(() => {
      this.producer
        .scheduleMaintenance()
        .catch((error: unknown) => this.logger.warn({ err: error }, 'could not install the periodic jobs'));
      // Looked at from the first interval on, not at start: workers of a deployment start in any order.
      void this.announce().then(() => this.checkOtherLanes());
    }, this.config.RECONCILE_INTERVAL_MS);
    this.maintenanceTimer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.maintenanceTimer);
    // Bounded: a Redis that is away must not take the time the running jobs have to finish. Not
    // withdrawn, this worker stops counting a few intervals later.
    await waitAtMost(
      this.presence
        .withdraw(this.presenceId, this.config.WORKER_LANES)
        .catch((error: unknown) => this.logger.warn({ err: error }, 'could not withdraw from the lanes')),
      WITHDRAW_WAIT_MS,
    );
    // Waits for running jobs to finish; the entrypoint bounds how long.
    await Promise.all(this.lanes.map((lane) => lane.close()));
  }

  private async announce(): Promise<void> {
    await this.presence
      .announce(this.presenceId, this.config.WORKER_LANES)
      .catch((error: unknown) => this.logger.warn({ err: error }, 'could not announce the lanes this worker consumes'));
  }

  /**
   * Warns once when a lane this process leaves out has had no worker at two looks in a row (its
   * jobs would wait forever), and says when it has one again. Two looks: after Redis lost its data,
   * this worker may look before its peers have announced themselves again.
   */
  private async checkOtherLanes(): Promise<void> {
    const others = Object.values(QueueName).filter((lane) => !this.config.WORKER_LANES.includes(lane));
    if (others.length === 0) return;
    const workers = await this.presence.workers().catch(() => null);
    if (!workers) return;
    for (const lane of others) {
      const looks = workers[lane] === 0 ? (this.emptyLooks.get(lane) ?? 0) + 1 : 0;
      if (looks === EMPTY_LOOKS_BEFORE_WARNING) {
        this.logger.warn(
          { lane },
          `no worker consumes the ${lane} lane: its jobs wait until one does (start a worker whose WORKER_LANES includes ${lane})`,
        );
      } else if (looks === 0 && (this.emptyLooks.get(lane) ?? 0) >= EMPTY_LOOKS_BEFORE_WARNING) {
        this.logger.log({ lane, workers: workers[lane] }, `the ${lane} lane has a worker again`);
      }
      this.emptyLooks.set(lane, looks);
    }
  }

  private async onFailed(job: Job | undefined, error: Error): Promise<void> {
    this.logger.error(
      { jobId: job?.id, jobName: job?.name, attemptsMade: job?.attemptsMade, err: error },
      `job failed: ${error.message}`,
    );
    // BullMQ fails a job that stalled too often (its workers kept dying) with UnrecoverableError
    // without using up its attempts: that is final too.
    const exhausted =
      job !== undefined && (error.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1));
    if (exhausted && (job.name as JobName) === JobName.RunTask) {
      await this.taskRunner
        .abandon((job.data as JobPayloads[JobName.RunTask]).taskId, error.message)
        .catch((cause: unknown) =>
          this.logger.error(
            { jobId: job.id, err: cause },
            'could not record the abandoned task; the reconciler will see it',
          ),
        );
    }
  }

  private async process(job: Job, token?: string): Promise<unknown> {
    const handler = this.handlers[job.name as JobName] as ((payload: unknown) => Promise<unknown>) | undefined;
    if (!handler) throw new Error(`no handler for job '${job.name}'`);
    const keepLock = token ? this.keepLock(job, token) : undefined;
    try {
      for (;;) {
        try {
          return await handler(job.data);
        } catch (error) {
          if (!(error instanceof JobDeferred) || !token) throw error;
          // Woken while it ran: run again at once, in this same processing.
          if (error.wakeSignal && (await this.producer.takeWakeSignal(error.wakeSignal))) continue;
          await job.moveToDelayed(Date.now() + error.delayMs, token);
          // Checked only now that the job is delayed: a wake-up setting the signal from here on
          // finds it delayed and promotes it itself, so none is lost between the two. That wake-up
          // may also have promoted it already: then promoting fails, and must not fail this run.
          if (error.wakeSignal && (await this.producer.takeWakeSignal(error.wakeSignal))) {
            await job.promote().catch(() => undefined);
          }
          throw new DelayedError();
        }
      }
    } finally {
      clearInterval(keepLock);
    }
  }

  /**
   * Renews the job's lock while this run lasts. BullMQ renews locks too, but tracks them by job
   * id: a job promoted the moment it was deferred can start in another slot before BullMQ stops
   * tracking the previous run, which then stops renewing the new run's lock as well. A long run
   * (a webhook delivery waiting on a slow receiver) would lose its lock and be started again.
   */
  private keepLock(job: Job, token: string): NodeJS.Timeout {
    const duration = this.config.JOB_LOCK_DURATION_MS;
    const timer = setInterval(() => {
      job.extendLock(token, duration).catch((error: unknown) => {
        this.logger.warn({ jobId: job.id, err: error }, 'could not renew a job lock');
      });
    }, duration / 2);
    timer.unref();
    return timer;
  }
}

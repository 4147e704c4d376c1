import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger } from '@nestjs/common';
import { Job, UnrecoverableError } from 'bullmq';
import { JOB_NAMES, QueueName } from './queue.constants';

/**
 * Consumes the lifecycle queue. Thin by design: it routes each job by name to the one service
 * method that handles it. A job whose name has no handler fails without retries, loudly.
 */
@Processor(QueueName.Lifecycle, { concurrency: 50 })
export class LifecycleProcessor extends WorkerHost {
  private readonly logger = new Logger(LifecycleProcessor.name);
  private readonly handlers = new Map<string, (job: Job) => Promise<unknown>>();

  constructor() {
    super();
    const missing = JOB_NAMES.filter((name) => !this.handlers.has(name));
    if (missing.length > 0) throw new Error(`no handler for job names: ${missing.join(', ')}`);
  }

  async process(job: Job): Promise<unknown> {
    const handler = this.handlers.get(job.name);
    if (!handler) {
      this.logger.error({ jobId: job.id, jobName: job.name }, 'job has no handler');
      throw new UnrecoverableError(`no handler for job '${job.name}'`);
    }
    return handler(job);
  }
}

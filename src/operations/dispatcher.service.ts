import { Injectable } from '@nestjs/common';
import { JobProducer } from '../infra/queue/job-producer';
import { Dispatchable, OperationsRepository } from './operations.repository';

/**
 * Hands an operation's tasks to the queue, never more at once than its concurrency. Called after
 * an operation is created, after each task ends, and by the reconciler; every call is idempotent.
 */
@Injectable()
export class DispatcherService {
  constructor(
    private readonly operations: OperationsRepository,
    private readonly producer: JobProducer,
  ) {}

  async dispatch(operationId: string): Promise<void> {
    await this.enqueue(await this.operations.claimDispatchable(operationId));
  }

  /**
   * After a task's end: queues what that end claimed in its own call (OperationsRepository.finish),
   * or, when it ended nothing (`claim` null: the task had ended, or a newer attempt owns it),
   * dispatches as any other caller would.
   */
  async afterTaskEnd(operationId: string, claim: Dispatchable | null): Promise<void> {
    await this.enqueue(claim ?? (await this.operations.claimDispatchable(operationId)));
  }

  private async enqueue({ claimed, idle, rolloutId }: Dispatchable): Promise<void> {
    await this.producer.runTasks(claimed);
    // A batch of a rollout whose last task just ended: that is what the rollout's next step waits
    // for. (Its hosts' gates start together: the batch ends with its slowest host either way.)
    if (rolloutId && idle) await this.producer.wakeRollout(rolloutId);
  }

  /**
   * Re-dispatches every unfinished operation and enqueues again every task dispatched before:
   * covers a crash between a commit and its enqueue, jobs lost with Redis, and jobs that ended
   * (failed for good) while their task could not be ended.
   */
  async reconcile(): Promise<number> {
    const ids = await this.operations.unfinishedOperationIds();
    for (const id of ids) {
      const { rolloutId } = await this.operations.claimDispatchable(id);
      await this.producer.requeueTasks(await this.operations.inFlightTaskIds(id));
      if (rolloutId) await this.producer.wakeRollout(rolloutId);
    }
    return ids.length;
  }
}

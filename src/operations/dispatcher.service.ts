import { Injectable } from '@nestjs/common';
import { JobProducer } from '../infra/queue/job-producer';
import { OperationsRepository } from './operations.repository';

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
    const { taskIds, rolloutId } = await this.operations.claimDispatchable(operationId);
    await this.producer.runTasks(taskIds);
    // A batch of a rollout: its tasks ending is what the rollout's next step waits for.
    if (rolloutId) await this.producer.wakeRollout(rolloutId);
  }

  /** Re-dispatches every unfinished operation (covers a crash between a commit and its enqueue). */
  async reconcile(): Promise<number> {
    const ids = await this.operations.unfinishedOperationIds();
    for (const id of ids) await this.dispatch(id);
    return ids.length;
  }
}

/**
 * Thrown by a job handler to run the same job again later instead of finishing it: another task
 * holds the unit, or a rollout's next step is due later. The processor moves the job to delayed.
 *
 * `wakeSignal`: a Redis key that wake-ups set (see JobProducer.wakeRollout). A wake-up that came
 * while this job was running found it active and could not promote it; the processor looks at the
 * key once the job is delayed and, if it is set, runs the job again at once instead.
 */
export class JobDeferred extends Error {
  constructor(
    readonly delayMs: number,
    readonly wakeSignal?: string,
  ) {
    super(`deferred for ${delayMs} ms`);
  }
}

/**
 * Thrown by a job handler to run the same job again later instead of finishing it: another task
 * holds the unit, or a rollout's next step is due later. The processor moves the job to delayed.
 */
export class JobDeferred extends Error {
  constructor(readonly delayMs: number) {
    super(`deferred for ${delayMs} ms`);
  }
}

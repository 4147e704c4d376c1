/**
 * Every BullMQ queue and job name, with the payload each job carries. Producers and processors
 * import names from here only, so a typo cannot create a queue nobody consumes.
 */
export enum QueueName {
  Lifecycle = 'lifecycle',
}

/** Job name → payload. Lifecycle jobs (systemctl verbs, discovery) are added here with their handlers. */
export type JobPayloads = Record<never, never>;

export type JobName = keyof JobPayloads;

/** Every job name, so start-up can check each has exactly one handler. */
export const JOB_NAMES: readonly JobName[] = [];

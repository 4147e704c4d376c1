import type { INestApplicationContext } from '@nestjs/common';
import type { Logger } from 'pino';

/**
 * Closes the app on SIGTERM/SIGINT (BullMQ workers finish their jobs, pools drain) and then exits
 * with status 0: a supervisor (systemd, Kubernetes) tells a clean stop from a crash by that status,
 * where Nest's own hooks would re-raise the signal. A shutdown still running after `timeoutMs`
 * ends the process with status 1. `beforeClose` runs first, and the app closes when it resolves
 * (the API stops taking requests and lets the changes in flight finish).
 */
export function closeOnSignals(
  app: INestApplicationContext,
  timeoutMs: number,
  logger: Logger,
  beforeClose?: () => Promise<void>,
): void {
  let closing = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (closing) return;
      closing = true;
      logger.info({ signal, timeoutMs }, 'shutting down');
      setTimeout(() => {
        logger.error({ timeoutMs }, 'graceful shutdown timed out; exiting');
        process.exit(1);
      }, timeoutMs).unref();
      Promise.resolve(beforeClose?.())
        .then(() => app.close())
        .then(
          () => process.exit(0),
          (error: unknown) => {
            logger.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
    });
  }
}

import type { Logger } from 'pino';

/**
 * Nest's shutdown hooks close modules on SIGTERM/SIGINT (BullMQ workers finish their jobs, pools
 * drain). This bounds that: a shutdown still running after `timeoutMs` ends the process anyway.
 */
export function exitAfterShutdownTimeout(timeoutMs: number, logger: Logger): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal, timeoutMs }, 'shutting down');
      setTimeout(() => {
        logger.error({ timeoutMs }, 'graceful shutdown timed out; exiting');
        process.exit(1);
      }, timeoutMs).unref();
    });
  }
}

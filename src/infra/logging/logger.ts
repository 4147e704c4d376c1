import { LoggerService } from '@nestjs/common';
import pino, { Level, Logger } from 'pino';

/** Creates the process's root JSON logger. Secrets never go into log fields. */
export function createRootLogger(level: string, base: Record<string, string>): Logger {
  return pino({
    level,
    base: { ...base, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
  });
}

function isFields(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !(value instanceof Error) && !Array.isArray(value);
}

/**
 * Routes Nest's log calls into pino. Nest's Logger appends the class name as the last argument,
 * so both `logger.log('text')` and `logger.warn({ hostId, unit }, 'text')` keep their structure:
 * the context and the fields become JSON fields, the text the message.
 */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }

  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }

  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }

  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }

  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }

  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  private write(level: Level, message: unknown, params: unknown[]): void {
    const rest = [...params];
    const context = rest.length > 0 && typeof rest[rest.length - 1] === 'string' ? (rest.pop() as string) : undefined;
    if (isFields(message)) {
      this.logger[level]({ context, ...message }, typeof rest[0] === 'string' ? rest[0] : '');
    } else if (message instanceof Error) {
      this.logger[level]({ context, err: message }, message.message);
    } else {
      // Nest's own error(message, stack, context) form.
      const stack = typeof rest[0] === 'string' ? rest[0] : undefined;
      this.logger[level]({ context, ...(stack ? { stack } : {}) }, String(message));
    }
  }
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** syslog priorities: journald reads a leading "<N>" on each line as the line's priority. */
const PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

export type LogFields = Record<string, unknown>;

/** Where the lines go; specs collect them instead. */
export interface LogSink {
  out(line: string): void;
  err(line: string): void;
}

const STANDARD_STREAMS: LogSink = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

function plain(value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

/**
 * One line per event: the level, the message and its fields as JSON. Under systemd (JOURNAL_STREAM
 * set) each line starts with its syslog priority, so `journalctl -p warning` finds the warnings.
 */
export class Logger {
  private readonly prefixed = process.env.JOURNAL_STREAM !== undefined;

  constructor(
    public level: LogLevel = 'info',
    private readonly sink: LogSink = STANDARD_STREAMS,
  ) {}

  debug(message: string, fields: LogFields = {}): void {
    this.write('debug', message, fields);
  }

  info(message: string, fields: LogFields = {}): void {
    this.write('info', message, fields);
  }

  warn(message: string, fields: LogFields = {}): void {
    this.write('warn', message, fields);
  }

  error(message: string, fields: LogFields = {}): void {
    this.write('error', message, fields);
  }

  private write(level: LogLevel, message: string, fields: LogFields): void {
    if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(this.level)) return;
    const entries = Object.entries(fields).map(([key, value]) => [key, plain(value)]);
    const line = JSON.stringify({ level, msg: message, ...Object.fromEntries(entries) });
    const text = this.prefixed ? `<${PRIORITY[level]}>${line}` : line;
    if (level === 'warn' || level === 'error') this.sink.err(text);
    else this.sink.out(text);
  }
}

import { MAX_DIAGNOSTICS_CHARS } from '@drover/protocol';
import type { Host } from './host';
import { assertUnitName } from './unit-names';

/** A unit's status and journal as a failure leaves them, and its own first telling line. */
export interface Diagnostics {
  text: string;
  summary: string | null;
}

/**
 * Reads a unit's status and journal since `since` on a host, in one round trip; each read may be
 * refused (sudo) or fail without failing the other.
 */
export async function readDiagnostics(
  host: Host,
  unit: string,
  since: { hostClockUs: number } | { secondsAgo: number },
  timeoutMs: number,
): Promise<Diagnostics> {
  const { steps } = await host.runSequence([statusArgv(unit), journalSinceArgv(unit, since)], {
    timeoutMs,
    optional: [0, 1],
  });
  const [status, journal] = [steps[0]?.stdout ?? '', steps[1]?.stdout ?? ''];
  return { text: renderDiagnostics(status, journal), summary: firstUsefulLine(journal) };
}

/** The most journal lines a failure keeps: the unit's last words are what explain it. */
export const DIAGNOSTIC_JOURNAL_LINES = 50;

/** `systemctl status` of the unit: its state, main process, last log lines as systemd summarises them. */
export function statusArgv(unit: string): string[] {
  assertUnitName(unit);
  return ['systemctl', 'status', '--no-pager', '--full', '--lines=0', '--', unit];
}

/**
 * The unit's journal since the action began: `since` is the host's clock in microseconds (read
 * before acting) or, when none was read, how many seconds ago the action began.
 */
export function journalSinceArgv(unit: string, since: { hostClockUs: number } | { secondsAgo: number }): string[] {
  assertUnitName(unit);
  const from =
    'hostClockUs' in since
      ? `@${Math.floor(since.hostClockUs / 1_000_000)}`
      : `-${Math.max(1, Math.ceil(since.secondsAgo))}s`;
  return [
    'journalctl',
    '--no-pager',
    '--quiet',
    '--output=short-iso',
    `--lines=${DIAGNOSTIC_JOURNAL_LINES}`,
    `--since=${from}`,
    `--unit=${unit}`,
  ];
}

/** What a failure leaves to read: the status and journal as printed, bounded to their tail. */
export function renderDiagnostics(status: string, journal: string): string {
  const text = [
    '$ systemctl status',
    status.trimEnd() || '(nothing)',
    '$ journalctl (since the action began)',
    journal.trimEnd() || '(no lines)',
  ].join('\n');
  return text.length > MAX_DIAGNOSTICS_CHARS ? `…${text.slice(-(MAX_DIAGNOSTICS_CHARS - 1))}` : text;
}

/** A journal line as `--output=short-iso` prints it: time, host, identifier[pid]: message. */
const SHORT_ISO_LINE = /^\S+\s+\S+\s+([^\s[:]+)(?:\[\d+\])?:\s(.*)$/;
const TROUBLE =
  /\b(emerg|alert|crit(ical)?|err(or)?|fail(ed|ure)?|fatal|denied|invalid|cannot|can't|unable|not found|no such)\b/i;

/**
 * The first line that explains a failure, from the unit's own processes rather than systemd's
 * bookkeeping ("Failed with result 'exit-code'"): the first such line that sounds like trouble, else
 * the first such line at all; null when the unit said nothing.
 */
export function firstUsefulLine(journal: string): string | null {
  const own: string[] = [];
  for (const line of journal.split('\n')) {
    const match = SHORT_ISO_LINE.exec(line.trimEnd());
    if (!match) continue;
    const [, identifier, message] = match;
    if (identifier === 'systemd' || !message?.trim()) continue;
    own.push(message.trim());
  }
  const summary = own.find((message) => TROUBLE.test(message)) ?? own[0] ?? null;
  return summary === null ? null : summary.slice(0, 300);
}

import type { CommandResult } from './host';
import { assertUnitName } from './unit-names';
import type { UnitSnapshot } from '@drover/protocol';
import type { Verb } from '@drover/protocol';

/**
 * systemd's start limit: a unit may be started at most StartLimitBurst times within
 * StartLimitIntervalSec; the next start is refused (the unit ends failed, Result=start-limit-hit)
 * until the interval has passed or someone runs `systemctl reset-failed`. systemd counts in a
 * window that opens at a start and closes an interval later (its ratelimit), so counting the
 * starts of the last interval, sliding, is an upper bound: fewer than StartLimitBurst of those
 * means the next start is allowed.
 *
 * drover counts them in the host's journal, where PID 1 writes a message about each start, and
 * compares their times with the host's own clock, read in the same session (never drover's).
 * Checked on the fleet's systemd 252: every start attempt systemd lets through (by hand, by a
 * dependency, or its own Restart=) draws a new InvocationID and logs at least one of "Starting…"
 * (units that pass through activating: Type=notify, forking, ExecStartPre), "Started…" (Type=simple
 * logs only this) or "Failed to start…", each carrying that id; a start refused by the limit logs
 * "Start request repeated too quickly." and "Failed to start…" with the previous run's id; a start
 * skipped for an unmet condition logs "Started"'s message id without an InvocationID, and does not
 * count. Starting a unit that is already active and reloading it do not count either; a
 * daemon-reload or `systemctl reset-failed` resets systemd's count (drover's then over-counts,
 * which is safe).
 */

/** Message ids of PID 1's messages about a unit's start job (systemd's sd-messages.h). */
export const UNIT_STARTING_MESSAGE = '7d4958e842da4a758f6c1cdc7b36dcc5';
export const UNIT_STARTED_MESSAGE = '39f53479d3a045ac8e11786248231fbf';
export const UNIT_FAILED_MESSAGE = 'be02cf6855d2428ba40df7e9d022f03d';
/** "Start request repeated too quickly." has no message id; the function that logs it names it. */
const START_LIMIT_FUNCTION = 'unit_test_start_limit';

/** The newest journal entries read: up to ~66 starts, far beyond any usual burst. */
export const START_JOURNAL_LINES = 200;

/** Wait this much beyond the moment the count allows another start: the host acts a little later anyway. */
export const START_LIMIT_MARGIN_MS = 500;

/** Verbs that may start a unit, and so count towards its start limit. */
export const START_LIKE_VERBS: readonly Verb[] = ['start', 'restart', 'try-restart', 'reload-or-restart'];

/** The host's clock in microseconds since the epoch (GNU date): what the journal's times compare with. */
export const HOST_CLOCK_ARGV: readonly string[] = ['date', '+%s%6N'];

/**
 * How much further back than the start limit's interval a bounded journal read reaches: journalctl
 * reads its clock a moment after `date` did in the same session, and a start just inside the
 * window must not fall outside the read.
 */
export const START_JOURNAL_SINCE_MARGIN_S = 5;
/**
 * The longest interval a journal read is bounded to; beyond it the read is unbounded (journalctl
 * refuses a --since before 1970, and a window of months saves nothing).
 */
export const MAX_BOUNDED_INTERVAL_S = 30 * 24 * 3600;

/**
 * The unit's start messages and start-limit refusals from the host's journal, newest
 * START_JOURNAL_LINES, one JSON object a line with only the fields drover reads. Fixed words per
 * unit (no time in the argv), so a sudoers line can allow exactly this read.
 */
export function startJournalArgv(unit: string): string[] {
  return startJournalRead(unit, [`--lines=${START_JOURNAL_LINES}`]);
}

/** An interval as `systemctl show` gives StartLimitIntervalUSec, in whole seconds rounded up; null for 'infinity' or anything odd. */
function intervalSeconds(intervalUSec: string | null): number | null {
  if (intervalUSec === null || !/^\d{1,19}$/.test(intervalUSec)) return null;
  return Math.ceil(Number(intervalUSec) / 1e6);
}

/**
 * The bounded read for a unit whose StartLimitIntervalUSec (as read in this action) is
 * `intervalUSec`: every such message of the last interval plus START_JOURNAL_SINCE_MARGIN_S
 * (`--since=-Ns`), instead of the newest START_JOURNAL_LINES whatever their age (on a unit restarted
 * often, ~80 KB of JSON that journalctl formats and drover parses, each time). Without --lines: before
 * systemd 254, --since with --lines prints the oldest lines after the time, not the newest. Only for
 * hosts that run any command line (the time is no fixed word a sudoers line can name). null when the
 * interval gives no bound (infinity, longer than MAX_BOUNDED_INTERVAL_S, unreadable): read unbounded.
 */
export function boundedStartJournalArgv(unit: string, intervalUSec: string | null): string[] | null {
  const seconds = intervalSeconds(intervalUSec);
  if (seconds === null || seconds > MAX_BOUNDED_INTERVAL_S) return null;
  return startJournalRead(unit, [`--since=-${seconds + START_JOURNAL_SINCE_MARGIN_S}s`]);
}

/**
 * Whether a journal read bounded for `readFor` (the interval it was bounded by) holds every start
 * within `interval` (the interval judged now): not when the interval grew in between (a
 * daemon-reload between the two readings of the unit).
 */
export function boundedReadCovers(readFor: string, interval: string | null): boolean {
  const covered = intervalSeconds(readFor);
  const wanted = intervalSeconds(interval);
  return covered !== null && wanted !== null && wanted <= covered;
}

function startJournalRead(unit: string, bound: readonly string[]): string[] {
  assertUnitName(unit);
  return [
    'journalctl',
    '--no-pager',
    '--quiet',
    '--output=json',
    '--output-fields=MESSAGE_ID,INVOCATION_ID,CODE_FUNC',
    ...bound,
    '_PID=1',
    `UNIT=${unit}`,
    `MESSAGE_ID=${UNIT_STARTING_MESSAGE}`,
    `MESSAGE_ID=${UNIT_STARTED_MESSAGE}`,
    `MESSAGE_ID=${UNIT_FAILED_MESSAGE}`,
    '+',
    '_PID=1',
    `UNIT=${unit}`,
    `CODE_FUNC=${START_LIMIT_FUNCTION}`,
  ];
}

/** Whether acting with this verb on a unit in this state may start it (when unsure: yes). */
export function mayStart(verb: Verb, before: UnitSnapshot | null): boolean {
  if (!START_LIKE_VERBS.includes(verb)) return false;
  if (before === null || verb === 'restart') return true;
  // As systemd decides (checked on the fleet): a start of a unit already up starts nothing,
  // try-restart leaves a unit that is not running alone, and reload-or-restart reloads a unit
  // that is up and can reload. States in between count as starting: over-counting is safe.
  const up = ['active', 'reloading', 'refreshing'].includes(before.activeState);
  if (verb === 'start') return !up;
  if (verb === 'try-restart') return !['inactive', 'failed'].includes(before.activeState);
  return !(up && before.canReload);
}

export interface StartJournal {
  /** When each start systemd let through was first logged (µs since the epoch, host clock), oldest first. */
  starts: number[];
  /** When systemd refused a start because of the limit, oldest first. */
  refusals: number[];
  /** How many entries were read: START_JOURNAL_LINES means older ones may have been left out. */
  entries: number;
  /** The oldest entry read, or null when there were none. */
  oldest: number | null;
}

function microseconds(value: unknown, what: string): number {
  if (typeof value !== 'string' || !/^\d{1,16}$/.test(value)) {
    throw new Error(`${what} is ${JSON.stringify(value)}; expected microseconds since the epoch`);
  }
  return Number(value);
}

/** Reads the output of startJournalArgv. Throws on anything that is not journalctl's JSON lines. */
export function parseStartJournal(output: string): StartJournal {
  const firstSeen = new Map<string, number>();
  const refusals: number[] = [];
  let entries = 0;
  let oldest: number | null = null;
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`journalctl printed a line that is not JSON: ${line.slice(0, 80)}`);
    }
    if (entry === null || typeof entry !== 'object') throw new Error(`journalctl printed ${line.slice(0, 80)}`);
    const at = microseconds(entry.__REALTIME_TIMESTAMP, '__REALTIME_TIMESTAMP');
    entries += 1;
    oldest = oldest === null ? at : Math.min(oldest, at);
    if (entry.CODE_FUNC === START_LIMIT_FUNCTION) {
      refusals.push(at);
      continue;
    }
    // No InvocationID: a start skipped for an unmet condition (or refused before the unit ever
    // ran), which systemd's limit did not count. Several messages of one start share its id.
    const invocation = entry.INVOCATION_ID;
    if (typeof invocation !== 'string' || invocation === '') continue;
    const seen = firstSeen.get(invocation);
    if (seen === undefined || at < seen) firstSeen.set(invocation, at);
  }
  const ascending = (a: number, b: number) => a - b;
  return { starts: [...firstSeen.values()].sort(ascending), refusals: refusals.sort(ascending), entries, oldest };
}

/** The host clock's answer (`date +%s%6N`), in microseconds since the epoch. */
export function parseHostClock(output: string): number {
  return microseconds(output.trim(), 'the host clock');
}

/** "20s", "1.5s", "2min 30s", "1h 5min", "infinity": a StartLimitIntervalUSec for people. */
export function describeSpan(microsecondsText: string): string {
  if (microsecondsText === 'infinity') return 'infinity';
  const total = BigInt(microsecondsText);
  if (total < 60_000_000n) {
    const seconds = Number(total) / 1e6;
    return `${Number.isInteger(seconds) ? seconds : Number(seconds.toFixed(3))}s`;
  }
  const parts: string[] = [];
  let rest = total / 1_000_000n;
  for (const [suffix, size] of [
    ['d', 86_400n],
    ['h', 3_600n],
    ['min', 60n],
    ['s', 1n],
  ] as const) {
    if (rest >= size) parts.push(`${rest / size}${suffix}`);
    rest %= size;
  }
  return parts.join(' ');
}

/** "StartLimitBurst=3 within StartLimitIntervalSec=20s", or null when systemd did not say. */
export function describeStartLimit(snapshot: UnitSnapshot | null): string | null {
  // == null: absent from states recorded before drover read the limit.
  if (snapshot?.startLimitBurst == null || snapshot.startLimitIntervalUSec == null) return null;
  return `StartLimitBurst=${snapshot.startLimitBurst} within StartLimitIntervalSec=${describeSpan(snapshot.startLimitIntervalUSec)}`;
}

/** What one read of the journal and the clock gave, as the unit action hands it over. */
export type StepOutput = CommandResult;

export type StartLimitVerdict =
  /** Go ahead; `note` (when not null) belongs in the task's reason. */
  | { action: 'act'; note: string | null; hostClock: number | null }
  /** The unit's state cannot rule out starts within the interval: read the journal, then judge again. */
  | { action: 'count' }
  /** Another start now could be refused: wait this long and look again. */
  | { action: 'wait'; waitMs: number; reason: string }
  /** Staying within the limit needs a longer wait than the task may take. */
  | { action: 'fail'; reason: string };

export interface StartLimitInput {
  verb: Verb;
  unit: string;
  /** The unit as read in the same session, just before. */
  before: UnitSnapshot | null;
  clock: StepOutput | undefined;
  /** Not read yet: judged from the unit's state when that suffices, else the verdict is 'count'. */
  journal: StepOutput | undefined;
  /** How long this task waited for the limit already, and the most it may wait in all. */
  waitedMs: number;
  budgetMs: number;
}

function firstLine(step: StepOutput): string {
  const line = (step.stderr.trim() || step.stdout.trim()).split('\n')[0]!.slice(0, 200) || 'no output';
  // A sudoers drop-in generated before drover counted starts does not allow these reads.
  return line.startsWith('sudo:') ? `${line} (regenerate the host's sudoers drop-in: POST /v1/access/sudoers)` : line;
}

/**
 * systemd's timestamp as `systemctl show` prints it in UTC ("Fri 2026-12-04 06:34:15 UTC", whole
 * seconds, or with microseconds where configured) in µs since the epoch; null for any other zone,
 * whose offset the text does not give.
 */
export function parseUtcTimestamp(text: string | null): number | null {
  const match = /(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))? (?:UTC|GMT)$/.exec(text ?? '');
  if (!match) return null;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  return ms * 1000 + Number((match[7] ?? '').padEnd(6, '0'));
}

/**
 * Whether the unit's state alone shows that it was last started before `windowStart` (µs, host
 * clock), so that no start falls inside the limit's interval and the journal need not be read: it
 * is active, and entered that state before the window (a later start attempt would have left it
 * inactive, failed, or active since then; starting an active unit and reloading it do not count).
 * The timestamp is cut to whole seconds, so a second's margin and START_LIMIT_MARGIN_MS are added.
 */
export function startedBefore(before: UnitSnapshot | null, windowStart: number): boolean {
  if (before?.activeState !== 'active') return false;
  const entered = parseUtcTimestamp(before.activeEnterTimestamp);
  return entered !== null && entered + 1_000_000 + START_LIMIT_MARGIN_MS * 1000 <= windowStart;
}

/**
 * Whether acting now stays within the unit's start limit. Never blocks for ever: when the starts
 * cannot be counted drover acts anyway and says so; when staying within the limit needs more than
 * the task's budget, the task fails saying what to do.
 */
export function judgeStartLimit(input: StartLimitInput): StartLimitVerdict {
  const { verb, unit, before, clock, journal } = input;
  const limit = describeStartLimit(before);
  const waited =
    input.waitedMs > 0 ? `waited ${(input.waitedMs / 1000).toFixed(1)}s for systemd's start limit (${limit})` : null;
  const act = (note: string | null, hostClock: number | null = null): StartLimitVerdict => ({
    action: 'act',
    note: [waited, note].filter((part) => part !== null).join('; ') || null,
    hostClock,
  });
  if (!mayStart(verb, before)) return act(null);
  const burst = before?.startLimitBurst ?? null;
  const interval = before?.startLimitIntervalUSec ?? null;
  // systemd applies no limit when either is 0 (ratelimit_configured).
  if (burst === 0 || interval === '0') return act(null);
  const uncounted = (why: string) =>
    act(
      `${unit}'s recent starts could not be counted (${why}), so systemd's start limit was not checked before acting`,
    );
  if (burst === null || interval === null || limit === null) return uncounted('systemctl show reports no start limit');
  if (!clock) return uncounted('the host clock was not read');
  if (clock.exitCode !== 0) return uncounted(`date exited ${clock.exitCode}: ${firstLine(clock)}`);
  let now: number;
  try {
    now = parseHostClock(clock.stdout);
  } catch (error) {
    return uncounted((error as Error).message);
  }
  const infinite = interval === 'infinity';
  const intervalUs = infinite ? Number.POSITIVE_INFINITY : Number(interval);
  const windowStart = now - intervalUs;
  if (!journal) return startedBefore(before, windowStart) ? act(null, now) : { action: 'count' };
  if (journal.exitCode !== 0) return uncounted(`journalctl exited ${journal.exitCode}: ${firstLine(journal)}`);
  let read: StartJournal;
  try {
    read = parseStartJournal(journal.stdout);
  } catch (error) {
    return uncounted((error as Error).message);
  }
  const recent = read.starts.filter((at) => at >= windowStart);
  if (recent.length < burst) {
    // Every entry read lies within the interval and there may be more: the count is a floor only.
    if (read.entries >= START_JOURNAL_LINES && read.oldest !== null && read.oldest >= windowStart) {
      return uncounted(
        `more than ${START_JOURNAL_LINES} journal entries about its starts within ${describeSpan(interval)}`,
      );
    }
    return act(null, now);
  }

  const counted = `${unit} started ${recent.length} time(s) in the last ${describeSpan(interval)}, and systemd allows ${limit}`;
  const reset = `run \`systemctl reset-failed ${unit}\` on the host to reset systemd's count`;
  if (infinite) {
    return {
      action: 'fail',
      reason: `not acted: ${counted}, which never resets by itself: another start would be refused; ${reset}`,
    };
  }
  // The start that must leave the window before another fits: the burst-th newest.
  const leaving = recent[recent.length - burst]!;
  const waitMs = Math.max(0, Math.ceil((leaving + intervalUs - now) / 1000)) + START_LIMIT_MARGIN_MS;
  if (input.waitedMs + waitMs > input.budgetMs) {
    return {
      action: 'fail',
      reason:
        `not acted: ${counted}; staying within it needs another ${(waitMs / 1000).toFixed(1)}s, more than this task ` +
        `may wait (its timeout, ${(input.budgetMs / 1000).toFixed(1)}s${input.waitedMs > 0 ? `, ${(input.waitedMs / 1000).toFixed(1)}s of it spent waiting` : ''}). ` +
        `Act again once the oldest of those starts is ${describeSpan(interval)} old, or ${reset}`,
    };
  }
  return {
    action: 'wait',
    waitMs,
    reason: `systemd's start limit: ${counted}; waiting ${(waitMs / 1000).toFixed(1)}s so that this ${verb} is not refused`,
  };
}

/**
 * Why systemd refused the verb's start, when it was its start limit: systemctl says so, the unit's
 * Result says so, or the journal shows a refusal since `since` (the host clock before acting). With
 * Restart= or a failed start before, systemd 252 keeps the earlier Result (e.g. exit-code) and
 * systemctl names that one, so the journal is the only witness then.
 */
export function startLimitRefusal(input: {
  unit: string;
  before: UnitSnapshot | null;
  after: UnitSnapshot | null;
  stderr: string;
  journal?: StartJournal | null;
  since?: number | null;
}): string | null {
  const { unit, journal, since } = input;
  const refused =
    input.after?.result === 'start-limit-hit' ||
    /start of the service was attempted too often|Start request repeated too quickly/.test(input.stderr) ||
    (journal != null && since != null && journal.refusals.some((at) => at >= since));
  if (!refused) return null;
  const limit = describeStartLimit(input.after) ?? describeStartLimit(input.before);
  const interval = (input.after ?? input.before)?.startLimitIntervalUSec;
  const wait =
    interval && interval !== 'infinity'
      ? `wait until ${describeSpan(interval)} have passed since the earliest of those starts`
      : 'wait';
  return (
    `systemd refused to start ${unit}: its start limit was hit (more starts than ${limit ?? 'its StartLimitBurst within StartLimitIntervalSec'}), ` +
    `and the unit stays down until started again. To start it: ${wait}, or run \`systemctl reset-failed ${unit}\`, then start it again`
  );
}

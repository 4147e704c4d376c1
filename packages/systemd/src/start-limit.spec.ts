import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  CLOCK_AFTER,
  CLOCK_BEFORE,
  NOTIFY_STARTS_THEN_REFUSED,
  SIMPLE_SKIPPED_STARTS_THEN_REFUSED,
} from './fixtures/journal-starts';
import {
  boundedReadCovers,
  boundedStartJournalArgv,
  describeSpan,
  describeStartLimit,
  HOST_CLOCK_ARGV,
  judgeStartLimit,
  MAX_BOUNDED_INTERVAL_S,
  mayStart,
  parseStartJournal,
  parseUtcTimestamp,
  START_JOURNAL_LINES,
  START_LIKE_VERBS,
  START_JOURNAL_SINCE_MARGIN_S,
  START_LIMIT_MARGIN_MS,
  startJournalArgv,
  StartLimitInput,
  startLimitRefusal,
} from './start-limit';
import type { UnitSnapshot } from '@drover/protocol';
import { VERBS } from '@drover/protocol';

const UNIT = 'slx-fix.service';
const SECOND = 1_000_000;

function snapshot(overrides: Partial<UnitSnapshot> = {}): UnitSnapshot {
  return {
    id: UNIT,
    loadState: 'loaded',
    activeState: 'active',
    subState: 'running',
    mainPid: 100,
    nRestarts: 0,
    unitFileState: 'static',
    needDaemonReload: false,
    activeEnterTimestamp: null,
    activeEnterTimestampMonotonic: '0',
    invocationId: 'a',
    canReload: false,
    canStart: true,
    canStop: true,
    result: 'success',
    description: null,
    startLimitBurst: 3,
    startLimitIntervalUSec: String(20 * SECOND),
    ...overrides,
  };
}

/** journalctl's output for starts logged at these times (µs), one "Started" line each. */
function journalOf(starts: readonly number[], refusals: readonly number[] = []): string {
  const lines = starts.map((at, index) =>
    JSON.stringify({
      MESSAGE_ID: '39f53479d3a045ac8e11786248231fbf',
      INVOCATION_ID: `run${index}`,
      __REALTIME_TIMESTAMP: String(at),
    }),
  );
  for (const at of refusals)
    lines.push(JSON.stringify({ CODE_FUNC: 'unit_test_start_limit', __REALTIME_TIMESTAMP: String(at) }));
  return lines.map((line) => `${line}\n`).join('');
}

function input(now: number, journal: string, overrides: Partial<StartLimitInput> = {}): StartLimitInput {
  return {
    verb: 'restart',
    unit: UNIT,
    before: snapshot(),
    clock: { exitCode: 0, stdout: `${now}\n`, stderr: '' },
    journal: { exitCode: 0, stdout: journal, stderr: '' },
    waitedMs: 0,
    budgetMs: 120_000,
    ...overrides,
  };
}

describe('startJournalArgv', () => {
  it('reads only PID 1’s start messages and refusals about the unit, in fixed words a sudoers line can name', () => {
    const argv = startJournalArgv(UNIT);
    assert.equal(argv[0], 'journalctl');
    assert.deepEqual(
      argv.filter((word) => word.startsWith('UNIT=')),
      [`UNIT=${UNIT}`, `UNIT=${UNIT}`],
    );
    assert.ok(argv.includes(`--lines=${START_JOURNAL_LINES}`));
    // sudoers joins arguments with spaces: none may contain a blank, and none may carry a time.
    for (const word of [...argv, ...HOST_CLOCK_ARGV]) assert.match(word, /^[\x21-\x7e]+$/);
    assert.deepEqual(startJournalArgv(UNIT), argv, 'the same words every time');
  });

  it('refuses anything that is not a unit name', () => {
    for (const name of ['nginx.service --vacuum-time=1s', '-x.service', 'a b.service', '']) {
      assert.throws(() => startJournalArgv(name), /refusing unit name/, name);
      assert.throws(() => boundedStartJournalArgv(name, String(10 * SECOND)), /refusing unit name/, name);
    }
  });
});

describe('boundedStartJournalArgv', () => {
  it('is the fixed read with the interval and a margin as its window instead of the newest lines', () => {
    const bounded = boundedStartJournalArgv(UNIT, String(10 * SECOND + 1))!;
    const since = `--since=-${11 + START_JOURNAL_SINCE_MARGIN_S}s`;
    // No --lines: before systemd 254, --since with --lines prints the oldest lines after the time.
    assert.deepEqual(
      bounded.filter((word) => word !== since),
      startJournalArgv(UNIT).filter((word) => word !== `--lines=${START_JOURNAL_LINES}`),
    );
    // An option, before the first match (journalctl reads the words after it as matches).
    assert.ok(bounded.indexOf(since) < bounded.indexOf(`UNIT=${UNIT}`));
    assert.ok(boundedStartJournalArgv(UNIT, '0')!.includes(`--since=-${START_JOURNAL_SINCE_MARGIN_S}s`));
    assert.ok(boundedStartJournalArgv(UNIT, String(MAX_BOUNDED_INTERVAL_S * SECOND)));
  });

  it('gives no bound for infinity, an interval beyond MAX_BOUNDED_INTERVAL_S, or anything odd', () => {
    for (const interval of [
      'infinity',
      null,
      '',
      '-5',
      '1e9',
      '10s',
      '9'.repeat(30),
      String((MAX_BOUNDED_INTERVAL_S + 1) * SECOND),
    ]) {
      assert.equal(boundedStartJournalArgv(UNIT, interval), null, String(interval));
    }
  });
});

describe('boundedReadCovers', () => {
  it('holds when the interval judged is no longer than the one the read was bounded by', () => {
    assert.equal(boundedReadCovers(String(20 * SECOND), String(20 * SECOND)), true);
    assert.equal(boundedReadCovers(String(20 * SECOND), String(10 * SECOND)), true);
    assert.equal(boundedReadCovers(String(10 * SECOND), String(300 * SECOND)), false);
    assert.equal(boundedReadCovers(String(10 * SECOND), 'infinity'), false);
    assert.equal(boundedReadCovers(String(10 * SECOND), null), false);
  });
});

describe('parseStartJournal', () => {
  it('counts one start per InvocationID, at its first message (Type=notify: "Starting" and "Started")', () => {
    const read = parseStartJournal(NOTIFY_STARTS_THEN_REFUSED);
    assert.equal(read.starts.length, 3, 'a start and two restarts; the refused one is no start');
    assert.deepEqual(read.starts, [1796160024583562, 1796160024706333, 1796160024851990]);
    assert.deepEqual(read.refusals, [1796160024944289]);
    assert.equal(read.entries, 8);
    assert.ok(read.starts.every((at) => at > CLOCK_BEFORE && at < CLOCK_AFTER));
  });

  it('leaves out a start skipped for an unmet condition, which systemd does not count (Type=simple)', () => {
    const read = parseStartJournal(SIMPLE_SKIPPED_STARTS_THEN_REFUSED);
    assert.deepEqual(read.starts, [1796160025139601, 1796160025193837, 1796160025274840]);
    assert.deepEqual(read.refusals, [1796160025346325]);
    assert.equal(read.oldest, 1796160025039456, 'the skipped start is still the oldest entry read');
  });

  it('reads nothing from no output, and refuses what is not journalctl’s JSON', () => {
    assert.deepEqual(parseStartJournal(''), { starts: [], refusals: [], entries: 0, oldest: null });
    assert.throws(() => parseStartJournal('-- No entries --\n'), /not JSON/);
    assert.throws(() => parseStartJournal('{"__REALTIME_TIMESTAMP":"soon"}\n'), /__REALTIME_TIMESTAMP/);
  });
});

describe('mayStart', () => {
  it('is false for verbs that never start a unit', () => {
    for (const verb of VERBS.filter((verb) => !START_LIKE_VERBS.includes(verb))) {
      assert.equal(mayStart(verb, snapshot({ activeState: 'inactive' })), false, verb);
    }
  });

  it('follows systemd: start of a unit up, try-restart of one down and reload-or-restart that reloads start nothing', () => {
    const up = snapshot({ activeState: 'active' });
    const down = snapshot({ activeState: 'failed' });
    assert.equal(mayStart('restart', up), true);
    assert.equal(mayStart('start', up), false);
    assert.equal(mayStart('start', down), true);
    assert.equal(mayStart('try-restart', up), true);
    assert.equal(mayStart('try-restart', down), false);
    assert.equal(mayStart('reload-or-restart', { ...up, canReload: true }), false);
    assert.equal(mayStart('reload-or-restart', up), true, 'cannot reload: it restarts');
    assert.equal(mayStart('reload-or-restart', { ...down, canReload: true }), true);
    // Not knowing the state, assume a start: waiting without need is safe, tripping the limit is not.
    assert.equal(mayStart('start', null), true);
    assert.equal(mayStart('start', snapshot({ activeState: 'activating' })), true);
  });
});

describe('judgeStartLimit', () => {
  const now = 1_800_000_000_000_000;

  it('acts when fewer than StartLimitBurst starts fall within the interval, and keeps the host clock', () => {
    const verdict = judgeStartLimit(input(now, journalOf([now - 25 * SECOND, now - 10 * SECOND, now - 5 * SECOND])));
    assert.deepEqual(verdict, { action: 'act', note: null, hostClock: now });
  });

  it('waits until the burst-th newest start is an interval old, plus a margin, saying why', () => {
    const starts = [now - 30 * SECOND, now - 12 * SECOND, now - 8 * SECOND, now - 2 * SECOND];
    const verdict = judgeStartLimit(input(now, journalOf(starts)));
    assert.equal(verdict.action, 'wait');
    assert.ok(verdict.action === 'wait');
    // The start 12 s ago leaves the 20 s interval in 8 s.
    assert.equal(verdict.waitMs, 8_000 + START_LIMIT_MARGIN_MS);
    assert.match(verdict.reason, /slx-fix\.service started 3 time\(s\) in the last 20s/);
    assert.match(verdict.reason, /StartLimitBurst=3 within StartLimitIntervalSec=20s/);
    assert.match(verdict.reason, /waiting 8\.5s so that this restart is not refused/);

    const later = now + verdict.waitMs * 1000;
    assert.equal(judgeStartLimit(input(later, journalOf(starts), { waitedMs: verdict.waitMs })).action, 'act');
  });

  it('says in the task’s reason that it waited', () => {
    const verdict = judgeStartLimit(input(now, journalOf([now - 30 * SECOND]), { waitedMs: 8_500 }));
    assert.ok(verdict.action === 'act');
    assert.equal(
      verdict.note,
      "waited 8.5s for systemd's start limit (StartLimitBurst=3 within StartLimitIntervalSec=20s)",
    );
  });

  it('fails, saying what to do, when staying within the limit takes longer than the task may wait', () => {
    const hour = snapshot({ startLimitIntervalUSec: String(3600 * SECOND) });
    const starts = [now - 60 * SECOND, now - 50 * SECOND, now - 40 * SECOND];
    const verdict = judgeStartLimit(input(now, journalOf(starts), { before: hour, budgetMs: 60_000 }));
    assert.equal(verdict.action, 'fail');
    assert.ok(verdict.action === 'fail');
    assert.match(verdict.reason, /^not acted: slx-fix\.service started 3 time\(s\) in the last 1h/);
    assert.match(verdict.reason, /StartLimitBurst=3 within StartLimitIntervalSec=1h/);
    assert.match(verdict.reason, /needs another 3540\.5s, more than this task may wait \(its timeout, 60\.0s\)/);
    assert.match(verdict.reason, /systemctl reset-failed slx-fix\.service/);
    // What it already waited counts against the same budget.
    const starts20 = [now - 19 * SECOND, now - 18 * SECOND, now - 1 * SECOND];
    const spent = judgeStartLimit(input(now, journalOf(starts20), { waitedMs: 59_000, budgetMs: 60_000 }));
    assert.equal(spent.action, 'fail');
  });

  it('fails at once for an interval of infinity, which never lets the count go down', () => {
    const never = snapshot({ startLimitIntervalUSec: 'infinity' });
    const starts = [now - 3600 * SECOND, now - 1800 * SECOND, now - 60 * SECOND];
    const verdict = judgeStartLimit(input(now, journalOf(starts), { before: never }));
    assert.ok(verdict.action === 'fail');
    assert.match(verdict.reason, /never resets by itself.*systemctl reset-failed slx-fix\.service/);
    assert.equal(judgeStartLimit(input(now, journalOf(starts.slice(1)), { before: never })).action, 'act');
  });

  it('does not count for a verb that starts nothing, or a unit without a limit', () => {
    const full = journalOf([now - 3 * SECOND, now - 2 * SECOND, now - SECOND]);
    assert.equal(judgeStartLimit(input(now, full, { verb: 'stop' })).action, 'act');
    assert.equal(judgeStartLimit(input(now, full, { verb: 'start' })).action, 'act', 'the unit is up');
    assert.equal(judgeStartLimit(input(now, full, { before: snapshot({ startLimitBurst: 0 }) })).action, 'act');
    assert.equal(
      judgeStartLimit(input(now, full, { before: snapshot({ startLimitIntervalUSec: '0' }) })).action,
      'act',
    );
  });

  it('acts anyway when the starts cannot be counted, and says so in the reason', () => {
    const noted = (overrides: Partial<StartLimitInput>, journal = '') => {
      const verdict = judgeStartLimit(input(now, journal, overrides));
      assert.ok(verdict.action === 'act');
      assert.match(
        verdict.note ?? '',
        /^slx-fix\.service's recent starts could not be counted \(.+\), so systemd's start limit was not checked/,
      );
      return verdict.note!;
    };
    const refused = { exitCode: 1, stdout: '', stderr: 'sudo: a password is required\n' };
    assert.match(
      noted({ journal: refused }),
      /journalctl exited 1: sudo: a password is required \(regenerate the host's sudoers drop-in/,
    );
    assert.match(noted({ clock: { exitCode: 0, stdout: 'Mon Dec  1\n', stderr: '' } }), /the host clock is/);
    assert.match(noted({ clock: undefined, journal: undefined }), /the host clock was not read/);
    assert.match(noted({ before: snapshot({ startLimitBurst: null }) }), /reports no start limit/);
    assert.match(noted({}, 'No journal files were found.\n'), /not JSON/);
    // A read cut at START_JOURNAL_LINES, all within the interval, with fewer starts than the burst.
    const busy = snapshot({ startLimitBurst: 100 });
    const lines = Array.from({ length: START_JOURNAL_LINES }, (_, index) =>
      JSON.stringify({ MESSAGE_ID: 'x', INVOCATION_ID: `run${index % 50}`, __REALTIME_TIMESTAMP: String(now - index) }),
    ).join('\n');
    assert.match(noted({ before: busy }, lines), /more than 200 journal entries/);
  });

  it('judges without the journal only when the unit is active since before the interval, else asks for it', () => {
    const now = Date.UTC(2026, 11, 4, 6, 34, 15) * 1000 + 250_000;
    const since = (secondsAgo: number, zone = 'UTC') => {
      const text = new Date((now - secondsAgo * SECOND) / 1000).toISOString().replace('T', ' ').slice(0, 19);
      return `Fri ${text} ${zone}`;
    };
    const unread = (before: UnitSnapshot, verb: StartLimitInput['verb'] = 'restart') =>
      judgeStartLimit(input(now, '', { before, verb, journal: undefined }));
    // Interval 20 s: entered 22 s ago is older than the interval with the second cut off and the margin.
    assert.deepEqual(unread(snapshot({ activeEnterTimestamp: since(22) })), {
      action: 'act',
      note: null,
      hostClock: now,
    });
    assert.deepEqual(unread(snapshot({ activeEnterTimestamp: since(21) })), { action: 'count' });
    assert.deepEqual(unread(snapshot({ activeEnterTimestamp: since(5) })), { action: 'count' });
    // Down, failed or starting: a start attempt may lie within the interval whatever the timestamp.
    for (const activeState of ['inactive', 'failed', 'activating', 'reloading']) {
      assert.deepEqual(unread(snapshot({ activeState, activeEnterTimestamp: since(3600) })), { action: 'count' });
    }
    // A zone whose offset the text does not give, no timestamp, or an interval that never ends.
    assert.deepEqual(unread(snapshot({ activeEnterTimestamp: since(3600, 'CET') })), { action: 'count' });
    assert.deepEqual(unread(snapshot({ activeEnterTimestamp: null })), { action: 'count' });
    const forever = snapshot({ activeEnterTimestamp: since(3600), startLimitIntervalUSec: 'infinity' });
    assert.deepEqual(unread(forever), { action: 'count' });
    // A verb that starts nothing here needs neither the journal nor the unit's age.
    assert.deepEqual(unread(snapshot({ activeEnterTimestamp: since(1) }), 'start'), {
      action: 'act',
      note: null,
      hostClock: null,
    });
  });

  it('never lets through a start systemd would refuse (its ratelimit, simulated), and never waits for nothing', () => {
    // systemd's ratelimit_below(): a window opens at a start and resets once a start comes more
    // than the interval after it; within a window at most `burst` starts pass.
    const simulate = (attempts: readonly number[], burst: number, interval: number) => {
      let begin = -1;
      let count = 0;
      return attempts.map((at) => {
        if (begin < 0 || at - begin > interval) {
          begin = at;
          count = 0;
        }
        if (count < burst) {
          count += 1;
          return true;
        }
        count += 1;
        return false;
      });
    };
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 30 }).map((seconds) => seconds * SECOND),
        fc.array(fc.integer({ min: 0, max: 90 * SECOND }), { maxLength: 25 }),
        fc.array(fc.integer({ min: 0, max: 2_000 }), { minLength: 25, maxLength: 25 }),
        fc.integer({ min: 0, max: 40 * SECOND }),
        (burst, interval, offsets, logDelays, after) => {
          const base = 1_800_000_000_000_000;
          const attempts = [...offsets].sort((a, b) => a - b).map((offset) => base + offset);
          const passed = simulate(attempts, burst, interval);
          // The journal logs a start that passed a little after systemd checked it (never before).
          const logged = attempts.filter((_, index) => passed[index]).map((at, index) => at + logDelays[index]!);
          const last = attempts.at(-1) ?? base;
          const now = last + logDelays[24]! + after;
          const before = snapshot({ startLimitBurst: burst, startLimitIntervalUSec: String(interval) });
          const verdict = judgeStartLimit(input(now, journalOf(logged), { before }));
          if (verdict.action === 'act') {
            assert.equal(simulate([...attempts, now], burst, interval).at(-1), true, 'systemd lets this start through');
          } else {
            assert.equal(verdict.action, 'wait');
            // After the wait (nothing else started meanwhile) it acts, and systemd agrees.
            const then = now + verdict.waitMs * 1000;
            const again = judgeStartLimit(input(then, journalOf(logged), { before, waitedMs: verdict.waitMs }));
            assert.equal(again.action, 'act');
            assert.equal(simulate([...attempts, then], burst, interval).at(-1), true);
            assert.ok(verdict.waitMs <= interval / 1000 + START_LIMIT_MARGIN_MS + 2, 'never longer than an interval');
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

describe('startLimitRefusal', () => {
  it('reports a refusal systemctl or Result= names, with the burst, the interval and what to do', () => {
    const after = snapshot({ activeState: 'failed', subState: 'failed', result: 'start-limit-hit', mainPid: null });
    const reason = startLimitRefusal({ unit: UNIT, before: snapshot(), after, stderr: '' });
    assert.equal(
      reason,
      'systemd refused to start slx-fix.service: its start limit was hit (more starts than StartLimitBurst=3 within ' +
        'StartLimitIntervalSec=20s), and the unit stays down until started again. To start it: wait until 20s have ' +
        'passed since the earliest of those starts, or run `systemctl reset-failed slx-fix.service`, then start it again',
    );
    // systemctl's own words (systemd 252) when the unit's Result is start-limit-hit.
    const stderr =
      'Job for slx-fix.service failed because start of the service was attempted too often.\nSee "systemctl status slx-fix.service"';
    assert.equal(startLimitRefusal({ unit: UNIT, before: snapshot(), after: null, stderr }), reason);
  });

  it('finds a refusal the unit’s Result hides (an earlier failure kept) in the journal, since acting only', () => {
    const after = snapshot({ activeState: 'failed', subState: 'failed', result: 'exit-code', mainPid: null });
    const journal = parseStartJournal(NOTIFY_STARTS_THEN_REFUSED);
    const plain = {
      unit: UNIT,
      before: snapshot(),
      after,
      stderr: 'Job for slx-fix.service failed because the control process exited with error code.',
    };
    assert.equal(startLimitRefusal(plain), null);
    assert.match(
      startLimitRefusal({ ...plain, journal, since: CLOCK_BEFORE })!,
      /^systemd refused to start slx-fix\.service: its start limit was hit/,
    );
    assert.equal(
      startLimitRefusal({ ...plain, journal, since: CLOCK_AFTER }),
      null,
      'a refusal before this start is not its',
    );
  });
});

describe('parseUtcTimestamp', () => {
  it('reads systemd’s timestamps in UTC, with or without microseconds, and nothing in another zone', () => {
    const at = Date.UTC(2026, 11, 4, 6, 34, 15) * 1000;
    assert.equal(parseUtcTimestamp('Fri 2026-12-04 06:34:15 UTC'), at);
    assert.equal(parseUtcTimestamp('Fri 2026-12-04 06:34:15.000042 UTC'), at + 42);
    assert.equal(parseUtcTimestamp('Fr 2026-12-04 06:34:15 GMT'), at);
    assert.equal(parseUtcTimestamp('Fri 2026-12-04 07:34:15 CET'), null);
    assert.equal(parseUtcTimestamp(''), null);
    assert.equal(parseUtcTimestamp(null), null);
  });
});

describe('describeSpan and describeStartLimit', () => {
  it('writes intervals as people read them', () => {
    assert.equal(describeSpan('20000000'), '20s');
    assert.equal(describeSpan('1500000'), '1.5s');
    assert.equal(describeSpan('90000000'), '1min 30s');
    assert.equal(describeSpan('3600000000'), '1h');
    assert.equal(describeSpan('93784000000'), '1d 2h 3min 4s');
    assert.equal(describeSpan('infinity'), 'infinity');
    assert.equal(describeStartLimit(snapshot({ startLimitBurst: null })), null);
    assert.equal(describeStartLimit(null), null);
  });
});

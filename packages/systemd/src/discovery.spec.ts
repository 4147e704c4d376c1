import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DiscoveredUnit,
  LIST_UNIT_FILES_ARGV,
  LIST_UNITS_ARGV,
  ListedState,
  MAX_NAMED_UNITS,
  NOT_LOADED,
  parseDiscovery,
  unitsToListAgain,
} from './discovery';

// Rows of `systemctl list-units --all --plain --no-legend --no-pager --full` and
// `systemctl list-unit-files --plain --no-legend --no-pager --full` captured on a fleet host
// (Debian 12, systemd 252.39) while drover-stopslow.service had a pending stop job: that adds the
// JOB column between SUB and DESCRIPTION. Rows are an excerpt, with the column widths of the full
// listing kept.
const LIST_UNITS = `proc-sys-fs-binfmt_misc.automount                                 loaded    inactive     dead              Arbitrary Executable File Formats File System Automount Point
-.mount                                                           loaded    active       mounted           Root Mount
home.mount                                                        not-found inactive     dead              home.mount
run-credentials-systemd\\x2dsysctl.service.mount                   loaded    active       mounted           /run/credentials/systemd-sysctl.service
init.scope                                                        loaded    active       running           System and Service Manager
auditd.service                                                    not-found inactive     dead              auditd.service
console-getty.service                                             masked    inactive     dead              console-getty.service
drover-fail.service                                               loaded    failed       failed            /bin/false
drover-loop.service                                               loaded    activating   auto-restart      /bin/false
drover-probe.service                                              loaded    active       running           drover test probe (records its starts and reloads)
drover-stopslow.service                                           loaded    deactivating stop-sigterm stop /bin/sleep 100
getty-static.service                                              loaded    inactive     dead              getty on tty2-tty6 if dbus and logind are not available
getty@tty1.service                                                masked    inactive     dead              getty@tty1.service
nginx.service                                                     loaded    active       running           A high performance web server and a reverse proxy server
ssh.service                                                       loaded    active       running           OpenBSD Secure Shell server
systemd-journald.service                                          loaded    active       running           Journal Service
systemd-remount-fs.service                                        loaded    active       exited            Remount Root and Kernel File Systems
systemd-tmpfiles-clean.service                                    loaded    inactive     dead              Cleanup of Temporary Directories
-.slice                                                           loaded    active       active            Root Slice
getty.target                                                      loaded    active       active            Login Prompts
apt-daily.timer                                                   masked    inactive     dead              apt-daily.timer
`;

const LIST_UNITS_NO_JOBS = `home.mount                                                        not-found inactive dead      home.mount
drover-probe.service                                              loaded    active   running   drover test probe (records its starts and reloads)
getty@tty1.service                                                masked    inactive dead      getty@tty1.service
nginx.service                                                     loaded    active   running   A high performance web server and a reverse proxy server
ssh.service                                                       loaded    active   running   OpenBSD Secure Shell server
`;

const LIST_UNIT_FILES = `proc-sys-fs-binfmt_misc.mount          disabled        disabled
autovt@.service                        alias           -
console-getty.service                  masked          disabled
cryptdisks.service                     masked          enabled
dbus-org.freedesktop.hostname1.service alias           -
debug-shell.service                    disabled        disabled
drover-fail.service                    transient       -
drover-loop.service                    transient       -
drover-probe.service                   enabled         enabled
drover-stopslow.service                transient       -
getty-static.service                   static          -
getty@.service                         enabled         enabled
getty@tty1.service                     masked          enabled
nginx.service                          enabled         enabled
ssh.service                            enabled         enabled
sshd.service                           alias           -
systemd-journald.service               static          -
systemd-remount-fs.service             enabled-runtime enabled
systemd-tmpfiles-clean.service         static          -
user-runtime-dir@.service              static          -
ssh.socket                             disabled        enabled
getty.target                           static          -
apt-daily.timer                        masked          enabled
`;

// The same command restricted to drover* units, two of them with pending jobs.
const LIST_UNITS_TWO_JOBS = `drover-fail.service     loaded failed       failed             /bin/false
drover-loop.service     loaded activating   auto-restart       /bin/false
drover-probe.service    loaded active       running            drover test probe (records its starts and reloads)
drover-slow.service     loaded activating   start        start /bin/sleep 20
drover-stopslow.service loaded deactivating stop-sigterm stop  /bin/sleep 100
`;

function unit(
  name: string,
  loadState: string,
  activeState: string,
  subState: string,
  description: string | null,
  unitFileState: string | null,
): DiscoveredUnit {
  return { name, loadState, activeState, subState, description, unitFileState };
}

/** Lays out rows as systemd's tables do: every column but the last padded to its widest cell, one space apart. */
function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join(' ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

describe('discovery commands', () => {
  it('list every loaded unit and every unit file as plain text without legend, pager or truncation', () => {
    assert.deepEqual(LIST_UNITS_ARGV, [
      'systemctl',
      'list-units',
      '--all',
      '--plain',
      '--no-legend',
      '--no-pager',
      '--full',
    ]);
    assert.deepEqual(LIST_UNIT_FILES_ARGV, [
      'systemctl',
      'list-unit-files',
      '--plain',
      '--no-legend',
      '--no-pager',
      '--full',
    ]);
  });
});

describe('parseDiscovery', () => {
  it('merges the real listings: states from list-units, enablement from list-unit-files, sorted by name', () => {
    assert.deepEqual(parseDiscovery(LIST_UNITS, LIST_UNIT_FILES), [
      unit('apt-daily.timer', 'masked', 'inactive', 'dead', null, 'masked'),
      unit('auditd.service', 'not-found', 'inactive', 'dead', null, null),
      unit('console-getty.service', 'masked', 'inactive', 'dead', null, 'masked'),
      unit('cryptdisks.service', 'not-loaded', 'inactive', 'dead', null, 'masked'),
      unit('debug-shell.service', 'not-loaded', 'inactive', 'dead', null, 'disabled'),
      unit('drover-fail.service', 'loaded', 'failed', 'failed', '/bin/false', 'transient'),
      unit('drover-loop.service', 'loaded', 'activating', 'auto-restart', '/bin/false', 'transient'),
      unit(
        'drover-probe.service',
        'loaded',
        'active',
        'running',
        'drover test probe (records its starts and reloads)',
        'enabled',
      ),
      unit('drover-stopslow.service', 'loaded', 'deactivating', 'stop-sigterm', '/bin/sleep 100', 'transient'),
      unit(
        'getty-static.service',
        'loaded',
        'inactive',
        'dead',
        'getty on tty2-tty6 if dbus and logind are not available',
        'static',
      ),
      unit('getty.target', 'loaded', 'active', 'active', 'Login Prompts', 'static'),
      unit('getty@tty1.service', 'masked', 'inactive', 'dead', null, 'masked'),
      unit('home.mount', 'not-found', 'inactive', 'dead', null, null),
      unit('init.scope', 'loaded', 'active', 'running', 'System and Service Manager', null),
      unit(
        'nginx.service',
        'loaded',
        'active',
        'running',
        'A high performance web server and a reverse proxy server',
        'enabled',
      ),
      unit(
        'proc-sys-fs-binfmt_misc.automount',
        'loaded',
        'inactive',
        'dead',
        'Arbitrary Executable File Formats File System Automount Point',
        null,
      ),
      unit('proc-sys-fs-binfmt_misc.mount', 'not-loaded', 'inactive', 'dead', null, 'disabled'),
      unit(
        'run-credentials-systemd\\x2dsysctl.service.mount',
        'loaded',
        'active',
        'mounted',
        '/run/credentials/systemd-sysctl.service',
        null,
      ),
      unit('ssh.service', 'loaded', 'active', 'running', 'OpenBSD Secure Shell server', 'enabled'),
      unit('ssh.socket', 'not-loaded', 'inactive', 'dead', null, 'disabled'),
      unit('systemd-journald.service', 'loaded', 'active', 'running', 'Journal Service', 'static'),
      unit(
        'systemd-remount-fs.service',
        'loaded',
        'active',
        'exited',
        'Remount Root and Kernel File Systems',
        'enabled-runtime',
      ),
      unit(
        'systemd-tmpfiles-clean.service',
        'loaded',
        'inactive',
        'dead',
        'Cleanup of Temporary Directories',
        'static',
      ),
    ]);
  });

  it('leaves out templates, aliases and names drover refuses (-.mount, -.slice)', () => {
    const names = parseDiscovery(LIST_UNITS, LIST_UNIT_FILES).map((u) => u.name);
    for (const absent of [
      'getty@.service',
      'user-runtime-dir@.service',
      'autovt@.service',
      'sshd.service',
      'dbus-org.freedesktop.hostname1.service',
      '-.mount',
      '-.slice',
    ]) {
      assert.ok(!names.includes(absent), absent);
    }
  });

  it('reads the description after a JOB column, and without one', () => {
    const jobs = parseDiscovery(LIST_UNITS_TWO_JOBS, '');
    assert.deepEqual(
      jobs.map((u) => [u.name, u.subState, u.description]),
      [
        ['drover-fail.service', 'failed', '/bin/false'],
        ['drover-loop.service', 'auto-restart', '/bin/false'],
        ['drover-probe.service', 'running', 'drover test probe (records its starts and reloads)'],
        ['drover-slow.service', 'start', '/bin/sleep 20'],
        ['drover-stopslow.service', 'stop-sigterm', '/bin/sleep 100'],
      ],
    );
    const noJobs = parseDiscovery(LIST_UNITS_NO_JOBS, '');
    assert.deepEqual(
      noJobs.map((u) => [u.name, u.description]),
      [
        ['drover-probe.service', 'drover test probe (records its starts and reloads)'],
        ['getty@tty1.service', null],
        ['home.mount', null],
        ['nginx.service', 'A high performance web server and a reverse proxy server'],
        ['ssh.service', 'OpenBSD Secure Shell server'],
      ],
    );
  });

  it('reads list-unit-files with or without the PRESET column (added in systemd 245)', () => {
    const twoColumns = 'nginx.service enabled\ngetty@.service enabled\nfoo.timer disabled\n';
    assert.deepEqual(parseDiscovery('', twoColumns), [
      unit('foo.timer', 'not-loaded', 'inactive', 'dead', null, 'disabled'),
      unit('nginx.service', 'not-loaded', 'inactive', 'dead', null, 'enabled'),
    ]);
  });

  it('reads empty listings, CRLF line ends and blank lines', () => {
    assert.deepEqual(parseDiscovery('', ''), []);
    assert.deepEqual(parseDiscovery('\n\n', '\r\n'), []);
    assert.deepEqual(
      parseDiscovery(LIST_UNITS.replaceAll('\n', '\r\n'), LIST_UNIT_FILES.replaceAll('\n', '\r\n')),
      parseDiscovery(LIST_UNITS, LIST_UNIT_FILES),
    );
  });

  it('refuses output it cannot read, quoting the line', () => {
    assert.throws(
      () => parseDiscovery('nginx.service loaded active\n', ''),
      /cannot read systemctl list-units line "nginx.service loaded active"/,
    );
    assert.throws(
      () => parseDiscovery('', 'nginx.service enabled enabled extra\n'),
      /cannot read systemctl list-unit-files line/,
    );
    assert.throws(() => parseDiscovery('', 'nginx.service\n'), /cannot read systemctl list-unit-files line/);
    assert.throws(
      () => parseDiscovery('a.service loaded active running Foo\nb.service loaded active running  Bar\n', ''),
      /cannot find the DESCRIPTION column/,
    );
  });

  describe('properties', () => {
    const word = fc.stringMatching(/^[a-z][a-z-]{0,12}$/);
    const name = fc
      .tuple(
        fc.stringMatching(/^[a-z0-9][a-z0-9:_.\\-]{0,20}$/),
        fc.constantFrom('service', 'socket', 'mount', 'timer', 'target'),
      )
      .map(([base, type]) => `${base}.${type}`);
    const description = fc
      .array(fc.stringMatching(/^[^\s]{1,10}$/), { minLength: 1, maxLength: 6 })
      .chain((words) => fc.constantFrom(' ', '  ').map((gap) => words.join(gap)));
    const row = fc.record({
      loadState: fc.constantFrom('loaded', 'not-found', 'masked', 'bad-setting'),
      activeState: word,
      subState: word,
      job: fc.option(fc.constantFrom('start', 'stop', 'reload', 'restart', 'verify-active', 'nop'), { nil: null }),
      description,
    });
    const listing = fc.uniqueArray(fc.tuple(name, row), { minLength: 1, maxLength: 30, selector: ([n]) => n });

    it('reads back any table systemd could print, with or without a JOB column', () => {
      fc.assert(
        fc.property(listing, fc.nat(), (rows, idle) => {
          // A full listing always has units without a pending job.
          const withIdle = rows.map(([n, r], i) => [n, i === idle % rows.length ? { ...r, job: null } : r] as const);
          const hasJobs = withIdle.some(([, r]) => r.job !== null);
          const output = table(
            withIdle.map(([n, r]) => [
              n,
              r.loadState,
              r.activeState,
              r.subState,
              ...(hasJobs ? [r.job ?? ''] : []),
              r.description,
            ]),
          );
          const expected = withIdle
            .map(([n, r]) =>
              unit(n, r.loadState, r.activeState, r.subState, r.description === n ? null : r.description, null),
            )
            .sort((a, b) => (a.name < b.name ? -1 : 1));
          assert.deepEqual(parseDiscovery(output, ''), expected);
        }),
        { numRuns: 500 },
      );
    });

    it('lists each name once: every loaded unit, plus every unit file that is not a template or alias', () => {
      const fileState = fc.constantFrom('enabled', 'disabled', 'static', 'masked', 'alias', 'indirect', 'generated');
      const files = fc.uniqueArray(
        fc.tuple(
          fc.oneof(
            name,
            name.map((n) => n.replace('.', '@.')),
          ),
          fileState,
        ),
        {
          maxLength: 30,
          selector: ([n]) => n,
        },
      );
      fc.assert(
        fc.property(listing, files, (rows, unitFiles) => {
          const units = table(rows.map(([n, r]) => [n, r.loadState, r.activeState, r.subState, r.description]));
          const fileList = table(unitFiles.map(([n, state]) => [n, state, '-']));
          const result = parseDiscovery(units, fileList);
          const names = result.map((u) => u.name);
          assert.equal(new Set(names).size, names.length);
          assert.deepEqual(names, [...names].sort());
          const loaded = new Set(rows.map(([n]) => n));
          const kept = unitFiles.filter(([n, state]) => !loaded.has(n) && state !== 'alias' && !/@\.[a-z]+$/.test(n));
          assert.equal(result.length, loaded.size + new Set(kept.map(([n]) => n)).size);
          for (const [n, state] of unitFiles) {
            const found = result.find((u) => u.name === n);
            if (loaded.has(n)) assert.equal(found?.unitFileState, state);
          }
        }),
        { numRuns: 300 },
      );
    });
  });
});

describe('unitsToListAgain', () => {
  const loaded = parseDiscovery(LIST_UNITS, '');
  const asStored = (units: readonly DiscoveredUnit[]) =>
    new Map<string, ListedState>(
      units.map(({ name, loadState, activeState, subState }) => [name, { loadState, activeState, subState }]),
    );

  it('names nothing when the host shows every unit as recorded', () => {
    const stored = asStored(parseDiscovery(LIST_UNITS, LIST_UNIT_FILES));
    assert.deepEqual(unitsToListAgain(loaded, stored), []);
  });

  it('names a unit that runs otherwise, one loaded since, and one systemd let go of', () => {
    const stored = asStored(parseDiscovery(LIST_UNITS, LIST_UNIT_FILES));
    stored.set('nginx.service', { loadState: 'loaded', activeState: 'inactive', subState: 'dead' });
    stored.delete('getty.target');
    stored.set('was-loaded.service', { loadState: 'loaded', activeState: 'failed', subState: 'failed' });
    assert.deepEqual(unitsToListAgain(loaded, stored), ['getty.target', 'nginx.service', 'was-loaded.service']);
  });

  it('leaves alone a unit file nothing has loaded, and names one loaded since', () => {
    const stored = asStored(parseDiscovery(LIST_UNITS, LIST_UNIT_FILES));
    const notLoaded = [...stored].filter(([, unit]) => unit.loadState === NOT_LOADED);
    assert.ok(notLoaded.length > 0);
    assert.deepEqual(unitsToListAgain(loaded, stored), []);
    stored.set('nginx.service', { loadState: NOT_LOADED, activeState: 'inactive', subState: 'dead' });
    assert.deepEqual(unitsToListAgain(loaded, stored), ['nginx.service']);
  });

  it('asks for a full listing when nothing is recorded, or when too many units changed', () => {
    assert.equal(unitsToListAgain(loaded, new Map()), null);
    const many = new Map<string, ListedState>(
      Array.from({ length: MAX_NAMED_UNITS + 1 }, (_, index) => [
        `gone-${index}.service`,
        { loadState: 'loaded', activeState: 'active', subState: 'running' },
      ]),
    );
    assert.equal(unitsToListAgain(loaded, many), null);
  });
});

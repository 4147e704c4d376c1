import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { unitNameProblem } from './unit-name';
import { legacySucceeded, legacyVerbArgv, SYSTEMD_PROBE_ARGV, verbArgv, verbArgvParts } from './commands';
import { HOST_LEVEL_VERBS, MUTATING_VERBS, Verb, VERBS } from '@drover/protocol';

describe('verbs', () => {
  it('lists the twelve verbs; all but status mutate; only daemon-reload works without a unit', () => {
    assert.equal(VERBS.length, 12);
    assert.deepEqual(
      MUTATING_VERBS,
      VERBS.filter((verb) => verb !== 'status'),
    );
    assert.deepEqual(HOST_LEVEL_VERBS, ['daemon-reload']);
  });
});

describe('verbArgv', () => {
  it('runs unit verbs without password prompts or pager, the unit after "--"', () => {
    for (const verb of VERBS.filter((v) => v !== 'status' && v !== 'daemon-reload')) {
      assert.deepEqual(verbArgv(verb, 'nginx.service'), [
        'systemctl',
        '--no-ask-password',
        '--no-pager',
        verb,
        '--',
        'nginx.service',
      ]);
    }
  });

  it('runs status with the last 20 journal lines', () => {
    assert.deepEqual(verbArgv('status', 'getty@tty1.service'), [
      'systemctl',
      '--no-pager',
      '--lines=20',
      'status',
      '--',
      'getty@tty1.service',
    ]);
  });

  it('runs daemon-reload without a unit, even when one is given', () => {
    const argv = ['systemctl', '--no-ask-password', 'daemon-reload'];
    assert.deepEqual(verbArgv('daemon-reload', null), argv);
    assert.deepEqual(verbArgv('daemon-reload', 'nginx.service'), argv);
  });

  it('refuses a unit verb without a unit', () => {
    for (const verb of VERBS.filter((v) => !HOST_LEVEL_VERBS.includes(v))) {
      assert.throws(() => verbArgv(verb, null), new RegExp(`^Error: ${verb} needs a unit$`), verb);
    }
  });

  it('refuses names that are not unit names, for every verb, naming the problem', () => {
    for (const verb of VERBS) {
      for (const name of ['--now', '-.mount', 'nginx', 'nginx.service reboot', '$(id).service', 'a\nb.service', '']) {
        assert.throws(() => verbArgv(verb, name), /refusing unit name/, `${verb} ${JSON.stringify(name)}`);
      }
    }
  });

  it('refuses a verb that is not one of VERBS (a value cast from stored data)', () => {
    assert.throws(() => verbArgv('isolate' as Verb, 'rescue.target'), /unknown verb "isolate"/);
    assert.throws(() => verbArgv('--force' as Verb, 'nginx.service'), /unknown verb/);
  });

  it('for any verb and any string: either throws, or the argv ends in "--" and a valid unit name', () => {
    const anyName = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.stringMatching(/^-?[A-Za-z0-9:_.\\@ -]{0,20}\.(service|timer|mount)$/),
    );
    fc.assert(
      fc.property(fc.constantFrom(...VERBS), fc.option(anyName, { nil: null }), (verb, unit) => {
        let argv: string[];
        try {
          argv = verbArgv(verb, unit);
        } catch {
          assert.ok(unit === null || unitNameProblem(unit) !== null, `threw for ${verb} ${unit}`);
          return;
        }
        assert.equal(argv[0], 'systemctl');
        assert.ok(argv.includes(verb));
        const dashes = argv.indexOf('--');
        if (verb === 'daemon-reload') {
          assert.equal(dashes, -1);
          return;
        }
        assert.deepEqual(argv.slice(dashes + 1), [unit]);
        assert.ok(argv.slice(dashes + 1).every((arg) => !arg.startsWith('-')));
        assert.equal(unitNameProblem(unit ?? ''), null);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('verbArgvParts', () => {
  it('reads back the verb and unit of every argv verbArgv gives for a unit', () => {
    for (const verb of VERBS.filter((v) => v !== 'daemon-reload')) {
      for (const unit of ['nginx.service', 'getty@tty1.service', 'foo\\x2dbar.mount']) {
        assert.deepEqual(verbArgvParts(verbArgv(verb, unit)), { verb, unit });
      }
    }
  });

  it('recognises nothing else: another spelling, extra words, daemon-reload, a bad unit', () => {
    for (const argv of [
      verbArgv('daemon-reload', null),
      ['systemctl', '--no-pager', 'restart', '--', 'nginx.service'],
      ['systemctl', '--no-ask-password', '--no-pager', 'restart', '--', 'nginx.service', 'x.service'],
      ['systemctl', '--no-ask-password', '--no-pager', 'restart', '--', '-x.service'],
      ['systemctl', '--no-ask-password', '--no-pager', 'kill', '--', 'nginx.service'],
      ['/bin/systemctl', '--no-ask-password', '--no-pager', 'restart', '--', 'nginx.service'],
      ['restart', '--', 'nginx.service'],
      [],
    ]) {
      assert.equal(verbArgvParts(argv), null, argv.join(' '));
    }
  });
});

describe('SYSTEMD_PROBE_ARGV', () => {
  it('tests for /run/systemd/system, as sd_booted(3) does', () => {
    // Exits 0 on the fleet hosts (systemd 252) and 1 on this machine, whose PID 1 is not systemd.
    assert.deepEqual(SYSTEMD_PROBE_ARGV, ['test', '-d', '/run/systemd/system']);
  });
});

describe('legacyVerbArgv', () => {
  it('maps start, stop, restart, reload and status to `service NAME ACTION`', () => {
    for (const verb of ['start', 'stop', 'restart', 'reload', 'status'] as const) {
      assert.deepEqual(legacyVerbArgv(verb, 'nginx.service'), { supported: true, argv: ['service', 'nginx', verb] });
    }
    assert.deepEqual(legacyVerbArgv('restart', 'hwclock.sh.service'), {
      supported: true,
      argv: ['service', 'hwclock.sh', 'restart'],
    });
  });

  it('refuses the verbs only systemd has, naming the verb and the missing systemd', () => {
    for (const verb of [
      'enable',
      'disable',
      'mask',
      'unmask',
      'try-restart',
      'reload-or-restart',
      'daemon-reload',
    ] as const) {
      const plan = legacyVerbArgv(verb, 'nginx.service');
      assert.equal(plan.supported, false, verb);
      assert.match(
        plan.supported ? '' : plan.reason,
        new RegExp(`^${verb} needs systemd, and this host has no systemd`),
      );
    }
  });

  it('refuses units that are not services, and template instances', () => {
    const timer = legacyVerbArgv('start', 'apt-daily.timer');
    assert.deepEqual(timer, {
      supported: false,
      reason:
        'apt-daily.timer is not a service, and this host has no systemd: only .service units map to init scripts there',
    });
    const instance = legacyVerbArgv('start', 'getty@tty1.service');
    assert.equal(instance.supported, false);
    assert.match(instance.supported ? '' : instance.reason, /template instance.*no systemd/);
  });

  it('refuses invalid names by throwing, as verbArgv does', () => {
    assert.throws(() => legacyVerbArgv('start', '-.service'), /refusing unit name/);
    assert.throws(() => legacyVerbArgv('start', 'nginx.service; reboot'), /refusing unit name/);
  });
});

describe('legacySucceeded', () => {
  it('accepts exit 0 for every action', () => {
    for (const verb of ['start', 'stop', 'restart', 'reload', 'status'] as const) {
      assert.deepEqual(legacySucceeded(verb, 0), { ok: true });
    }
  });

  it('accepts status exit 3: "not running" is an answer', () => {
    // `service rsync status` on a host without systemd: "rsync is not running ... failed!", exit 3.
    assert.deepEqual(legacySucceeded('status', 3), { ok: true });
  });

  it('explains the other LSB exit codes', () => {
    assert.deepEqual(legacySucceeded('reload', 3), {
      ok: false,
      reason: 'service reload exited 3: unimplemented feature (the init script does not offer this action)',
    });
    // `service drover-nope status` without systemd: "drover-nope: unrecognized service", exit 1.
    assert.deepEqual(legacySucceeded('status', 1), {
      ok: false,
      reason: 'service status exited 1: program is dead and its pid file remains (or there is no such init script)',
    });
    assert.deepEqual(legacySucceeded('start', 1), {
      ok: false,
      reason:
        'service start exited 1: generic or unspecified error (also what `service` exits with when there is no such init script)',
    });
    assert.deepEqual(legacySucceeded('status', 4), {
      ok: false,
      reason: 'service status exited 4: program or service status is unknown',
    });
    assert.deepEqual(legacySucceeded('stop', 7), {
      ok: false,
      reason: 'service stop exited 7: program is not running',
    });
    assert.deepEqual(legacySucceeded('start', 127), {
      ok: false,
      reason: 'service start exited 127: not an LSB exit code',
    });
  });

  it('fails a command killed by a signal', () => {
    assert.deepEqual(legacySucceeded('restart', null), {
      ok: false,
      reason: 'service restart was killed by a signal before it finished',
    });
  });
});

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { Verb, VERBS } from '@drover/protocol';
import {
  HOST_CLOCK_ARGV,
  LIST_UNIT_FILES_ARGV,
  LIST_UNITS_ARGV,
  snapshotArgv,
  START_LIKE_VERBS,
  startJournalArgv,
  SYSTEMD_PROBE_ARGV,
  UNIT_TYPES,
  unitNameProblem,
  verbArgv,
} from '@drover/systemd';
import {
  defaultSudoersGroup,
  renderSudoers,
  sudoersArg,
  SudoersInput,
  SudoersInputError,
  sudoersInputProblems,
  sudoersPath,
} from './sudoers';

const scratch = mkdtempSync(path.join(tmpdir(), 'drover-sudoers-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let fileSequence = 0;

function writeScratch(content: string): string {
  fileSequence += 1;
  const file = path.join(scratch, `drover-${fileSequence}`);
  writeFileSync(file, content, { mode: 0o440 });
  return file;
}

/** visudo is in the sudo package; without it these tests would check less than they claim. */
function visudo(content: string): { ok: boolean; output: string } {
  const result = spawnSync('visudo', ['-cf', writeScratch(content)], { encoding: 'utf8' });
  if (result.error) throw new Error(`cannot run visudo (apt-get install sudo): ${result.error.message}`);
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

/** What sudo's own parser reads from the file: each alias's commands as sudo will match them. */
function parsedAliases(content: string): Map<string, string[]> {
  const json = execFileSync('cvtsudoers', ['-f', 'json', writeScratch(content)], { encoding: 'utf8' });
  const parsed = JSON.parse(json) as { Command_Aliases?: Record<string, { command: string }[]> };
  return new Map(
    Object.entries(parsed.Command_Aliases ?? {}).map(([name, commands]) => [name, commands.map((c) => c.command)]),
  );
}

/**
 * What an fnmatch(3) pattern matches when it has no wildcard (a backslash makes the next character
 * literal), or null when it has one: written apart from the renderer, after POSIX fnmatch rules.
 */
function literalOf(pattern: string): string | null {
  let text = '';
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index]!;
    if (char === '\\') {
      const next = pattern[index + 1];
      if (next === undefined) return null;
      text += next;
      index++;
    } else if ('*?['.includes(char)) {
      return null;
    } else {
      text += char;
    }
  }
  return text;
}

/** The command line sudo sees for an argv run as drover runs it: the path, then args joined by spaces. */
function userCommand(argv: readonly string[], directory: string): string {
  return `${directory}/${argv[0]!} ${argv.slice(1).join(' ')}`;
}

/** Every command a parsed file allows, as literal text (fails on any wildcard). */
function allowedCommands(content: string): Set<string> {
  const allowed = new Set<string>();
  for (const commands of parsedAliases(content).values()) {
    for (const command of commands) {
      const space = command.indexOf(' ');
      assert.ok(space > 0, `${command} has arguments`);
      assert.notEqual(command.slice(space + 1), '""', `${command} is not "no arguments"`);
      const args = literalOf(command.slice(space + 1));
      assert.notEqual(args, null, `${command} has no wildcard`);
      allowed.add(`${command.slice(0, space)} ${args!}`);
    }
  }
  return allowed;
}

function expectedCommands(input: SudoersInput): Set<string> {
  const units = [...new Set(input.units)];
  const argvs: (readonly string[])[] = [SYSTEMD_PROBE_ARGV, ...units.map(snapshotArgv)];
  if (input.includeDiscovery) argvs.push(LIST_UNITS_ARGV, LIST_UNIT_FILES_ARGV);
  // Counting starts before a verb that may start a unit: the host's clock and each unit's journal.
  if (input.verbs.some((verb) => START_LIKE_VERBS.includes(verb))) {
    argvs.push(HOST_CLOCK_ARGV, ...units.map(startJournalArgv));
  }
  for (const verb of input.verbs) {
    if (verb === 'daemon-reload') argvs.push(verbArgv(verb, null));
    else argvs.push(...units.map((unit) => verbArgv(verb, unit)));
  }
  return new Set(
    argvs.flatMap((argv) =>
      argv[0] === 'test' ? [userCommand(argv, '/usr/bin')] : [userCommand(argv, '/usr/bin'), userCommand(argv, '/bin')],
    ),
  );
}

const base: SudoersInput = {
  user: 'deploy',
  verbs: ['restart', 'status'],
  units: ['nginx.service'],
  includeDiscovery: true,
};

describe('sudoersArg', () => {
  it('escapes what sudoers and fnmatch would read as syntax, and nothing else', () => {
    assert.equal(sudoersArg('nginx.service'), 'nginx.service');
    assert.equal(sudoersArg('--lines=20'), '--lines\\=20');
    assert.equal(sudoersArg('--property=Id,LoadState'), '--property\\=Id\\,LoadState');
    assert.equal(sudoersArg('dev-disk-by\\x2dlabel-a:b.device'), 'dev-disk-by\\\\\\\\x2dlabel-a\\:b.device');
    assert.equal(sudoersArg('getty@tty1.service'), 'getty@tty1.service');
    assert.equal(sudoersArg('a#b'), 'a\\#b');
    assert.equal(sudoersArg('*?[]!^'), '\\\\*\\\\?\\\\[\\\\]\\\\!\\\\^');
    // Arguments that are exactly "" would mean "no arguments" to sudo.
    assert.equal(sudoersArg('""'), '\\\\"\\\\"');
  });

  it('refuses arguments sudo cannot tell apart: empty, blanks, control characters', () => {
    for (const arg of ['', 'a b', 'a\tb', 'a\nb', 'é']) assert.throws(() => sudoersArg(arg), /cannot express/);
  });

  it('is checked by tests that notice mistakes: unescaped forms fail visudo or parse as something else', () => {
    assert.equal(visudo('Cmnd_Alias DROVER_T__A = /usr/bin/test a\\x2d.device\nnobody ALL = (root) ALL\n').ok, false);
    assert.equal(visudo('Cmnd_Alias DROVER_T__A = /usr/bin/test --p=a,b\nnobody ALL = (root) ALL\n').ok, false);
    // An unescaped '#' silently starts a comment: visudo is content, the command is not.
    const hash = 'Cmnd_Alias DROVER_T__A = /usr/bin/test a#b\nnobody ALL = (root) NOPASSWD: DROVER_T__A\n';
    assert.equal(visudo(hash).ok, true);
    assert.deepEqual([...allowedCommands(hash)], ['/usr/bin/test a']);
    // A single backslash before x is an fnmatch escape: it would allow xx2d, not x\x2d.
    assert.equal(literalOf('a\\x2d'), 'ax2d');
  });

  it('round-trips any printable argument through sudo’s parser to a literal pattern', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: fc.constantFrom(...'\\,:=#*?[]!^"()%@$aZ09-_./'), minLength: 1, maxLength: 12 }), {
          minLength: 1,
          maxLength: 6,
        }),
        (args) => {
          const content = `Cmnd_Alias DROVER_T__A = /usr/bin/test ${args.map(sudoersArg).join(' ')}\nnobody ALL = (root) NOPASSWD: DROVER_T__A\n`;
          const checked = visudo(content);
          assert.ok(checked.ok, `${content}\n${checked.output}`);
          assert.deepEqual([...allowedCommands(content)], [`/usr/bin/test ${args.join(' ')}`]);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('renderSudoers', () => {
  it('writes a reviewed-looking drop-in: header, Defaults, one alias per purpose, one rule', () => {
    const content = renderSudoers({ ...base, group: 'web' });
    assert.equal(
      content,
      [
        '# /etc/sudoers.d/drover-web: generated by drover. Do not edit: generate it again.',
        '#',
        '# Lets deploy run as root, without a password, exactly these command lines and no others:',
        '#   verbs: status, restart',
        '#   units: nginx.service',
        "#   and what drover reads to check them: the systemd probe, systemctl show of each unit, each unit's",
        "#   starts in the journal and the host's clock (for systemd's start limit) and the unit listings of",
        '#   discovery.',
        '# Every line names all of its arguments, and sudo allows a command only with exactly those.',
        '#',
        '# Install as root: visudo -cf FILE && install -m 0440 -o root -g root FILE /etc/sudoers.d/drover-web',
        '',
        'Defaults:deploy !requiretty',
        '',
        'Cmnd_Alias DROVER_WEB__READ = \\',
        '    /usr/bin/test -d /run/systemd/system, \\',
        '    /usr/bin/systemctl show --no-pager --property\\=Id\\,LoadState\\,ActiveState\\,SubState\\,MainPID\\,NRestarts\\,UnitFileState\\,NeedDaemonReload\\,ActiveEnterTimestamp\\,ActiveEnterTimestampMonotonic\\,InvocationID\\,CanReload\\,CanStart\\,CanStop\\,Result\\,Description\\,FragmentPath\\,DropInPaths\\,StartLimitBurst\\,StartLimitIntervalUSec -- nginx.service, \\',
        '    /bin/systemctl show --no-pager --property\\=Id\\,LoadState\\,ActiveState\\,SubState\\,MainPID\\,NRestarts\\,UnitFileState\\,NeedDaemonReload\\,ActiveEnterTimestamp\\,ActiveEnterTimestampMonotonic\\,InvocationID\\,CanReload\\,CanStart\\,CanStop\\,Result\\,Description\\,FragmentPath\\,DropInPaths\\,StartLimitBurst\\,StartLimitIntervalUSec -- nginx.service, \\',
        '    /usr/bin/date +%s%6N, \\',
        '    /bin/date +%s%6N, \\',
        '    /usr/bin/journalctl --no-pager --quiet --output\\=json --output-fields\\=MESSAGE_ID\\,INVOCATION_ID\\,CODE_FUNC --lines\\=200 _PID\\=1 UNIT\\=nginx.service MESSAGE_ID\\=7d4958e842da4a758f6c1cdc7b36dcc5 MESSAGE_ID\\=39f53479d3a045ac8e11786248231fbf MESSAGE_ID\\=be02cf6855d2428ba40df7e9d022f03d + _PID\\=1 UNIT\\=nginx.service CODE_FUNC\\=unit_test_start_limit, \\',
        '    /bin/journalctl --no-pager --quiet --output\\=json --output-fields\\=MESSAGE_ID\\,INVOCATION_ID\\,CODE_FUNC --lines\\=200 _PID\\=1 UNIT\\=nginx.service MESSAGE_ID\\=7d4958e842da4a758f6c1cdc7b36dcc5 MESSAGE_ID\\=39f53479d3a045ac8e11786248231fbf MESSAGE_ID\\=be02cf6855d2428ba40df7e9d022f03d + _PID\\=1 UNIT\\=nginx.service CODE_FUNC\\=unit_test_start_limit, \\',
        '    /usr/bin/systemctl list-units --all --plain --no-legend --no-pager --full, \\',
        '    /bin/systemctl list-units --all --plain --no-legend --no-pager --full, \\',
        '    /usr/bin/systemctl list-unit-files --plain --no-legend --no-pager --full, \\',
        '    /bin/systemctl list-unit-files --plain --no-legend --no-pager --full',
        'Cmnd_Alias DROVER_WEB__STATUS = \\',
        '    /usr/bin/systemctl --no-pager --lines\\=20 status -- nginx.service, \\',
        '    /bin/systemctl --no-pager --lines\\=20 status -- nginx.service',
        'Cmnd_Alias DROVER_WEB__RESTART = \\',
        '    /usr/bin/systemctl --no-ask-password --no-pager restart -- nginx.service, \\',
        '    /bin/systemctl --no-ask-password --no-pager restart -- nginx.service',
        '',
        'deploy ALL = (root) NOPASSWD: DROVER_WEB__READ, DROVER_WEB__STATUS, DROVER_WEB__RESTART',
        '',
      ].join('\n'),
    );
    assert.ok(visudo(content).ok);
  });

  it('allows exactly the argv drover runs for each verb and unit, and the checks, nothing more', () => {
    const input: SudoersInput = {
      user: 'drover',
      verbs: [...VERBS],
      units: ['nginx.service', 'sys-devices-x\\x2dy.device', 'getty@tty1.service', 'a:b.mount'],
      includeDiscovery: true,
    };
    const content = renderSudoers(input);
    assert.ok(visudo(content).ok, content);
    assert.deepEqual(allowedCommands(content), expectedCommands(input));
    assert.equal(content.match(/daemon-reload/g)?.length, 3, 'daemon-reload once per path, plus the header');
  });

  it('allows each catalogue probe with exactly its arguments, and one without arguments with none', () => {
    const probeCommands = [
      { name: 'nginx-up', argv: ['/usr/bin/systemctl', 'is-active', '--quiet', 'nginx.service'] },
      { name: 'health', argv: ['/usr/local/bin/check-health', '--url=http://127.0.0.1:80/x,y#z'] },
      { name: 'bare', argv: ['/usr/local/bin/bare-check'] },
    ];
    const content = renderSudoers({ ...base, probeCommands });
    assert.ok(visudo(content).ok, content);
    assert.match(content, /^# {3}probes: bare, health, nginx-up$/m);
    const aliases = parsedAliases(content);
    // As sudo's own parser reads them: the escaping gone, every argument literal.
    assert.deepEqual(aliases.get('DROVER_DEPLOY__PROBES'), [
      '/usr/local/bin/bare-check ""',
      '/usr/local/bin/check-health --url=http://127.0.0.1:80/x,y#z',
      '/usr/bin/systemctl is-active --quiet nginx.service',
    ]);
    assert.equal(renderSudoers({ ...base, probeCommands: [...probeCommands].reverse() }), content);
    assert.throws(
      () => renderSudoers({ ...base, probeCommands: [{ name: 'x', argv: ['/usr/bin/a*b'] }] }),
      /plain absolute path/,
    );
  });

  it('lets drover read the journal and the clock only when a verb may start a unit (the start limit)', () => {
    const readOnly = renderSudoers({ ...base, verbs: ['status', 'stop', 'reload'], includeDiscovery: false });
    assert.doesNotMatch(readOnly, /journalctl|date/);
    assert.match(
      readOnly,
      /^# {3}and what drover reads to check them: the systemd probe and systemctl show of each unit\.$/m,
    );
    for (const verb of START_LIKE_VERBS) {
      const content = renderSudoers({ ...base, verbs: [verb], units: ['a.service', 'b.service'] });
      const allowed = allowedCommands(content);
      assert.ok(allowed.has(userCommand(HOST_CLOCK_ARGV, '/usr/bin')), verb);
      assert.ok(allowed.has(userCommand(startJournalArgv('b.service'), '/bin')), verb);
    }
  });

  it('leaves the discovery listings out when asked', () => {
    const content = renderSudoers({ ...base, includeDiscovery: false });
    assert.doesNotMatch(content, /list-unit/);
    assert.deepEqual(allowedCommands(content), expectedCommands({ ...base, includeDiscovery: false }));
  });

  it('gives the same bytes for the same set of verbs and units in any order, duplicates or not', () => {
    const one = renderSudoers({ ...base, verbs: ['restart', 'status', 'stop'], units: ['b.service', 'a.service'] });
    const two = renderSudoers({
      ...base,
      verbs: ['stop', 'status', 'restart', 'stop'],
      units: ['a.service', 'b.service', 'a.service'],
    });
    assert.equal(one, two);
  });

  it('names the file and aliases after the group, by default the user', () => {
    assert.equal(defaultSudoersGroup('deploy_bot'), 'deploy-bot');
    assert.equal(defaultSudoersGroup('_'), null);
    assert.equal(sudoersPath('deploy-bot'), '/etc/sudoers.d/drover-deploy-bot');
    assert.match(renderSudoers({ ...base, user: 'deploy_bot' }), /^Cmnd_Alias DROVER_DEPLOY_BOT__READ = /m);
    assert.match(renderSudoers({ ...base, group: 'web-1' }), /^Cmnd_Alias DROVER_WEB_1__RESTART = /m);
  });

  it('never gives two groups the same alias name (a clash would break sudo on hosts with both files)', () => {
    const aliases = (group: string) => [...parsedAliases(renderSudoers({ ...base, verbs: [...VERBS], group })).keys()];
    const seen = new Map<string, string>();
    for (const group of ['web', 'web-try', 'web-reload', 'web-reload-or', 'try', 'web-daemon']) {
      for (const alias of aliases(group)) {
        assert.equal(seen.get(alias), undefined, `${alias} of ${group} clashes with ${seen.get(alias) ?? ''}`);
        seen.set(alias, group);
      }
    }
  });

  it('passes visudo and allows exactly the expected commands for any valid unit names', () => {
    const unitChar = fc.constantFrom(...'abcXYZ019:_.-\\'.split(''));
    const unitName = fc
      .tuple(
        fc.string({ unit: unitChar, minLength: 1, maxLength: 24 }),
        fc.option(fc.string({ unit: unitChar, minLength: 1, maxLength: 12 }), { nil: undefined }),
        fc.constantFrom(...UNIT_TYPES),
      )
      .map(([prefix, instance, type]) => `${prefix}${instance === undefined ? '' : `@${instance}`}.${type}`)
      .filter((name) => unitNameProblem(name) === null);
    fc.assert(
      fc.property(
        fc.uniqueArray(unitName, { minLength: 1, maxLength: 6 }),
        fc.uniqueArray(fc.constantFrom(...VERBS.filter((verb) => verb !== 'mask')), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (units, verbs, includeDiscovery) => {
          const input: SudoersInput = { user: 'drover', verbs, units, includeDiscovery };
          const content = renderSudoers(input);
          const checked = visudo(content);
          assert.ok(checked.ok, `${content}\n${checked.output}`);
          assert.deepEqual(allowedCommands(content), expectedCommands(input));
        },
      ),
      { numRuns: 120 },
    );
  });
});

describe('sudoersInputProblems', () => {
  const problems = (input: Partial<SudoersInput>) =>
    sudoersInputProblems({ ...base, ...input }).map((problem) => `${problem.field}: ${problem.message}`);

  it('accepts a valid input', () => {
    assert.deepEqual(problems({}), []);
  });

  it('refuses root and names that are not POSIX user names', () => {
    assert.match(problems({ user: 'root' })[0]!, /^user: root needs no sudoers rules/);
    for (const user of ['Deploy', 'a b', 'x,y', '-x', '', 'a'.repeat(33), 'ALL']) {
      assert.match(problems({ user })[0]!, /^user: must be a POSIX user name/, user);
    }
  });

  it('refuses unit globs, saying they are not supported, and names that are not unit names', () => {
    assert.match(
      problems({ units: ['nginx.service', 'web-*.service'] })[0]!,
      /^units\[1\]: unit globs are not supported/,
    );
    assert.match(problems({ units: ['web-?.service'] })[0]!, /unit globs are not supported/);
    assert.match(problems({ units: ['nginx'] })[0]!, /^units\[0\]: must be a systemd unit name/);
    assert.match(problems({ units: ['a b.service'] })[0]!, /must be a systemd unit name/);
    assert.match(problems({ units: ['--now.service'] })[0]!, /must not start with "-"/);
  });

  it('refuses templates, naming an instance to use instead', () => {
    assert.match(
      problems({ units: ['getty@.service'] })[0]!,
      /^units\[0\]: getty@.service is a template.*getty@NAME.service/,
    );
  });

  it('needs at least one verb and one unit, and verbs drover knows', () => {
    assert.deepEqual(problems({ units: [] }), ['units: must name at least one unit']);
    assert.deepEqual(problems({ verbs: [] }), ['verbs: must name at least one verb']);
    assert.match(problems({ verbs: ['restart', 'kill' as Verb] })[0]!, /^verbs\[1\]: must be one of status, start/);
  });

  it('needs start with mask: drover checks a mask by trying a start', () => {
    assert.match(problems({ verbs: ['mask'] })[0]!, /^verbs: mask needs start as well/);
    assert.deepEqual(problems({ verbs: ['mask', 'start'] }), []);
  });

  it('refuses group names that would not make a file sudo reads or an alias of its own', () => {
    for (const group of ['web.prod', 'Web', 'a_b', 'a--b', '-a', 'a-', '', 'x'.repeat(49)]) {
      assert.match(problems({ group })[0]!, /^group: must be 1-48 characters/, group);
    }
    assert.match(problems({ user: '_' })[0]!, /^group: required/);
  });

  it('makes the renderer throw a 400 DomainError listing every problem', () => {
    assert.throws(
      () => renderSudoers({ ...base, user: 'root', units: ['x*.service'] }),
      (error: unknown) => {
        assert.ok(error instanceof SudoersInputError);
        assert.equal(error.status, 400);
        assert.deepEqual(
          error.errors.map((problem) => problem.field),
          ['user', 'units[0]'],
        );
        return true;
      },
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import vm from 'node:vm';
import fc from 'fast-check';
import { Verb, VERBS } from '@drover/protocol';
import { UNIT_TYPES, unitNameProblem } from '@drover/systemd';
import {
  jsString,
  MAX_POLKIT_UNITS,
  POLKIT_RULES_PATH,
  PolkitInput,
  PolkitInputError,
  polkitInputProblems,
  renderPolkitRules,
} from './polkit';

const MANAGE_UNITS = 'org.freedesktop.systemd1.manage-units';
const MANAGE_UNIT_FILES = 'org.freedesktop.systemd1.manage-unit-files';
const RELOAD_DAEMON = 'org.freedesktop.systemd1.reload-daemon';

type Rule = (action: { id: string; lookup(key: string): string | undefined }, subject: { user: string }) => unknown;

/**
 * The rules of a file as polkitd runs them: the file evaluated with a `polkit` object whose
 * addRule collects them. Strict mode, so a sloppy construct fails here rather than on a host.
 */
function loadRules(content: string): Rule[] {
  const rules: Rule[] = [];
  const polkit = {
    Result: { YES: 'yes', NO: 'no', AUTH_ADMIN: 'auth_admin' },
    addRule: (rule: Rule) => rules.push(rule),
    log: () => undefined,
  };
  vm.runInNewContext(`"use strict";\n${content}`, { polkit });
  return rules;
}

/**
 * polkit's answer for one request: the first rule that returns something, else nothing (the
 * action's defaults then apply: auth_admin, which nobody can answer for a system service). An
 * action that another one implies is also granted when the implying one is, checked with the
 * original request's details (polkitd's check_authorization_sync): systemd's policy declares that
 * manage-unit-files implies manage-units and reload-daemon.
 */
function decide(content: string, user: string, id: string, details: Record<string, string> = {}): 'yes' | 'no' {
  const rules = loadRules(content);
  const ask = (actionId: string): unknown => {
    const action = { id: actionId, lookup: (key: string) => details[key] };
    for (const rule of rules) {
      const result = rule(action, { user });
      if (result !== undefined) return result;
    }
    return undefined;
  };
  if (ask(id) === 'yes') return 'yes';
  const impliedBy = id === MANAGE_UNITS || id === RELOAD_DAEMON ? [MANAGE_UNIT_FILES] : [];
  return impliedBy.some((implying) => ask(implying) === 'yes') ? 'yes' : 'no';
}

/** What systemd asks polkit for a unit job: the unit and systemd's name of the job. */
function job(content: string, unit: string, verb: string, user = 'drover-agent'): 'yes' | 'no' {
  return decide(content, user, MANAGE_UNITS, { unit, verb });
}

const base: PolkitInput = { user: 'drover-agent', verbs: ['restart', 'reload'], units: ['drover-probe.service'] };

describe('polkit rules for the agent user', () => {
  it('allows exactly the chosen verbs on the chosen units, for the agent user only', () => {
    const content = renderPolkitRules({ ...base, units: ['nginx.service', 'drover-probe.service'] });
    for (const unit of ['nginx.service', 'drover-probe.service']) {
      assert.equal(job(content, unit, 'restart'), 'yes');
      assert.equal(job(content, unit, 'reload'), 'yes');
      for (const verb of ['start', 'stop', 'try-restart', 'reload-or-restart', 'reload-or-try-restart', 'kill', '']) {
        assert.equal(job(content, unit, verb), 'no', `${verb} ${unit}`);
      }
      assert.equal(job(content, unit, 'restart', 'someone-else'), 'no');
    }
    assert.equal(job(content, 'ssh.service', 'restart'), 'no');
    assert.equal(job(content, 'nginx', 'restart'), 'no', 'names are compared exactly');
    assert.equal(decide(content, 'drover-agent', MANAGE_UNITS, { unit: 'nginx.service' }), 'no', 'no verb detail');
    assert.equal(decide(content, 'drover-agent', MANAGE_UNITS), 'no');
    assert.equal(decide(content, 'drover-agent', MANAGE_UNIT_FILES), 'no');
    assert.equal(decide(content, 'drover-agent', RELOAD_DAEMON), 'no');
    assert.equal(decide(content, 'drover-agent', 'org.freedesktop.login1.reboot'), 'no');
  });

  it('passes systemd its own verb names: each drover verb allows the job systemd checks for it', () => {
    const systemdVerb: Partial<Record<Verb, string>> = {
      start: 'start',
      stop: 'stop',
      restart: 'restart',
      'try-restart': 'try-restart',
      reload: 'reload',
      'reload-or-restart': 'reload-or-restart',
    };
    for (const [verb, detail] of Object.entries(systemdVerb)) {
      const content = renderPolkitRules({ ...base, verbs: [verb as Verb] });
      for (const other of Object.values(systemdVerb)) {
        assert.equal(job(content, 'drover-probe.service', other), other === detail ? 'yes' : 'no', `${verb}: ${other}`);
      }
    }
  });

  it('unit-file verbs allow manage-unit-files and reload-daemon, never as a way to every unit job', () => {
    const content = renderPolkitRules({ ...base, verbs: ['enable', 'disable'] });
    assert.equal(decide(content, 'drover-agent', MANAGE_UNIT_FILES), 'yes');
    assert.equal(decide(content, 'drover-agent', RELOAD_DAEMON), 'yes', 'systemctl enable reloads the manager');
    assert.equal(decide(content, 'someone-else', MANAGE_UNIT_FILES), 'no');
    // manage-unit-files implies manage-units: polkit asks the rule for manage-unit-files with the
    // job's details, which must not pass.
    for (const unit of ['drover-probe.service', 'nginx.service']) {
      for (const verb of ['stop', 'restart', 'start']) assert.equal(job(content, unit, verb), 'no', `${verb} ${unit}`);
    }
    assert.match(
      content,
      /cannot limit them to the units above: the user may enable, disable, mask and\n\/\/ unmask ANY unit/,
    );
  });

  it('daemon-reload alone allows reload-daemon and nothing about unit files', () => {
    const content = renderPolkitRules({ ...base, verbs: ['daemon-reload'] });
    assert.equal(decide(content, 'drover-agent', RELOAD_DAEMON), 'yes');
    assert.equal(decide(content, 'drover-agent', MANAGE_UNIT_FILES), 'no');
    assert.equal(job(content, 'drover-probe.service', 'restart'), 'no');
  });

  it('status needs no rule: it grants nothing', () => {
    const content = renderPolkitRules({ ...base, verbs: ['status'] });
    for (const verb of ['start', 'stop', 'restart']) assert.equal(job(content, 'drover-probe.service', verb), 'no');
    assert.equal(decide(content, 'drover-agent', RELOAD_DAEMON), 'no');
  });

  it('is reproducible: verbs in drover order, units sorted, duplicates dropped; says where it goes', () => {
    const one = renderPolkitRules({ user: 'agent', verbs: ['reload', 'restart'], units: ['b.service', 'a.service'] });
    const two = renderPolkitRules({
      user: 'agent',
      verbs: ['restart', 'reload', 'restart'],
      units: ['a.service', 'b.service', 'a.service'],
    });
    assert.equal(one, two);
    assert.ok(one.startsWith(`// ${POLKIT_RULES_PATH}: generated by drover.`));
    assert.match(one, /^\/\/ {3}verbs: restart, reload$/m);
    assert.match(one, /^\/\/ {3}units: a\.service, b\.service$/m);
  });

  it('any unit name the rules accept ends up as that exact string in the rule, and only it passes', () => {
    const unitChar = fc.constantFrom(...'abcXYZ019:_.-\\@'.split(''));
    fc.assert(
      fc.property(
        fc.string({ unit: unitChar, minLength: 1, maxLength: 24 }),
        fc.constantFrom(...UNIT_TYPES),
        (stem, type) => {
          const unit = `${stem}.${type}`;
          fc.pre(polkitInputProblems({ ...base, units: [unit] }).length === 0);
          const content = renderPolkitRules({ ...base, units: [unit] });
          assert.equal(job(content, unit, 'restart'), 'yes');
          assert.equal(job(content, `${unit}x`, 'restart'), 'no');
          assert.equal(job(content, unit.replace(/\\/g, ''), 'restart'), unit.includes('\\') ? 'no' : 'yes');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('writes strings as JavaScript literals, line separators too', () => {
    for (const value of ['a"b', 'a\\b', 'a\nb', 'a\u2028b\u2029c', '</script>']) {
      assert.equal(vm.runInNewContext(jsString(value)), value);
    }
  });

  it('refuses what it cannot express, field by field', () => {
    const problems = (input: Partial<PolkitInput>) =>
      polkitInputProblems({ ...base, ...input }).map((problem) => problem.field);
    assert.deepEqual(problems({ user: 'root' }), ['user']);
    assert.deepEqual(problems({ user: 'Agent"); polkit.Result.YES; ("' }), ['user']);
    assert.deepEqual(problems({ verbs: [] }), ['verbs']);
    assert.deepEqual(problems({ verbs: ['restart', 'kill' as Verb] }), ['verbs[1]']);
    assert.deepEqual(problems({ verbs: ['mask'] }), ['verbs'], 'mask needs start');
    assert.deepEqual(problems({ verbs: ['mask', 'start'] }), []);
    assert.deepEqual(problems({ units: [] }), ['units']);
    assert.deepEqual(problems({ units: ['nginx*.service', 'getty@.service', 'a"b.service', 'ok.service'] }), [
      'units[0]',
      'units[1]',
      'units[2]',
    ]);
    assert.ok(unitNameProblem('a"b.service') !== null);
    assert.deepEqual(
      problems({ units: Array.from({ length: MAX_POLKIT_UNITS + 1 }, (_, index) => `u${index}.service`) }),
      ['units'],
    );
    assert.throws(() => renderPolkitRules({ ...base, user: 'root' }), PolkitInputError);
  });

  it('every verb drover has is accepted', () => {
    assert.deepEqual(polkitInputProblems({ ...base, verbs: [...VERBS] }), []);
    const content = renderPolkitRules({ ...base, verbs: [...VERBS] });
    assert.equal(job(content, 'drover-probe.service', 'stop'), 'yes');
    assert.equal(job(content, 'nginx.service', 'stop'), 'no');
  });
});

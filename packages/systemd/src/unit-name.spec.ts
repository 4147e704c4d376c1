import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { normaliseUnitName, UNIT_TYPES, unitNameProblem } from './unit-name';

const ALLOWED = /^[A-Za-z0-9:_.\\@-]$/;

describe('unitNameProblem', () => {
  it('accepts ordinary, template, instance and escaped unit names', () => {
    for (const name of [
      'nginx.service',
      'getty@tty1.service',
      'foo@.service',
      'sys-devices-x\\x2dy.device',
      'a.b.timer',
      'dev-disk-by\\x2duuid-1234.swap',
      'user@1000.service',
      'systemd-fsck@dev-disk-by\\x2dlabel-root.service',
      'multi-user.target',
      'docker.socket',
      'proc-sys-fs-binfmt_misc.automount',
      'foo:bar.slice',
      'A_B.scope',
      'x.path',
    ]) {
      assert.equal(unitNameProblem(name), null, name);
    }
  });

  it('accepts every known unit type suffix', () => {
    for (const type of UNIT_TYPES) {
      assert.equal(unitNameProblem(`unit.${type}`), null, type);
    }
  });

  it('deliberately rejects a leading "-", even the root mount -.mount that systemd allows', () => {
    assert.equal(unitNameProblem('-.mount'), 'must not start with "-"');
    assert.equal(unitNameProblem('-H host'), 'must not start with "-"');
    assert.equal(unitNameProblem('--now.service'), 'must not start with "-"');
  });

  it('accepts names of exactly 255 characters and rejects 256', () => {
    const name255 = `${'a'.repeat(247)}.service`;
    assert.equal(name255.length, 255);
    assert.equal(unitNameProblem(name255), null);
    assert.equal(unitNameProblem(`a${name255}`), 'must be 1-255 characters');
  });

  it('rejects the empty name', () => {
    assert.equal(unitNameProblem(''), 'must be 1-255 characters');
  });

  it('rejects names that could inject into a shell or a path', () => {
    for (const name of [
      'nginx; reboot',
      'nginx.service; reboot',
      '$(id).service',
      '`id`.service',
      '../x.service',
      'x/y.service',
      'a b.service',
      'nginx.service\n',
      'nginx.service\nreboot.service',
      'nginx.service\0',
      "nginx'.service",
      'nginx|x.service',
      'nginx&.service',
      '*.service',
    ]) {
      assert.notEqual(unitNameProblem(name), null, JSON.stringify(name));
    }
  });

  it('rejects names without a known type suffix', () => {
    for (const name of ['nginx', 'nginx.exe', 'nginx.', 'nginx.Service', 'nginx.service.bak', '.service', 'service']) {
      assert.match(unitNameProblem(name) ?? 'accepted', /must be a systemd unit name/, name);
    }
  });

  it('rejects misplaced or repeated @', () => {
    for (const name of ['@.service', '@tty1.service', 'a@b@c.service', 'getty.service@tty1']) {
      assert.notEqual(unitNameProblem(name), null, name);
    }
  });

  it('rejects non-ASCII names', () => {
    for (const name of ['ngïnx.service', 'nginx.sérvice', 'сервис.service', 'nginx\u200b.service', '😀.service']) {
      assert.notEqual(unitNameProblem(name), null, name);
    }
  });

  describe('properties', () => {
    it('rejects any string containing a character outside [A-Za-z0-9:_.\\@-]', () => {
      const anyChar = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));
      const outside = anyChar.filter((char) => !ALLOWED.test(char));
      const text = fc.array(anyChar, { maxLength: 20 }).map((chars) => chars.join(''));
      fc.assert(
        fc.property(
          text,
          outside,
          text,
          fc.constantFrom('', ...UNIT_TYPES.map((t) => `.${t}`)),
          (a, bad, b, suffix) => {
            assert.notEqual(unitNameProblem(`${a}${bad}${b}${suffix}`), null);
          },
        ),
        { numRuns: 400 },
      );
    });

    it('accepts any allowed prefix not starting with "-", with or without an instance, plus a type', () => {
      const body = fc.stringMatching(/^[A-Za-z0-9:_.\\][A-Za-z0-9:_.\\-]{0,40}$/);
      const instance = fc.option(fc.stringMatching(/^[A-Za-z0-9:_.\\-]{0,40}$/), { nil: undefined });
      fc.assert(
        fc.property(body, instance, fc.constantFrom(...UNIT_TYPES), (prefix, inst, type) => {
          const name = inst === undefined ? `${prefix}.${type}` : `${prefix}@${inst}.${type}`;
          assert.equal(unitNameProblem(name), null, name);
        }),
        { numRuns: 300 },
      );
    });
  });
});

describe('normaliseUnitName', () => {
  // Each pair is what `systemctl show -p Id -- NAME` printed on a fleet host (systemd 252).
  const SYSTEMCTL_READS: [string, string][] = [
    ['nginx', 'nginx.service'],
    ['a.b', 'a.b.service'],
    ['foo@bar', 'foo@bar.service'],
    ['foo@', 'foo@.service'],
    ['nginx.Service', 'nginx.Service.service'],
    ['nginx.exe', 'nginx.exe.service'],
    ['nginx.', 'nginx..service'],
    ['nginx.service.bak', 'nginx.service.bak.service'],
    ['.service', '.service.service'],
    ['service', 'service.service'],
    ['x.socket', 'x.socket'],
    ['nginx.service', 'nginx.service'],
  ];

  it('reads a name as systemctl does: .service appended unless systemd takes it as it is', () => {
    for (const [name, unit] of SYSTEMCTL_READS) assert.equal(normaliseUnitName(name), unit, name);
  });

  it('keeps every name with a known type suffix, and appends to one longer than systemd allows', () => {
    for (const type of UNIT_TYPES) assert.equal(normaliseUnitName(`getty@tty1.${type}`), `getty@tty1.${type}`);
    const long = `${'a'.repeat(249)}.socket`;
    assert.equal(normaliseUnitName(long), `${long}.service`);
    assert.notEqual(unitNameProblem(normaliseUnitName(long)), null);
    assert.equal(normaliseUnitName(''), '', 'systemctl refuses the empty name; it stays empty and invalid');
  });

  it('only ever appends .service, and reads every name drover accepts as that name itself', () => {
    const unitChar = fc.constantFrom(...'abz09:_.\\@-'.split(''));
    const name = fc.string({ unit: fc.oneof(unitChar, fc.string({ maxLength: 1 })), maxLength: 30 });
    fc.assert(
      fc.property(name, (text) => {
        const unit = normaliseUnitName(text);
        assert.ok(unit === text || unit === `${text}.service`);
        if (unitNameProblem(unit) === null) assert.equal(normaliseUnitName(unit), unit);
      }),
      { numRuns: 2_000 },
    );
  });
});

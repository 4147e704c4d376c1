import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { daemonReloadEffect, interlock, interlockNote } from './daemon-reload-interlock';
import type { UnitSnapshot } from '@drover/protocol';

function unit(needDaemonReload: boolean): UnitSnapshot {
  return {
    id: 'nginx.service',
    loadState: 'loaded',
    activeState: 'active',
    subState: 'running',
    mainPid: 10,
    nRestarts: 0,
    unitFileState: 'enabled',
    needDaemonReload,
    activeEnterTimestamp: null,
    activeEnterTimestampMonotonic: '1',
    invocationId: 'a',
    canReload: true,
    canStart: true,
    canStop: true,
    result: 'success',
    description: null,
    fragmentPath: '/etc/systemd/system/nginx.service',
    dropInPaths: ['/etc/systemd/system/nginx.service.d/limits.conf'],
  };
}

describe('the daemon-reload interlock', () => {
  it('refuses a verb that runs the definition of a changed unit, naming the unit and its files', () => {
    const decision = interlock('refuse', 'restart', 'nginx.service', unit(true));
    assert.equal(decision.kind, 'refuse');
    assert.match(
      decision.kind === 'refuse' ? decision.reason : '',
      /^not acted on: nginx\.service changed on disk since systemd loaded it \(NeedDaemonReload=yes; its definition: unit file \/etc\/systemd\/system\/nginx\.service; drop-ins \/etc\/systemd\/system\/nginx\.service\.d\/limits\.conf\), so restart would run its old definition/,
    );
  });

  it('reloads first under auto, acts under ignore, and never stands in the way of an unchanged unit', () => {
    assert.deepEqual(interlock('auto', 'reload', 'nginx.service', unit(true)), { kind: 'reload-first' });
    assert.deepEqual(interlock('ignore', 'restart', 'nginx.service', unit(true)), { kind: 'act' });
    for (const policy of ['refuse', 'auto', 'ignore'] as const) {
      assert.deepEqual(interlock(policy, 'restart', 'nginx.service', unit(false)), { kind: 'act' });
      assert.deepEqual(interlock(policy, 'restart', 'nginx.service', null), { kind: 'act' });
    }
  });

  it('lets verbs that do not run the definition through (stop, enable, mask...)', () => {
    for (const verb of ['stop', 'enable', 'disable', 'mask', 'unmask', 'status'] as const) {
      assert.deepEqual(interlock('refuse', verb, 'nginx.service', unit(true)), { kind: 'act' });
    }
  });

  it('notes a reload it ran, and warns when ignore let the old definition run', () => {
    assert.match(interlockNote('auto', 'restart', unit(true), true) ?? '', /^daemon-reload run first/);
    assert.match(interlockNote('ignore', 'restart', unit(true), false) ?? '', /restart ran its old definition/);
    assert.equal(interlockNote('ignore', 'stop', unit(true), false), null);
    assert.equal(interlockNote('refuse', 'restart', unit(false), false), null);
  });
});

describe('daemonReloadEffect', () => {
  it('says what each policy does to the hosts needing daemon-reload', () => {
    assert.match(daemonReloadEffect('refuse', 'restart', 2), /^the tasks on 2 host\(s\) .* will fail before acting/);
    assert.match(daemonReloadEffect('auto', 'restart', 1), /^daemon-reload runs first on 1 host\(s\)/);
    assert.match(daemonReloadEffect('ignore', 'reload', 3), /^reload runs the old definition on 3 host\(s\)/);
  });

  it('says nothing happens to them for verbs that do not run the definition, or when there are none', () => {
    assert.match(daemonReloadEffect('refuse', 'stop', 2), /^stop does not run the unit's definition/);
    assert.equal(daemonReloadEffect('refuse', 'restart', 0), 'no host needs daemon-reload (as last discovered)');
  });
});

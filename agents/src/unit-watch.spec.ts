import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageType, Variant } from '@particle/dbus-next';
import { changeOf, dueForListing, mayHaveChanged, SIGNAL_MATCH_RULES, stillDiffers, withSignal } from './unit-watch';

const signal = (fields: { path?: string; interface: string; member: string; body: unknown[] }) => ({
  type: MessageType.SIGNAL,
  path: fields.path ?? '/org/freedesktop/systemd1',
  interface: fields.interface,
  member: fields.member,
  body: fields.body,
});

/** Whether a signal from systemd passes a match rule (the keys SIGNAL_MATCH_RULES uses). */
function passes(rule: string, message: ReturnType<typeof signal>): boolean {
  return [...rule.matchAll(/(\w+)='([^']*)'/g)].every(([, key, value]) => {
    if (key === 'type') return value === 'signal';
    if (key === 'sender') return value === 'org.freedesktop.systemd1';
    if (key === 'arg0') return message.body[0] === value;
    return message[key as 'interface' | 'member'] === value;
  });
}

describe('SIGNAL_MATCH_RULES', () => {
  const unitPath = '/org/freedesktop/systemd1/unit/nginx_2eservice';
  const properties = (iface: string) =>
    signal({
      path: unitPath,
      interface: 'org.freedesktop.DBus.Properties',
      member: 'PropertiesChanged',
      body: [iface, {}, []],
    });
  const manager = (member: string, body: unknown[] = []) =>
    signal({ interface: 'org.freedesktop.systemd1.Manager', member, body });

  it('let through every signal changeOf reads', () => {
    const read = [
      properties('org.freedesktop.systemd1.Unit'),
      manager('UnitNew', ['nginx.service', unitPath]),
      manager('UnitRemoved', ['nginx.service', unitPath]),
      manager('UnitFilesChanged'),
      manager('Reloading', [true]),
    ];
    for (const message of read) {
      assert.notEqual(changeOf(message), null, message.member);
      assert.ok(
        SIGNAL_MATCH_RULES.some((rule) => passes(rule, message)),
        `${message.member} is matched`,
      );
    }
  });

  it('keep out the signals changeOf drops, which a restart sends as many of', () => {
    const dropped = [
      properties('org.freedesktop.systemd1.Service'),
      properties('org.freedesktop.systemd1.Job'),
      manager('JobNew', [1, '/org/freedesktop/systemd1/job/1', 'nginx.service']),
      manager('JobRemoved', [1, '/org/freedesktop/systemd1/job/1', 'nginx.service', 'done']),
    ];
    for (const message of dropped) {
      assert.equal(changeOf(message), null, message.member);
      assert.ok(!SIGNAL_MATCH_RULES.some((rule) => passes(rule, message)), `${message.member} is not matched`);
    }
  });
});

describe('changeOf', () => {
  it('names the unit whose properties changed, for the Unit interface only', () => {
    const path = '/org/freedesktop/systemd1/unit/nginx_2eservice';
    assert.deepEqual(
      changeOf(
        signal({
          path,
          interface: 'org.freedesktop.DBus.Properties',
          member: 'PropertiesChanged',
          body: [
            'org.freedesktop.systemd1.Unit',
            {
              ActiveState: new Variant('s', 'deactivating'),
              SubState: new Variant('s', 'stop-sigterm'),
              Job: new Variant('(uo)', [2509, '/org/freedesktop/systemd1/job/2509']),
            },
            [],
          ],
        }),
      ),
      {
        unit: 'nginx.service',
        kind: 'properties',
        activeState: 'deactivating',
        subState: 'stop-sigterm',
        jobPending: true,
      },
    );
    const done = changeOf(
      signal({
        path,
        interface: 'org.freedesktop.DBus.Properties',
        member: 'PropertiesChanged',
        body: ['org.freedesktop.systemd1.Unit', { Job: new Variant('(uo)', [0, '/']) }, []],
      }),
    );
    assert.equal(done && 'jobPending' in done ? done.jobPending : null, false, 'job id 0: no job any more');
    assert.equal(
      changeOf(
        signal({
          path,
          interface: 'org.freedesktop.DBus.Properties',
          member: 'PropertiesChanged',
          body: ['org.freedesktop.systemd1.Service', {}, []],
        }),
      ),
      null,
    );
  });

  it('names units that appear or go, and lists everything when unit files change or systemd reloads', () => {
    const manager = 'org.freedesktop.systemd1.Manager';
    assert.deepEqual(changeOf(signal({ interface: manager, member: 'UnitNew', body: ['a.service', '/x'] })), {
      unit: 'a.service',
      kind: 'presence',
    });
    assert.deepEqual(changeOf(signal({ interface: manager, member: 'UnitRemoved', body: ['a.service', '/x'] })), {
      unit: 'a.service',
      kind: 'presence',
    });
    assert.deepEqual(changeOf(signal({ interface: manager, member: 'UnitFilesChanged', body: [] })), { all: true });
    assert.deepEqual(changeOf(signal({ interface: manager, member: 'Reloading', body: [true] })), { all: true });
    assert.equal(changeOf(signal({ interface: manager, member: 'JobNew', body: [1, '/j', 'a.service'] })), null);
    assert.equal(
      changeOf({
        ...signal({ interface: manager, member: 'UnitNew', body: ['a.service'] }),
        type: MessageType.METHOD_CALL,
      }),
      null,
    );
  });
});

describe('mayHaveChanged', () => {
  const notLoaded = { loadState: 'not-loaded', activeState: 'inactive', subState: 'dead' };
  const running = { loadState: 'loaded', activeState: 'active', subState: 'running' };

  it('ignores the loading and unloading of a unit last listed as not loaded: a read loads it (the loop it would start)', () => {
    assert.equal(mayHaveChanged({ unit: 'a.service', kind: 'presence' }, notLoaded), false);
    assert.equal(mayHaveChanged({ unit: 'a.service', kind: 'presence' }, running), true, 'a loaded unit going away');
    assert.equal(mayHaveChanged({ unit: 'new.service', kind: 'presence' }, undefined), true, 'a unit never listed');
  });

  it('counts a state signal only when its ActiveState or SubState differs from the one listed', () => {
    const signal = (activeState?: string, subState?: string) =>
      ({ unit: 'a.service', kind: 'properties', activeState, subState }) as const;
    assert.equal(mayHaveChanged(signal('active', 'running'), running), false, 'dependencies or timestamps only');
    assert.equal(mayHaveChanged(signal('inactive', 'dead'), notLoaded), false);
    assert.equal(mayHaveChanged(signal('deactivating', 'stop-sigterm'), running), true);
    assert.equal(mayHaveChanged(signal('active', 'exited'), running), true);
    assert.equal(mayHaveChanged(signal('activating', 'start'), notLoaded), true, 'started');
    assert.equal(mayHaveChanged(signal(), running), true, 'a signal without the state: list to be sure');
    assert.equal(mayHaveChanged(signal('active', 'running'), undefined), true, 'a unit never listed');
  });
});

const running = { loadState: 'loaded', activeState: 'active', subState: 'running' };
const state = (activeState?: string, subState?: string) =>
  ({ unit: 'a.service', kind: 'properties', activeState, subState }) as const;
/** A unit's signals, the first at `since` (ms). */
const signalsFrom = (since: number, ...signals: Parameters<typeof withSignal>[1][]) =>
  signals.reduce<ReturnType<typeof withSignal> | undefined>(
    (change, signal, index) => withSignal(change, signal, since + index),
    undefined,
  )!;
const after = (...signals: Parameters<typeof withSignal>[1][]) => signalsFrom(0, ...signals);

describe('withSignal', () => {
  it('keeps when the first signal came', () => {
    assert.equal(signalsFrom(1_000, state('deactivating', 'stop-sigterm'), state('inactive', 'dead')).since, 1_000);
  });
});

describe('dueForListing', () => {
  const listed = new Map([
    ['a.service', running],
    ['b.service', running],
  ]);

  it('holds a unit in transition, and lists it once its transition ended elsewhere than listed', () => {
    const midRestart = new Map([['a.service', signalsFrom(1_000, state('deactivating', 'stop-sigterm'))]]);
    assert.deepEqual(dueForListing(midRestart, listed, 1_300), { names: [], held: ['a.service'], heldUntil: 6_000 });
    const stopped = new Map([
      ['a.service', signalsFrom(1_000, state('deactivating', 'stop-sigterm'), state('inactive', 'dead'))],
    ]);
    assert.deepEqual(dueForListing(stopped, listed, 1_300), { names: ['a.service'], held: [], heldUntil: null });
  });

  it("holds a unit between its restart's stop and its start (inactive, its job still running)", () => {
    const job = (jobPending: boolean, activeState: string, subState: string) =>
      ({ unit: 'a.service', kind: 'properties', activeState, subState, jobPending }) as const;
    const betweenStopAndStart = new Map([
      ['a.service', signalsFrom(1_000, job(true, 'deactivating', 'stop-sigterm'), job(true, 'inactive', 'dead'))],
    ]);
    assert.deepEqual(dueForListing(betweenStopAndStart, listed, 1_400), {
      names: [],
      held: ['a.service'],
      heldUntil: 6_000,
    });
    const restarted = new Map([
      ['a.service', signalsFrom(1_000, job(true, 'inactive', 'dead'), job(false, 'active', 'running'))],
    ]);
    assert.deepEqual(dueForListing(restarted, listed, 1_400), { names: [], held: [], heldUntil: null });
  });

  it('lists nothing for a restart that ended running, as listed, however long it took', () => {
    const restarted = new Map([
      [
        'a.service',
        signalsFrom(
          1_000,
          state('deactivating', 'stop-sigterm'),
          state('inactive', 'dead'),
          state('activating', 'start'),
          state('active', 'running'),
        ),
      ],
    ]);
    assert.deepEqual(dueForListing(restarted, listed, 3_000), { names: [], held: [], heldUntil: null });
  });

  it('lists a unit still in transition once the hold is over, and the others meanwhile', () => {
    const slow = new Map([
      ['a.service', signalsFrom(1_000, state('activating', 'start'))],
      ['b.service', signalsFrom(1_000, state('failed', 'failed'))],
    ]);
    assert.deepEqual(dueForListing(slow, listed, 2_000), {
      names: ['b.service'],
      held: ['a.service'],
      heldUntil: 6_000,
    });
    assert.deepEqual(dueForListing(slow, listed, 6_000), {
      names: ['a.service', 'b.service'],
      held: [],
      heldUntil: null,
    });
  });
});

describe('stillDiffers', () => {
  it('lists a restarted unit no more once it runs again as listed', () => {
    const restart = after(
      state('deactivating', 'stop-sigterm'),
      state('inactive', 'dead'),
      state('activating', 'start'),
      state('active', 'running'),
    );
    assert.equal(stillDiffers(restart, running), false);
  });

  it('lists a unit that ended in another state, or still moves, or whose state a signal did not carry', () => {
    assert.equal(stillDiffers(after(state('deactivating', 'stop-sigterm'), state('inactive', 'dead')), running), true);
    assert.equal(stillDiffers(after(state('inactive', 'dead'), state('activating', 'start')), running), true);
    assert.equal(stillDiffers(after(state('inactive', 'dead'), state()), running), true, 'a signal without the state');
    assert.equal(
      stillDiffers(after(state('inactive', 'dead'), state('active')), running),
      true,
      'the SubState last signalled (dead) is kept when a later signal carries only ActiveState',
    );
    assert.equal(stillDiffers(after(state('active', 'running')), undefined), true, 'a unit never listed');
  });

  it('lists a unit that was loaded or unloaded in between, whatever state it ended in', () => {
    const reloaded = after(
      state('inactive', 'dead'),
      { unit: 'a.service', kind: 'presence' },
      state('active', 'running'),
    );
    assert.equal(stillDiffers(reloaded, running), true);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Turns } from './turns';

/** Lets every pending promise callback run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('Turns', () => {
  it('lets `limit` holders in at once and the next ones in arrival order as turns are given back', async () => {
    const turns = new Turns(2);
    const started: number[] = [];
    const leaves = new Map<number, () => void>();
    for (const id of [1, 2, 3, 4, 5]) {
      void turns.enter().then((leave) => {
        started.push(id);
        leaves.set(id, leave);
      });
    }
    await settle();
    assert.deepEqual(started, [1, 2]);
    assert.deepEqual(turns.stats, { running: 2, waiting: 3 });

    leaves.get(2)!();
    await settle();
    assert.deepEqual(started, [1, 2, 3]);
    assert.deepEqual(turns.stats, { running: 2, waiting: 2 });

    leaves.get(1)!();
    leaves.get(3)!();
    await settle();
    assert.deepEqual(started, [1, 2, 3, 4, 5]);
    assert.deepEqual(turns.stats, { running: 2, waiting: 0 });
  });

  it('counts a turn given back twice once', async () => {
    const turns = new Turns(1);
    const first = await turns.enter();
    let secondStarted = false;
    const second = turns.enter().then((leave) => {
      secondStarted = true;
      return leave;
    });
    first();
    first();
    await settle();
    assert.equal(secondStarted, true);
    assert.deepEqual(turns.stats, { running: 1, waiting: 0 });
    (await second)();
    assert.deepEqual(turns.stats, { running: 0, waiting: 0 });
    // Free again: the next one gets its turn at once.
    const third = await turns.enter();
    assert.deepEqual(turns.stats, { running: 1, waiting: 0 });
    third();
  });

  it('lets a waiter give up: it leaves the line, and the turns it waited for go to the next', async () => {
    const turns = new Turns(1);
    const first = await turns.enter();
    const impatient = new AbortController();
    const givingUp = turns.enter(impatient.signal);
    let patientStarted = false;
    const patient = turns.enter().then((leave) => {
      patientStarted = true;
      return leave;
    });
    await settle();
    assert.deepEqual(turns.stats, { running: 1, waiting: 2 });
    impatient.abort(new Error('waited too long'));
    await assert.rejects(givingUp, /waited too long/);
    assert.deepEqual(turns.stats, { running: 1, waiting: 1 });
    first();
    await settle();
    assert.equal(patientStarted, true);
    (await patient)();
    assert.deepEqual(turns.stats, { running: 0, waiting: 0 });
    // A signal that already aborted does not wait at all.
    const held = await turns.enter();
    await assert.rejects(turns.enter(AbortSignal.abort(new Error('no wait'))), /no wait/);
    assert.deepEqual(turns.stats, { running: 1, waiting: 0 });
    held();
  });
});

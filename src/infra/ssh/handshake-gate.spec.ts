import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HandshakeGate } from './handshake-gate';

/** Lets every pending promise callback run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('HandshakeGate', () => {
  it('lets `limit` handshakes run at once and the next ones in arrival order as turns are given back', async () => {
    const gate = new HandshakeGate(2);
    const started: number[] = [];
    const leaves = new Map<number, () => void>();
    for (const id of [1, 2, 3, 4, 5]) {
      void gate.enter().then((leave) => {
        started.push(id);
        leaves.set(id, leave);
      });
    }
    await settle();
    assert.deepEqual(started, [1, 2]);
    assert.deepEqual(gate.stats, { running: 2, waiting: 3 });

    leaves.get(2)!();
    await settle();
    assert.deepEqual(started, [1, 2, 3]);
    assert.deepEqual(gate.stats, { running: 2, waiting: 2 });

    leaves.get(1)!();
    leaves.get(3)!();
    await settle();
    assert.deepEqual(started, [1, 2, 3, 4, 5]);
    assert.deepEqual(gate.stats, { running: 2, waiting: 0 });
  });

  it('counts a turn given back twice once', async () => {
    const gate = new HandshakeGate(1);
    const first = await gate.enter();
    let secondStarted = false;
    const second = gate.enter().then((leave) => {
      secondStarted = true;
      return leave;
    });
    first();
    first();
    await settle();
    assert.equal(secondStarted, true);
    assert.deepEqual(gate.stats, { running: 1, waiting: 0 });
    (await second)();
    assert.deepEqual(gate.stats, { running: 0, waiting: 0 });
    // The gate is free again: the next handshake starts at once.
    const third = await gate.enter();
    assert.deepEqual(gate.stats, { running: 1, waiting: 0 });
    third();
  });
});

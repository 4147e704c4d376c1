import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admit, blockersOf, describeOverlap, Overlap, queuedReason } from './rollout-admission';

function overlap(id: string, admissionSeq: bigint, extra: Partial<Overlap> = {}): Overlap {
  return {
    rolloutId: id,
    status: 'running',
    admissionSeq,
    hosts: ['web-1'],
    units: ['nginx.service'],
    inFlight: false,
    ...extra,
  };
}

describe('admit', () => {
  it('starts a rollout nothing overlaps, whatever it asked for', () => {
    for (const onOverlap of ['queue', 'reject', 'supersede'] as const)
      assert.deepEqual(admit(onOverlap, []), { kind: 'start' });
  });

  it('queues behind or refuses for every overlapping rollout', () => {
    const overlaps = [overlap('a', 1n), overlap('b', 2n, { status: 'queued' })];
    assert.deepEqual(admit('queue', overlaps), { kind: 'queue', blockers: overlaps });
    assert.deepEqual(admit('reject', overlaps), { kind: 'reject', blockers: overlaps });
  });

  it('supersedes the unfinished ones; a finished one with hosts in flight is only waited for', () => {
    const finishing = overlap('c', 1n, { status: 'cancelled', inFlight: true });
    const running = overlap('a', 2n);
    const queued = overlap('b', 3n, { status: 'queued' });
    assert.deepEqual(admit('supersede', [finishing, running, queued]), {
      kind: 'supersede',
      cancel: [running, queued],
    });
  });
});

describe('blockersOf', () => {
  it('keeps unfinished rollouts admitted before, and any with hosts in flight', () => {
    const earlier = overlap('a', 1n);
    const later = overlap('b', 5n, { status: 'queued' });
    const earlierFinished = overlap('c', 2n, { status: 'succeeded' });
    const laterFinishing = overlap('d', 6n, { status: 'cancelled', inFlight: true });
    assert.deepEqual(blockersOf(3n, [earlier, later, earlierFinished, laterFinishing]), [earlier, laterFinishing]);
  });
});

describe('describing overlaps', () => {
  it('names the rollout, its status, and at most three units and hosts', () => {
    const wide = overlap('a', 1n, { hosts: ['h1', 'h2', 'h3', 'h4', 'h5'] });
    assert.equal(describeOverlap(wide), 'rollout a (running; nginx.service on h1, h2, h3 and 2 more)');
    assert.equal(
      describeOverlap(overlap('b', 1n, { status: 'cancelled', inFlight: true })),
      'rollout b (cancelled, hosts in flight; nginx.service on web-1)',
    );
    assert.equal(
      queuedReason([overlap('a', 1n), overlap('b', 2n)]),
      'queued behind rollout a (running; nginx.service on web-1); rollout b (running; nginx.service on web-1): it starts when those have finished',
    );
  });
});

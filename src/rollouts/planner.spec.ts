import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  Amount,
  estimatedMinimumDurationMs,
  failureBudget,
  globLiteralBounds,
  mulberry32,
  orderHosts,
  OrderableHost,
  planBatches,
  resolvePercent,
  unavailabilityCap,
} from './planner';

const RUNS = { numRuns: 200 };

const names = (count: number) => Array.from({ length: count }, (_, index) => `h-${String(index).padStart(4, '0')}`);
const amount: fc.Arbitrary<Amount> = fc.oneof(
  fc.integer({ min: 1, max: 50 }),
  fc.integer({ min: 1, max: 100 }).map((percent) => `${percent}%`),
);
const hostNames = fc.uniqueArray(fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,11}$/), { minLength: 0, maxLength: 60 });

describe('resolvePercent', () => {
  it('keeps counts and rounds percentages of the total up, with a minimum of 1', () => {
    assert.equal(resolvePercent(7, 10), 7);
    assert.equal(resolvePercent('25%', 10), 3);
    assert.equal(resolvePercent('10%', 10), 1);
    assert.equal(resolvePercent('15%', 10), 2);
    assert.equal(resolvePercent('1%', 10), 1);
    assert.equal(resolvePercent('50%', 1), 1);
    assert.equal(resolvePercent('100%', 10), 10);
    assert.equal(resolvePercent('0%', 10), 0);
    assert.equal(resolvePercent('7%', 100), 7);
    assert.throws(() => resolvePercent('101%', 10), RangeError);
    assert.throws(() => resolvePercent('abc', 10), RangeError);
  });

  it('is the exact ceiling of percent × total / 100, at least 1 (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 0, max: 100_000 }), (percent, total) => {
        const hosts = resolvePercent(`${percent}%`, total);
        assert.ok(hosts >= 1);
        assert.ok(hosts * 100 >= percent * total, 'covers the percentage');
        if (hosts > 1) assert.ok((hosts - 1) * 100 < percent * total, 'is the smallest count that does');
      }),
      RUNS,
    );
  });
});

describe('planBatches', () => {
  it('follows the size list, then repeats the last size: [1, "25%"] over 10 hosts is 1, 3, 3, 3', () => {
    const { batches } = planBatches(names(10), { batches: { sizes: [1, '25%'] }, cap: null });
    assert.deepEqual(
      batches.map((batch) => batch.size),
      [1, 3, 3, 3],
    );
    assert.deepEqual(batches[0], { index: 0, size: 1, hosts: ['h-0000'] });
    assert.deepEqual(batches[3]?.hosts, ['h-0007', 'h-0008', 'h-0009']);
  });

  it('cuts every batch to the cap', () => {
    const { batches } = planBatches(names(5), { batches: { size: '100%' }, cap: 2 });
    assert.deepEqual(
      batches.map((batch) => batch.size),
      [2, 2, 1],
    );
  });

  it('puts hosts already down first; they take no room under the cap while they are down', () => {
    const hosts = names(5);
    const down = new Set(['h-0001', 'h-0003']);
    // maxUnavailable 1 with 2 down: only the down ones until both were acted on, then one at a time.
    assert.deepEqual(
      planBatches(hosts, { batches: { size: 3 }, cap: 1, down }).batches.map((batch) => batch.hosts),
      [['h-0001', 'h-0003'], ['h-0000'], ['h-0002'], ['h-0004']],
    );
    // maxUnavailable 3 with 2 down: they and one more, then batches of 3.
    assert.deepEqual(
      planBatches(hosts, { batches: { size: 5 }, cap: 3, down }).batches.map((batch) => batch.hosts),
      [
        ['h-0001', 'h-0003', 'h-0000'],
        ['h-0002', 'h-0004'],
      ],
    );
    // The batch size still bounds a batch of down hosts.
    assert.deepEqual(
      planBatches(hosts, { batches: { size: 1 }, cap: 1, down }).batches.map((batch) => batch.hosts[0]),
      ['h-0001', 'h-0003', 'h-0000', 'h-0002', 'h-0004'],
    );
  });

  it('refuses a cap that admits no host', () => {
    assert.throws(() => planBatches(names(3), { batches: { size: 1 }, cap: 0 }), RangeError);
  });

  it('puts every host in exactly one batch, in order, sizes from the list then the last, never over the cap', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 200 }),
        fc.oneof(
          amount.map((size) => ({ size })),
          fc.array(amount, { minLength: 1, maxLength: 5 }).map((sizes) => ({ sizes })),
        ),
        fc.option(fc.integer({ min: 1, max: 40 }), { nil: null }),
        (count, spec, cap) => {
          const hosts = names(count);
          const { batches } = planBatches(hosts, { batches: spec, cap });
          assert.deepEqual(
            batches.flatMap((batch) => batch.hosts),
            hosts,
          );
          const sizes = 'sizes' in spec ? spec.sizes : [spec.size];
          batches.forEach((batch, index) => {
            assert.equal(batch.index, index);
            assert.equal(batch.size, batch.hosts.length);
            assert.ok(batch.size >= 1);
            const wanted = resolvePercent(sizes[Math.min(index, sizes.length - 1)]!, count);
            const expected = Math.min(wanted, cap ?? wanted);
            if (index < batches.length - 1) assert.equal(batch.size, expected);
            else assert.ok(batch.size <= expected, 'the last batch takes what is left');
          });
        },
      ),
      RUNS,
    );
  });
});

describe('failureBudget', () => {
  it('aborts when failures EXCEED maxFailures: 0 aborts at the first, 1 at the second', () => {
    assert.deepEqual(failureBudget(10, 0), { maxFailures: 0, abortsAtFailure: 1 });
    assert.deepEqual(failureBudget(10, 1), { maxFailures: 1, abortsAtFailure: 2 });
    assert.deepEqual(failureBudget(10, '10%'), { maxFailures: 1, abortsAtFailure: 2 });
    assert.deepEqual(failureBudget(10, '11%'), { maxFailures: 2, abortsAtFailure: 3 });
    assert.deepEqual(failureBudget(10, '0%'), { maxFailures: 0, abortsAtFailure: 1 });
  });

  it('tolerates exactly maxFailures failed hosts (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.oneof(
          fc.nat(50),
          fc.nat(100).map((p) => `${p}%`),
        ),
        (total, max) => {
          const budget = failureBudget(total, max);
          const aborts = (failed: number) => failed > budget.maxFailures;
          assert.equal(aborts(budget.maxFailures), false);
          assert.equal(aborts(budget.abortsAtFailure), true);
          assert.equal(budget.abortsAtFailure, budget.maxFailures + 1);
        },
      ),
      RUNS,
    );
  });
});

describe('unavailabilityCap', () => {
  it('subtracts units already down from maxUnavailable, and is unlimited without it', () => {
    assert.deepEqual(unavailabilityCap(2, 10, 1), { allowed: 2, alreadyDown: 1, effectiveBatchCap: 1 });
    assert.deepEqual(unavailabilityCap('20%', 10, 2), { allowed: 2, alreadyDown: 2, effectiveBatchCap: 0 });
    assert.deepEqual(unavailabilityCap(undefined, 10, 4), { allowed: null, alreadyDown: 4, effectiveBatchCap: null });
  });
});

describe('orderHosts', () => {
  const host = (name: string, labels: Record<string, string> = {}): OrderableHost => ({ name, labels });

  it('orders by name in code-unit order, whatever the input order', () => {
    const ordered = orderHosts([host('b'), host('B'), host('a10'), host('a9')], { by: 'name' });
    assert.deepEqual(
      ordered.map((entry) => entry.name),
      ['B', 'a10', 'a9', 'b'],
    );
  });

  it('shuffles into a permutation that depends only on the seed and the set of hosts', () => {
    fc.assert(
      fc.property(hostNames, fc.nat(0xffff_ffff), (list, seed) => {
        const hosts = list.map((name) => host(name));
        const once = orderHosts(hosts, { by: 'shuffle', seed }).map((entry) => entry.name);
        assert.deepEqual([...once].sort(), [...list].sort());
        const reversed = orderHosts([...hosts].reverse(), { by: 'shuffle', seed }).map((entry) => entry.name);
        assert.deepEqual(reversed, once);
      }),
      RUNS,
    );
  });

  it('gives a fixed order for a fixed seed (the same in every process and release)', () => {
    const ordered = orderHosts(
      names(8).map((name) => host(name)),
      { by: 'shuffle', seed: 42 },
    );
    assert.deepEqual(
      ordered.map((entry) => entry.name),
      SEED_42_ORDER,
    );
    assert.notDeepEqual(
      orderHosts(
        names(8).map((name) => host(name)),
        { by: 'shuffle', seed: 43 },
      ).map((entry) => entry.name),
      SEED_42_ORDER,
    );
  });

  it('mulberry32 yields numbers in [0, 1) and different seeds differ', () => {
    const random = mulberry32(7);
    const values = Array.from({ length: 1000 }, () => random());
    assert.ok(values.every((value) => value >= 0 && value < 1));
    assert.notEqual(mulberry32(1)(), mulberry32(2)());
  });

  it('orders by label rank, then hosts without a ranked value, each group by name', () => {
    const hosts = [
      host('d', { zone: 'b' }),
      host('c', { zone: 'a' }),
      host('a', {}),
      host('e', { zone: 'x' }),
      host('b', { zone: 'b' }),
      host('f', { zone: 'a' }),
    ];
    const ordered = orderHosts(hosts, { by: 'label', key: 'zone', ranks: ['a', 'b'] });
    assert.deepEqual(
      ordered.map((entry) => entry.name),
      ['c', 'f', 'b', 'd', 'a', 'e'],
    );
  });

  it('label rank order is a permutation with non-decreasing ranks and names within a rank (property)', () => {
    const values = ['a', 'b', 'c', 'd'];
    fc.assert(
      fc.property(
        hostNames.chain((list) =>
          fc.tuple(
            fc.constant(list),
            fc.array(fc.option(fc.constantFrom(...values)), { minLength: list.length, maxLength: list.length }),
          ),
        ),
        fc.uniqueArray(fc.constantFrom(...values), { minLength: 1 }),
        ([list, zones], ranks) => {
          const hosts = list.map((name, index) => host(name, zones[index] ? { zone: zones[index] } : {}));
          const ordered = orderHosts(hosts, { by: 'label', key: 'zone', ranks });
          assert.deepEqual(ordered.map((entry) => entry.name).sort(), [...list].sort());
          const rank = (entry: OrderableHost) => {
            const index = ranks.indexOf(entry.labels.zone ?? '');
            return index === -1 ? ranks.length : index;
          };
          for (let i = 1; i < ordered.length; i += 1) {
            const [previous, current] = [ordered[i - 1]!, ordered[i]!];
            assert.ok(rank(previous) <= rank(current));
            if (rank(previous) === rank(current)) assert.ok(previous.name < current.name);
          }
        },
      ),
      RUNS,
    );
  });
});

describe('estimatedMinimumDurationMs', () => {
  it('counts each batch healthy for the minimum time and a pause between batches', () => {
    assert.equal(estimatedMinimumDurationMs(4, 10_000, 5_000), 55_000);
    assert.equal(estimatedMinimumDurationMs(1, 10_000, 5_000), 10_000);
    assert.equal(estimatedMinimumDurationMs(0, 10_000, 5_000), 0);
  });
});

describe('globLiteralBounds', () => {
  it('takes the literal prefix (cut before LIKE-special characters) and the type suffix', () => {
    assert.deepEqual(globLiteralBounds('api-*.service'), { prefix: 'api-', suffix: '.service' });
    assert.deepEqual(globLiteralBounds('my_app-?.socket'), { prefix: 'my', suffix: '.socket' });
    assert.deepEqual(globLiteralBounds('dev-x\\x2d*.mount'), { prefix: 'dev-x', suffix: '.mount' });
    assert.deepEqual(globLiteralBounds('*.service'), { prefix: '', suffix: '.service' });
  });
});

/** Pinned: a change here would reorder every seeded rollout, so it is one on purpose. */
const SEED_42_ORDER = ['h-0002', 'h-0007', 'h-0001', 'h-0000', 'h-0006', 'h-0005', 'h-0003', 'h-0004'];

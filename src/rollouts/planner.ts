/**
 * The arithmetic of a rollout, as pure functions: the order hosts are acted in, how they are cut
 * into batches, and what percentages and budgets mean in hosts. The plan endpoint and the rollout
 * runner both use these, so a dry run shows exactly what a run will do.
 */

/** A number of hosts, or a whole-number percentage of the rollout's hosts written "N%". */
export type Amount = number | string;

export type HostOrder =
  { by: 'name' } | { by: 'shuffle'; seed: number } | { by: 'label'; key: string; ranks: readonly string[] };

export interface OrderableHost {
  name: string;
  labels: Record<string, string>;
}

export interface BatchSizes {
  size?: Amount | undefined;
  sizes?: readonly Amount[] | undefined;
}

export interface Batch {
  index: number;
  size: number;
  hosts: string[];
}

export interface FailureBudget {
  maxFailures: number;
  abortsAtFailure: number;
}

export interface UnavailabilityCap {
  /** maxUnavailable in hosts; null when not limited. */
  allowed: number | null;
  alreadyDown: number;
  /** How many hosts whose unit is up may go down while those already down are; null when not limited. */
  effectiveBatchCap: number | null;
}

const PERCENT = /^(\d{1,3})%$/;

/**
 * An amount in hosts: a count as it is; "N%" of `total` rounded up, and at least 1 unless N is 0
 * (so "1%" of 10 hosts is 1 and "25%" of 10 is 3). Integer arithmetic, no float rounding.
 */
export function resolvePercent(value: Amount, total: number): number {
  if (typeof value === 'number') return value;
  const match = PERCENT.exec(value);
  const percent = Number(match?.[1]);
  if (!match || percent > 100) throw new RangeError(`'${value}' is not a percentage from 0% to 100%`);
  if (percent === 0) return 0;
  return Math.max(1, Math.floor((percent * total + 99) / 100));
}

/** Code-unit order, so names sort the same whatever the database's or the process's locale. */
function compareNames(a: OrderableHost, b: OrderableHost): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * mulberry32: a small, well-distributed 32-bit PRNG. Its output depends only on the seed (not on
 * Math.random or the platform), so a seed gives the same order in every process and release.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * The hosts in the order a rollout acts on them. Deterministic: a shuffle starts from the hosts
 * sorted by name (not the order they were read in) and is a Fisher–Yates driven by mulberry32.
 */
export function orderHosts<H extends OrderableHost>(hosts: readonly H[], order: HostOrder): H[] {
  const byName = [...hosts].sort(compareNames);
  switch (order.by) {
    case 'name':
      return byName;
    case 'shuffle': {
      const random = mulberry32(order.seed);
      for (let i = byName.length - 1; i > 0; i -= 1) {
        const j = Math.floor(random() * (i + 1));
        [byName[i], byName[j]] = [byName[j] as H, byName[i] as H];
      }
      return byName;
    }
    case 'label': {
      const rankOf = new Map(order.ranks.map((value, index) => [value, index]));
      const rank = (host: H) => {
        const value = Object.hasOwn(host.labels, order.key) ? host.labels[order.key] : undefined;
        return (value === undefined ? undefined : rankOf.get(value)) ?? order.ranks.length;
      };
      // Array.prototype.sort is stable, so equal ranks keep the name order.
      return byName.sort((a, b) => rank(a) - rank(b));
    }
  }
}

/** The unavailability limit at the start of a rollout, counting units already down. */
export function unavailabilityCap(
  maxUnavailable: Amount | undefined,
  total: number,
  alreadyDown: number,
): UnavailabilityCap {
  if (maxUnavailable === undefined) return { allowed: null, alreadyDown, effectiveBatchCap: null };
  const allowed = resolvePercent(maxUnavailable, total);
  return { allowed, alreadyDown, effectiveBatchCap: allowed - alreadyDown };
}

/**
 * Cuts ordered hosts into batches: the sizes in turn, the last repeating until every host is in
 * one, each at most `cap` hosts (the unavailability limit). Every host lands in exactly one batch.
 * Hosts in `down` (their unit is not active already) go first, and take no room under the cap
 * while they are down: acting on them cannot take anything more down. So a batch is cut to the
 * cap minus the hosts still down that no batch took yet, plus those it takes; the rest keep their
 * order. `cap` must be at least 1: a rollout that may take no host down cannot start at all.
 */
export function planBatches(
  hosts: readonly string[],
  strategy: { batches: BatchSizes; cap: number | null; down?: ReadonlySet<string> | undefined },
): { batches: Batch[] } {
  const { batches: spec, cap } = strategy;
  const down = strategy.down ?? new Set<string>();
  if (cap !== null && cap < 1) throw new RangeError(`a batch cap of ${cap} admits no host`);
  const sizes = spec.sizes ?? (spec.size === undefined ? [] : [spec.size]);
  const last = sizes[sizes.length - 1];
  if (last === undefined) throw new RangeError('no batch size given');
  const ordered = [...hosts.filter((host) => down.has(host)), ...hosts.filter((host) => !down.has(host))];
  const downCount = ordered.length - hosts.filter((host) => !down.has(host)).length;
  const batches: Batch[] = [];
  let next = 0;
  while (next < ordered.length) {
    const wanted = resolvePercent(sizes[batches.length] ?? last, ordered.length);
    if (wanted < 1) throw new RangeError('a batch size must be at least 1');
    const downLeft = Math.max(0, downCount - next);
    const room = cap === null ? wanted : Math.max(0, cap - downLeft) + downLeft;
    const size = Math.min(wanted, room, ordered.length - next);
    batches.push({ index: batches.length, size, hosts: ordered.slice(next, next + size) });
    next += size;
  }
  return { batches };
}

/** The failure budget in hosts: the rollout aborts when failed hosts EXCEED maxFailures. */
export function failureBudget(total: number, maxFailures: Amount): FailureBudget {
  const tolerated = resolvePercent(maxFailures, total);
  return { maxFailures: tolerated, abortsAtFailure: tolerated + 1 };
}

/** A lower bound of a rollout's duration: each batch healthy for the minimum time, plus the pauses. */
export function estimatedMinimumDurationMs(batchCount: number, minHealthyTimeMs: number, pauseMs: number): number {
  return batchCount * minHealthyTimeMs + Math.max(0, batchCount - 1) * pauseMs;
}

const GLOB_CHARS = /[*?[]/;

/** Whether a rollout's unit is a glob (a unit name never contains `*`, `?` or `[`). */
export function isUnitGlob(unit: string): boolean {
  return GLOB_CHARS.test(unit);
}

/**
 * Literal bounds every unit a glob matches has: the text before its first wildcard, cut before
 * any character LIKE or its escaping could read specially (`%`, `_`, `\`), and its type suffix.
 * A database can prefilter with them; the glob itself still decides.
 */
export function globLiteralBounds(glob: string): { prefix: string; suffix: string } {
  const wildcard = glob.search(GLOB_CHARS);
  const literal = wildcard === -1 ? glob : glob.slice(0, wildcard);
  const special = literal.search(/[%_\\]/);
  const dot = glob.lastIndexOf('.');
  return {
    prefix: special === -1 ? literal : literal.slice(0, special),
    suffix: dot === -1 || GLOB_CHARS.test(glob.slice(dot)) ? '' : glob.slice(dot),
  };
}

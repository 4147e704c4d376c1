/**
 * The decisions of a running rollout, as pure functions: what the health gate makes of a check,
 * how big the next batch may be, when the failure budget is spent. The runner feeds them what it
 * read from the database and the hosts; the unit tests feed them edge cases.
 */
import { type UnitBaseline, type UnitSnapshot, type Verb } from '@drover/protocol';
import { type Amount, resolvePercent } from './planner';

/** What the gate reads of a unit at each check. */
export type UnitReading = Pick<UnitSnapshot, 'activeState' | 'subState' | 'mainPid' | 'nRestarts'>;

/** Verbs after which the unit must be running; the others only must not change state. */
const RUNNING_VERBS: readonly Verb[] = ['start', 'restart', 'try-restart', 'reload', 'reload-or-restart'];

/** Verbs that leave the unit down by design: an availability limit cannot apply to them. */
export const STOPPING_VERBS: readonly Verb[] = ['stop', 'mask'];

export function baselineOf(unit: string, after: UnitSnapshot): UnitBaseline {
  return {
    unit,
    activeState: after.activeState,
    subState: after.subState,
    mainPid: after.mainPid,
    nRestarts: after.nRestarts,
  };
}

/**
 * Why a unit fails its gate at once, or null: it stopped or left its state, its main process
 * changed (it died and came back), or systemd restarted it (NRestarts grew: a crash loop).
 */
export function unitGateProblem(verb: Verb, baseline: UnitBaseline, now: UnitReading): string | null {
  const unit = baseline.unit;
  if (RUNNING_VERBS.includes(verb) && now.activeState !== 'active') {
    return `${unit} is ${now.activeState}/${now.subState}, not active`;
  }
  if (now.activeState !== baseline.activeState) {
    return `${unit} went from ${baseline.activeState} to ${now.activeState}/${now.subState}`;
  }
  if (baseline.nRestarts !== null && now.nRestarts !== null && now.nRestarts > baseline.nRestarts) {
    return `${unit} was restarted by systemd ${now.nRestarts - baseline.nRestarts} time(s) (NRestarts ${baseline.nRestarts} → ${now.nRestarts}): crash loop`;
  }
  if (baseline.mainPid !== null && now.mainPid !== baseline.mainPid) {
    return `${unit} main process changed (MainPID ${baseline.mainPid} → ${now.mainPid ?? 'none'})`;
  }
  return null;
}

export interface GateInput {
  now: number;
  gateStartedAt: number;
  /** When every check last started passing without a break; null when not passing. */
  healthySince: number | null;
  minHealthyTimeMs: number;
  timeoutMs: number;
  /** Problems that fail the gate at once (the unit crashed, restarted, stopped). */
  fatal: string[];
  /** Problems a host may still recover from within the timeout (a probe not answering yet). */
  failing: string[];
}

export type GateVerdict =
  | { outcome: 'failed'; reason: string }
  | { outcome: 'passed'; healthySince: number }
  | { outcome: 'waiting'; healthySince: number | null; problems: string[] };

/**
 * A host passes once every check has passed continuously for minHealthyTimeMs (at once when that
 * is 0). A failing probe restarts the clock; a host not healthy by gate start + minHealthyTimeMs +
 * timeoutMs fails, as does any fatal problem.
 */
export function judgeGate(input: GateInput): GateVerdict {
  if (input.fatal.length > 0) return { outcome: 'failed', reason: `health gate: ${input.fatal.join('; ')}` };
  const deadline = input.gateStartedAt + input.minHealthyTimeMs + input.timeoutMs;
  if (input.failing.length > 0) {
    if (input.now >= deadline) {
      return {
        outcome: 'failed',
        reason: `health gate: not healthy within ${input.minHealthyTimeMs + input.timeoutMs} ms: ${input.failing.join('; ')}`,
      };
    }
    return { outcome: 'waiting', healthySince: null, problems: input.failing };
  }
  const healthySince = input.healthySince ?? input.now;
  if (input.now - healthySince >= input.minHealthyTimeMs) return { outcome: 'passed', healthySince };
  return { outcome: 'waiting', healthySince, problems: [] };
}

/** Failed hosts EXCEEDING maxFailures abort the rollout: maxFailures 1 tolerates one failure. */
export function failureBudgetExceeded(failed: number, maxFailures: number): boolean {
  return failed > maxFailures;
}

/** The size the strategy gives the `batchOfRun`-th batch of a run (0: the first), availability aside. */
export function wantedBatchSize(sizes: readonly Amount[], batchOfRun: number, total: number): number {
  const last = sizes[sizes.length - 1];
  if (last === undefined) throw new RangeError('no batch size given');
  return resolvePercent(sizes[batchOfRun] ?? last, total);
}

/**
 * The size of the next batch: the strategy's size for this batch of the run (the last size
 * repeats), no more than the hosts left, and no more than the availability limit leaves room for
 * given how many units are down right now. Hosts left whose unit is already down (`downPending`,
 * counted in `downNow` too) go first and take no room: acting on them cannot take anything more
 * down. 0 means the batch must wait.
 */
export function nextBatchSize(input: {
  sizes: readonly Amount[];
  batchOfRun: number;
  total: number;
  remaining: number;
  maxUnavailable: number | null;
  downNow: number;
  downPending?: number;
}): number {
  const wanted = wantedBatchSize(input.sizes, input.batchOfRun, input.total);
  const room =
    input.maxUnavailable === null
      ? wanted
      : Math.max(0, input.maxUnavailable - input.downNow) + (input.downPending ?? 0);
  return Math.min(wanted, room, input.remaining);
}

/** Hosts whose unit is already down first (acting on them takes nothing more down), each part in order. */
export function downFirst<H>(hosts: readonly H[], isDown: (host: H) => boolean): H[] {
  return [...hosts.filter(isDown), ...hosts.filter((host) => !isDown(host))];
}

import { Message, MessageType, systemBus, type MessageBus } from '@particle/dbus-next';
import { TRANSITIONAL_STATES, type UnitsReport } from '@drover/protocol';
import {
  type Host,
  LIST_UNIT_FILES_ARGV,
  LIST_UNITS_ARGV,
  MAX_NAMED_UNITS,
  NOT_LOADED,
  parseDiscovery,
  readDefinitionTexts,
  readUnitDefinitions,
  reportDefinitions,
  unitNameProblem,
} from '@drover/systemd';
import { backoffMs, pause } from './backoff';
import type { Logger } from './log';
import {
  addMatch,
  MANAGER,
  onConnectionLost,
  SYSTEMD,
  SYSTEMD_PATH,
  UNIT_INTERFACE,
  unitNameOfPath,
} from './systemd-bus';

/** Changes that arrive together (a restart is several property changes) are reported together. */
const SETTLE_MS = 250;
/** The longest a unit in transition (activating...) waits for its end before it is listed as it is. */
const TRANSITION_HOLD_MS = 5_000;
/** A full listing now and then, so that a signal lost (the bus restarted, a report failed) heals. */
const FULL_LISTING_EVERY_MS = 10 * 60_000;
/** Without D-Bus: full listings this often instead of live changes. */
const POLL_WITHOUT_BUS_MS = 60_000;
const LISTING_TIMEOUT_MS = 30_000;

/** The Manager's signals changeOf reads (JobNew, JobRemoved and the rest are not asked for). */
const MANAGER_SIGNALS = ['UnitNew', 'UnitRemoved', 'UnitFilesChanged', 'Reloading'] as const;

/**
 * The bus's match rules for exactly the signals changeOf reads. Asking for all of systemd's
 * signals would deliver, per restart, as many PropertiesChanged of the Service interface (and the
 * Job's) as of the Unit's, each decoded by the agent and then dropped: measured on a booted host,
 * it doubled the signals and the agent's CPU for them.
 */
export const SIGNAL_MATCH_RULES: readonly string[] = [
  `type='signal',sender='${SYSTEMD}',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',arg0='${UNIT_INTERFACE}'`,
  ...MANAGER_SIGNALS.map((member) => `type='signal',sender='${SYSTEMD}',interface='${MANAGER}',member='${member}'`),
];

/**
 * What a signal from systemd says: a unit's state changed (with ActiveState and SubState as the
 * signal carries them), a unit was loaded or unloaded (`presence`), or list everything again.
 */
export type UnitSignal =
  | { unit: string; kind: 'properties'; activeState?: string; subState?: string; jobPending?: boolean }
  | { unit: string; kind: 'presence' }
  | { all: true };

/** A signal about one unit. */
export type UnitChange = Exclude<UnitSignal, { all: true }>;

/** A unit as the last listing reported it. */
export interface ListedState {
  loadState: string;
  activeState: string;
  subState: string;
}

/** What a signal from systemd means for the listing: these units changed, or list everything again. */
export function changeOf(message: {
  type: MessageType;
  path: string;
  interface: string;
  member: string;
  body: unknown[];
}): UnitSignal | null {
  if (message.type !== MessageType.SIGNAL) return null;
  if (message.interface === 'org.freedesktop.DBus.Properties' && message.member === 'PropertiesChanged') {
    if (message.body[0] !== UNIT_INTERFACE) return null;
    const unit = unitNameOfPath(message.path);
    if (!unit) return null;
    const changed = (message.body[1] ?? {}) as Record<string, { value?: unknown } | undefined>;
    const text = (property: string) => {
      const value = changed[property]?.value;
      return typeof value === 'string' ? value : undefined;
    };
    // Job is (id, path): a job (the restart, the start...) is queued or running on the unit while id is not 0.
    const job = changed.Job?.value;
    const jobPending = Array.isArray(job) && typeof job[0] === 'number' ? job[0] !== 0 : undefined;
    return { unit, kind: 'properties', activeState: text('ActiveState'), subState: text('SubState'), jobPending };
  }
  if (message.interface !== MANAGER) return null;
  if (message.member === 'UnitNew' || message.member === 'UnitRemoved') {
    const unit = message.body[0];
    return typeof unit === 'string' && unitNameProblem(unit) === null ? { unit, kind: 'presence' } : null;
  }
  // Unit files changed on disk (enable, mask, a package), or systemd reloaded: list everything.
  if (message.member === 'UnitFilesChanged' || message.member === 'Reloading') return { all: true };
  return null;
}

/**
 * Whether a unit's signal may change what was last reported of it. Reading a unit that is not
 * loaded (the listing's `systemctl show`, anyone's `systemctl status`) makes systemd load it and
 * unload it again (UnitNew, UnitRemoved), and the units it names as dependencies signal changed
 * dependency lists with their state unchanged. Listing again on those would read, and so load,
 * the unit again: an endless loop keeping systemd busy on an idle host. So a unit last listed as
 * not loaded does not count its loading or unloading, and a state signal counts only when it
 * carries an ActiveState or SubState other than the one listed.
 */
export function mayHaveChanged(signal: UnitChange, listed: ListedState | undefined): boolean {
  if (listed === undefined) return true;
  if (signal.kind === 'presence') return listed.loadState !== NOT_LOADED;
  if (signal.activeState === undefined && signal.subState === undefined) return true;
  return signal.activeState !== listed.activeState || signal.subState !== listed.subState;
}

/**
 * What the signals since the last report said of a unit: that it was loaded or unloaded, that its
 * state changed without saying to what, and the last ActiveState and SubState they carried.
 */
export interface SignalledChange {
  presence: boolean;
  stateless: boolean;
  activeState?: string;
  subState?: string;
  /** Whether the last signal that told said a job is queued or running on the unit. */
  jobPending?: boolean;
  /** When the first of these signals came (ms). */
  since: number;
}

/** A unit's signals so far with one more, which came at `now` (the later state wins). */
export function withSignal(previous: SignalledChange | undefined, signal: UnitChange, now: number): SignalledChange {
  const change = previous ?? { presence: false, stateless: false, since: now };
  if (signal.kind === 'presence') return { ...change, presence: true };
  if (signal.activeState === undefined && signal.subState === undefined) return { ...change, stateless: true };
  return {
    ...change,
    activeState: signal.activeState ?? change.activeState,
    subState: signal.subState ?? change.subState,
    jobPending: signal.jobPending ?? change.jobPending,
  };
}

/**
 * Whether a unit's signals since the last report leave it other than it was listed, once they
 * settled. A restart passes through deactivating and activating and ends running, as listed:
 * nothing a listing reports of it changed (its new process is in the restart's own outcome), so
 * it is not listed again, which spares the host and the server a listing and a report per restart.
 */
export function stillDiffers(change: SignalledChange, listed: ListedState | undefined): boolean {
  if (listed === undefined || change.presence || change.stateless) return true;
  return change.activeState !== listed.activeState || change.subState !== listed.subState;
}

/**
 * Which signalled units to list now (`names`: those whose signals leave them other than listed),
 * and which wait (`held`, until `heldUntil`): a unit whose last signal left it in transition (a job
 * on it, the restart's, or a state such as activating) waits for the signal of that transition's
 * end, for at most TRANSITION_HOLD_MS after its first signal. On a busy host a restart outlasts
 * SETTLE_MS, and between its stop and its start the unit is inactive: listed mid-way, it would be
 * reported in a state about to end and, once running again, differ from that listing and be listed
 * a second time: two listings (five processes on the host) for a restart that changed nothing a
 * listing shows. Seen on 50 hosts sharing 2 cores (strace of the agents, their D-Bus signals): the
 * agents listed the unit after every restart, anyone's, about 0.3 CPU s each per fan-out run.
 */
export function dueForListing(
  signalled: ReadonlyMap<string, SignalledChange>,
  listed: ReadonlyMap<string, ListedState>,
  now: number,
): { names: string[]; held: string[]; heldUntil: number | null } {
  const names: string[] = [];
  const held: string[] = [];
  let heldUntil: number | null = null;
  for (const [unit, change] of signalled) {
    const until = change.since + TRANSITION_HOLD_MS;
    const moving =
      change.jobPending === true ||
      (change.activeState !== undefined && TRANSITIONAL_STATES.includes(change.activeState));
    if (moving && now < until) {
      held.push(unit);
      heldUntil = Math.min(heldUntil ?? until, until);
    } else if (stillDiffers(change, listed.get(unit))) {
      names.push(unit);
    }
  }
  return { names, held, heldUntil };
}

/**
 * Keeps the server's picture of this host's units live: a full listing at start (the same
 * `systemctl` listings the SSH worker's discovery runs, parsed by the same code), then systemd's
 * own D-Bus signals (it is asked to Subscribe, so it sends them) say which units changed, and only
 * those are listed and reported. Without a system bus it falls back to a full listing a minute.
 */
export class UnitWatch {
  /** Units signalled since the last listing, and what their signals said. */
  private readonly signalled = new Map<string, SignalledChange>();
  private listAll = true;
  private flushTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  /** Definitions whose text the server has from this process (after a restart: sent once more). */
  private readonly sentTexts = new Set<string>();
  /** Each unit as last reported, to tell a signal that changes it from an echo of a read. */
  private readonly listed = new Map<string, ListedState>();

  constructor(
    private readonly host: Host,
    private readonly report: (report: UnitsReport) => Promise<void>,
    private readonly log: Logger,
  ) {}

  /** Runs until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const reporting = this.reportLoop(signal);
    for (let failures = 0; !signal.aborted;) {
      const bus = await this.subscribe().catch((error: unknown) => {
        this.log.warn('cannot follow systemd over D-Bus; listing every unit each minute instead', { err: error });
        return null;
      });
      if (!bus) {
        failures += 1;
        await pause(Math.max(POLL_WITHOUT_BUS_MS, backoffMs(failures)), signal);
        this.markAll();
        continue;
      }
      failures = 0;
      // Signals missed while there was no subscription: list everything once it is back.
      this.markAll();
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          bus.disconnect();
          resolve();
        };
        signal.addEventListener('abort', done);
        onConnectionLost(bus, (error) => {
          this.log.warn('lost the D-Bus connection to systemd; reconnecting', { err: error });
          done();
        });
      });
      await pause(backoffMs(1), signal);
    }
    this.wake?.();
    await reporting;
  }

  private async subscribe(): Promise<MessageBus> {
    const bus = systemBus();
    try {
      for (const rule of SIGNAL_MATCH_RULES) await addMatch(bus, rule);
      bus.on('message', (message: Message) => {
        const change = changeOf(message);
        if (change === null) return;
        if ('all' in change) this.markAll();
        else this.noteSignal(change);
      });
      // Without a subscriber systemd sends no unit signals at all.
      await bus.call(
        new Message({ destination: SYSTEMD, path: SYSTEMD_PATH, interface: MANAGER, member: 'Subscribe' }),
      );
      this.log.info('following unit changes over D-Bus');
      return bus;
    } catch (error) {
      bus.disconnect();
      throw error;
    }
  }

  /**
   * A unit's first signal counts only when it may change what was listed; once one counted, the
   * unit's later state signals are kept too, so the flush sees the state it ended in.
   */
  private noteSignal(signal: UnitChange): void {
    const previous = this.signalled.get(signal.unit);
    if (
      (previous === undefined || signal.kind === 'presence') &&
      !mayHaveChanged(signal, this.listed.get(signal.unit))
    ) {
      return;
    }
    this.signalled.set(signal.unit, withSignal(previous, signal, Date.now()));
    this.scheduleFlush();
  }

  private markAll(): void {
    this.listAll = true;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.wake?.();
    }, SETTLE_MS);
  }

  /** Reports what changed, one report at a time; a failed report is tried again (as a full listing). */
  private async reportLoop(signal: AbortSignal): Promise<void> {
    let lastFull = 0;
    for (let failures = 0; !signal.aborted;) {
      const { names, held, heldUntil } = dueForListing(this.signalled, this.listed, Date.now());
      for (const unit of [...this.signalled.keys()]) if (!held.includes(unit)) this.signalled.delete(unit);
      if (!this.listAll && names.length === 0 && Date.now() - lastFull < FULL_LISTING_EVERY_MS) {
        const fullDueInMs = FULL_LISTING_EVERY_MS - (Date.now() - lastFull);
        await new Promise<void>((resolve) => {
          // A unit still in transition is looked at again when its hold ends, if no signal came first.
          const timer = setTimeout(
            resolve,
            heldUntil === null ? fullDueInMs : Math.min(fullDueInMs, Math.max(0, heldUntil - Date.now())),
          );
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
        continue;
      }
      const full = this.listAll || names.length > MAX_NAMED_UNITS || Date.now() - lastFull >= FULL_LISTING_EVERY_MS;
      this.listAll = false;
      try {
        const { report, textsSent } = await this.listing(full ? null : names);
        await this.report(report);
        this.remember(report);
        for (const hash of textsSent) this.sentTexts.add(hash);
        if (full) lastFull = Date.now();
        failures = 0;
      } catch (error) {
        failures += 1;
        this.listAll = true;
        if (!signal.aborted) this.log.warn('could not report unit changes; trying again', { err: error });
        await pause(backoffMs(failures), signal);
      }
    }
  }

  private remember(report: UnitsReport): void {
    if (report.full) this.listed.clear();
    for (const name of report.removed) this.listed.delete(name);
    for (const { name, loadState, activeState, subState } of report.units) {
      this.listed.set(name, { loadState, activeState, subState });
    }
  }

  /** All units (null), or these: as listed now; a named unit listed nowhere is gone. */
  private async listing(names: string[] | null): Promise<{ report: UnitsReport; textsSent: string[] }> {
    const named = names ?? [];
    const [units, files] = await Promise.all([
      this.host.run([...LIST_UNITS_ARGV, '--', ...named], { timeoutMs: LISTING_TIMEOUT_MS }),
      this.host.run([...LIST_UNIT_FILES_ARGV, '--', ...named], { timeoutMs: LISTING_TIMEOUT_MS }),
    ]);
    // list-unit-files exits 1 when none of the names has a unit file: a listing, not a failure.
    if (units.exitCode !== 0 || (files.exitCode !== 0 && names === null)) {
      throw new Error(`systemctl listing failed: ${(units.stderr || files.stderr).trim()}`);
    }
    const listed = parseDiscovery(units.stdout, files.exitCode === 0 ? files.stdout : '');
    const present = new Set(listed.map((unit) => unit.name));
    // What the units are built from (drift), as the SSH worker's discovery reads it.
    const run = (argv: readonly string[]) => this.host.run(argv, { timeoutMs: LISTING_TIMEOUT_MS });
    const { definitions, fileHashes } = await readUnitDefinitions(
      run,
      listed.map((unit) => unit.name),
    );
    const unsent = definitions.filter(
      (unit) => unit.definitionHash !== null && !this.sentTexts.has(unit.definitionHash),
    );
    const texts = await readDefinitionTexts(run, unsent, fileHashes);
    return {
      report: {
        full: names === null,
        units: listed,
        removed: named.filter((name) => !present.has(name)),
        definitions: reportDefinitions(definitions, fileHashes, texts),
      },
      textsSent: [...texts.keys()],
    };
  }
}

import type { EventEmitter } from 'node:events';
import { DBusError, Message, systemBus, type MessageBus, type Variant } from '@particle/dbus-next';
import type { Verb } from '@drover/protocol';
import {
  type CommandResult,
  HOST_CLOCK_ARGV,
  sameArgv,
  SNAPSHOT_PROPERTIES,
  snapshotArgvUnit,
  unitNameProblem,
  verbArgvParts,
} from '@drover/systemd';
import { CommandTimeoutError } from './local-host';
import type { Logger } from './log';

export const SYSTEMD = 'org.freedesktop.systemd1';
export const SYSTEMD_PATH = '/org/freedesktop/systemd1';
export const MANAGER = 'org.freedesktop.systemd1.Manager';
export const UNIT_INTERFACE = 'org.freedesktop.systemd1.Unit';
const UNIT_PATH_PREFIX = `${SYSTEMD_PATH}/unit/`;
const PROPERTIES = 'org.freedesktop.DBus.Properties';
/**
 * What a Get answers for a property the object does not have. sd-bus answers UnknownProperty for a
 * missing interface too; UnknownInterface is the D-Bus specification's word for that, kept so that
 * a bus answering it is read the same way.
 */
const ABSENT_PROPERTY_ERRORS: readonly string[] = [
  'org.freedesktop.DBus.Error.UnknownProperty',
  'org.freedesktop.DBus.Error.UnknownInterface',
];
/** The snapshot's properties that systemd 252 keeps on a unit type's interface, not on the Unit's. */
const TYPE_SNAPSHOT_PROPERTIES: readonly string[] = ['MainPID', 'NRestarts', 'Result'];
/** A property read over D-Bus that takes longer than this is left to `systemctl show` instead. */
const READ_TIMEOUT_MS = 5_000;
/** JobRemoved signals kept for a job whose caller has not yet read the method's reply. */
const EARLY_JOB_ENDS = 64;

/** The Manager's method systemctl calls for each verb that queues a job on a unit. */
export const JOB_METHODS: Readonly<Partial<Record<Verb, string>>> = {
  start: 'StartUnit',
  stop: 'StopUnit',
  restart: 'RestartUnit',
  'try-restart': 'TryRestartUnit',
  reload: 'ReloadUnit',
  'reload-or-restart': 'ReloadOrRestartUnit',
};

export const JOB_REMOVED_RULE = `type='signal',sender='${SYSTEMD}',path='${SYSTEMD_PATH}',interface='${MANAGER}',member='JobRemoved'`;

/**
 * Error replies that come before any job exists: systemd refused it (no such unit, masked, not
 * applicable, polkit said no) or the bus could not deliver the call. Nothing happened on the host,
 * so systemctl may run the verb and say so in its own words. Anything else (no reply, a lost
 * connection) may have queued the job: it must not run a second time.
 */
const REFUSED_BEFORE_QUEUEING = [
  'org.freedesktop.DBus.Error.AccessDenied',
  'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired',
  'org.freedesktop.DBus.Error.InvalidArgs',
  'org.freedesktop.DBus.Error.UnknownMethod',
  'org.freedesktop.DBus.Error.UnknownObject',
  'org.freedesktop.DBus.Error.ServiceUnknown',
];

export function refusedBeforeQueueing(error: unknown): boolean {
  return (
    error instanceof DBusError && (error.type.startsWith(`${SYSTEMD}.`) || REFUSED_BEFORE_QUEUEING.includes(error.type))
  );
}

/** Why a service's job failed, in systemctl's words, by the service's Result (systemd 252's spelling kept). */
const SERVICE_RESULT_EXPLANATIONS: Readonly<Record<string, string>> = {
  resources: 'of unavailable resources or another system error',
  protocol: 'the service did not take the steps required by its unit configuration',
  timeout: 'a timeout was exceeded',
  'exit-code': 'the control process exited with error code',
  signal: 'a fatal signal was delivered to the control process',
  'core-dump': 'a fatal signal was delivered causing the control process to dump core',
  watchdog: 'the service failed to send watchdog ping',
  'start-limit-hit': 'start of the service was attempted too often',
  'oom-kill': 'of an out-of-memory (OOM) siutation',
};

/** What systemctl says of a job that ended with each result other than failed, done or skipped. */
const JOB_RESULT_TEXTS: Readonly<Record<string, (unit: string) => string>> = {
  canceled: (unit) => `Job for ${unit} canceled.`,
  timeout: (unit) => `Job for ${unit} timed out.`,
  dependency: (unit) => `A dependency job for ${unit} failed. See 'journalctl -xe' for details.`,
  invalid: (unit) => `${unit} is not active, cannot reload.`,
  assert: (unit) => `Assertion failed on job for ${unit}.`,
  unsupported: (unit) => `Operation on or unit type of ${unit} not supported on this system.`,
  collected: (unit) => `Queued job for ${unit} was garbage collected.`,
  once: (unit) => `Unit ${unit} was started already once and can't be started again.`,
};

/** A unit name as systemctl quotes it for a shell in its hints (a backslash needs quotes). */
function shellQuoted(unit: string): string {
  return /["\\`$*?[\]'()<>|&;!\s]/.test(unit) ? `"${unit.replace(/["\\`$]/g, '\\$&')}"` : unit;
}

/**
 * What `systemctl <verb>` writes to stderr when the job it waited for ended with `result` (null:
 * it succeeded, "done" or "skipped"); a failed service's own Result says why, as systemctl reads it.
 */
export function jobEndText(unit: string, result: string, serviceResult: string | null): string | null {
  if (result === 'done' || result === 'skipped') return null;
  const said = JOB_RESULT_TEXTS[result];
  if (said) return `${said(unit)}\n`;
  if (!unit.endsWith('.service')) return 'Job failed. See "journalctl -xe" for details.\n';
  const quoted = shellQuoted(unit);
  const explanation = serviceResult === null ? undefined : SERVICE_RESULT_EXPLANATIONS[serviceResult];
  const text =
    `Job for ${unit} failed${explanation ? ` because ${explanation}` : ''}.\n` +
    `See "systemctl status ${quoted}" and "journalctl -xeu ${quoted}" for details.\n`;
  if (serviceResult !== 'start-limit-hit') return text;
  return `${text}To force a start use "systemctl reset-failed ${quoted}"\nfollowed by "systemctl start ${quoted}" again.\n`;
}

/** `systemctl <verb>`'s warning that the unit's files changed since systemd loaded them. */
export function daemonReloadWarning(unit: string): string {
  return `Warning: The unit file, source configuration file or drop-ins of ${unit} changed on disk. Run 'systemctl daemon-reload' to reload units.\n`;
}

/** `systemctl stop`'s warning that units which can start the stopped one again are active. */
export function triggeringWarning(unit: string, activeTriggers: readonly string[]): string {
  if (activeTriggers.length === 0) return '';
  return [`Warning: Stopping ${unit}, but it can still be activated by:`, ...activeTriggers.map((t) => `  ${t}`)]
    .map((line) => `${line}\n`)
    .join('');
}

/** Asks the bus to deliver the signals `rule` matches on this connection. */
export async function addMatch(bus: MessageBus, rule: string): Promise<void> {
  await bus.call(
    new Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'AddMatch',
      signature: 's',
      body: [rule],
    }),
  );
}

/**
 * Calls `listener` once the connection is gone: an error, or the other side closing it (the bus
 * daemon restarted), which dbus-next reports on its connection only, not as an error of the bus.
 */
export function onConnectionLost(bus: MessageBus, listener: (error: unknown) => void): void {
  let told = false;
  const tell = (error: unknown) => {
    if (told) return;
    told = true;
    listener(error);
  };
  bus.on('error', tell);
  (bus as unknown as { _connection?: EventEmitter })._connection?.on('end', () =>
    tell(new Error('the D-Bus connection was closed')),
  );
}
/** systemd's "infinity" for a time span: UINT64_MAX. */
const USEC_INFINITY = 2n ** 64n - 1n;
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/**
 * A unit's D-Bus object path, as systemd names it: every byte outside [A-Za-z0-9] escaped as _xx
 * (two lowercase hex digits), e.g. nginx.service is .../unit/nginx_2eservice.
 */
export function unitPathOf(unit: string): string {
  const label = [...Buffer.from(unit, 'utf8')]
    .map((byte) =>
      /[A-Za-z0-9]/.test(String.fromCharCode(byte))
        ? String.fromCharCode(byte)
        : `_${byte.toString(16).padStart(2, '0')}`,
    )
    .join('');
  return `${UNIT_PATH_PREFIX}${label}`;
}

/** A unit's name from its D-Bus object path (unitPathOf read back); null for any other path. */
export function unitNameOfPath(objectPath: string): string | null {
  if (!objectPath.startsWith(UNIT_PATH_PREFIX)) return null;
  const label = objectPath.slice(UNIT_PATH_PREFIX.length);
  if (!/^(?:[A-Za-z0-9]|_[0-9a-f]{2})+$/.test(label)) return null;
  const name = Buffer.from(
    label.replace(/_([0-9a-f]{2})|([A-Za-z0-9])/g, (_match, hex: string | undefined, plain: string | undefined) =>
      hex ? String.fromCharCode(Number.parseInt(hex, 16)) : plain!,
    ),
    'latin1',
  ).toString('utf8');
  return unitNameProblem(name) === null ? name : null;
}

/** The D-Bus interface of a unit's type (org.freedesktop.systemd1.Service for nginx.service). */
export function typeInterfaceOf(unit: string): string {
  const type = unit.slice(unit.lastIndexOf('.') + 1);
  return `${SYSTEMD}.${type.charAt(0).toUpperCase()}${type.slice(1)}`;
}

/** A realtime timestamp (µs) as `systemctl show` prints one on a host whose zone is UTC; 0 is empty. */
function formatTimestamp(microseconds: bigint): string {
  if (microseconds === 0n || microseconds === USEC_INFINITY) return '';
  const at = new Date(Number(microseconds / 1000n));
  const [date, time] = at.toISOString().split('T') as [string, string];
  return `${WEEKDAYS[at.getUTCDay()]} ${date} ${time.slice(0, 8)} UTC`;
}

/**
 * One property's value as `systemctl show` prints it, by its D-Bus type and, for 64-bit numbers, by
 * its name as systemd does (…Timestamp is a point in time, …USec and …Sec a span, the rest a
 * number); null for a type a snapshot never reads.
 */
export function showValue(name: string, variant: Variant): string | null {
  const { signature, value } = variant as Variant<unknown>;
  switch (signature) {
    case 's':
    case 'o':
    case 'y':
    case 'q':
    case 'u':
    case 'n':
    case 'i':
    case 'x':
      return String(value);
    case 'b':
      return value ? 'yes' : 'no';
    case 't': {
      const number = BigInt(value as bigint | number);
      if (name.endsWith('Timestamp')) return formatTimestamp(number);
      if (/U?Sec$/.test(name)) {
        if (number === USEC_INFINITY) return 'infinity';
        // parseTimespan reads "Nus" as systemctl's "10s" or "1min 30s": the same microseconds.
        return number === 0n ? '0' : `${number}us`;
      }
      return String(number);
    }
    case 'ay':
      // InvocationID: 16 bytes, printed as 32 hex digits; none is an empty value.
      return Buffer.from(value as Uint8Array).toString('hex');
    case 'as':
      return (value as string[]).join(' ');
    default:
      return null;
  }
}

/**
 * What `systemctl show --property=<the snapshot's>` prints for a unit, from the properties of its
 * Unit interface and of its type's interface (Service, Socket...): one Name=value line each, in the
 * snapshot's order; a property neither interface has is left out, as systemctl leaves it out.
 */
export function snapshotShowText(
  unitProperties: Record<string, Variant>,
  typeProperties: Record<string, Variant>,
): string {
  const lines: string[] = [];
  for (const name of SNAPSHOT_PROPERTIES) {
    const variant = unitProperties[name] ?? typeProperties[name];
    if (variant === undefined) continue;
    const value = showValue(name, variant);
    if (value !== null) lines.push(`${name}=${value}\n`);
  }
  return lines.join('');
}

/** `systemctl --version`'s first line for a manager Version ("252.39-1~deb12u1" is systemd 252). */
export function managerVersionLine(version: string): string {
  const major = /^\d+/.exec(version)?.[0];
  return major === undefined ? `systemd ${version}` : `systemd ${major} (${version})`;
}

/** `promise`, or a rejection with `timedOut()` once `ms` passed without it settling. */
async function settledWithin<T>(promise: Promise<T>, ms: number, timedOut: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(timedOut()), Math.max(0, ms));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface SystemdBusOptions {
  /** The connection to systemd's bus; the system bus by default (a test reaches a booted host's). */
  connect?: () => MessageBus;
  log?: Logger;
}

interface JobWaiter {
  resolve: (result: string) => void;
  reject: (error: unknown) => void;
}

/** The connection to systemd, with the JobRemoved signals it was asked for. */
interface Connection {
  bus: MessageBus;
  /** Resolves once the bus delivers JobRemoved here: a job may only be queued after that. */
  matched: Promise<void>;
  waiters: Map<string, JobWaiter>;
  /** Job path → result of JobRemoved signals no caller waited for yet (the reply may still be on its way). */
  endedEarly: Map<string, string>;
  /** No new calls use it (a read on it failed); it ends with the last job awaited on it. */
  retired: boolean;
  /** Why it is gone, once it is. */
  lost: Error | null;
}

/**
 * What a unit action asks of systemd that the agent answers over one held D-Bus connection instead
 * of a fork and exec of systemctl for each:
 * - the unit's state, as `systemctl show` would print it (the Unit interface's properties and three
 *   of its type's), and the host's clock (the agent's clock is the host's);
 * - the verbs that queue a job (start, stop, restart, try-restart, reload, reload-or-restart): the
 *   Manager method systemctl calls, then the job's end awaited as systemctl awaits it, with
 *   systemctl's exit code and words for the result.
 * Anything else runs as the command. So does a read D-Bus cannot answer, and a job systemd refused
 * before queueing it (systemctl then says why in its own words); a job that may have been queued is
 * never run a second time.
 */
export class SystemdBus {
  private connection: Connection | null = null;
  private readonly connect: () => MessageBus;

  constructor(private readonly options: SystemdBusOptions = {}) {
    this.connect = options.connect ?? (() => systemBus());
  }

  /** The answer to `argv` without running it, or null: run it. */
  async answer(argv: readonly string[], timeoutMs: number): Promise<CommandResult | null> {
    if (sameArgv(argv, HOST_CLOCK_ARGV)) {
      // `date +%s%6N`: microseconds since the epoch (this clock has milliseconds).
      return { exitCode: 0, stdout: `${BigInt(Date.now()) * 1000n}\n`, stderr: '' };
    }
    const unit = snapshotArgvUnit(argv);
    if (unit !== null) {
      try {
        return { exitCode: 0, stdout: await this.readSnapshot(unit), stderr: '' };
      } catch (error) {
        this.options.log?.debug('could not read the unit over D-Bus; running systemctl show', { unit, err: error });
        this.dropAfter(error);
        return null;
      }
    }
    const job = verbArgvParts(argv);
    const method = job === null ? undefined : JOB_METHODS[job.verb];
    if (job === null || method === undefined) return null;
    return this.runJob(job.verb, job.unit, method, { argv, timeoutMs });
  }

  /**
   * The running systemd's version as the first line of `systemctl --version` prints it
   * ("systemd 252 (252.39-1~deb12u1)"), from the manager's Version property; null when D-Bus cannot tell.
   */
  async managerVersion(): Promise<string | null> {
    try {
      const version = await this.property(SYSTEMD_PATH, MANAGER, 'Version');
      if (typeof version !== 'string' || version === '') return null;
      return managerVersionLine(version);
    } catch (error) {
      this.dropAfter(error);
      return null;
    }
  }

  /** Lets go of the bus connection (the next call connects again). */
  close(): void {
    if (this.connection) this.lose(this.connection, new Error('the D-Bus connection was closed by the agent'));
  }

  /**
   * `systemctl <verb> -- <unit>` over the bus: the Manager method, then the job's JobRemoved. A job
   * still running at the deadline fails as a command past its time does (the job goes on in systemd).
   */
  private async runJob(
    verb: Verb,
    unit: string,
    method: string,
    command: { argv: readonly string[]; timeoutMs: number },
  ): Promise<CommandResult | null> {
    const deadline = Date.now() + command.timeoutMs;
    let connection: Connection;
    try {
      connection = this.connected();
      await this.withinReadTimeout(connection.matched);
    } catch (error) {
      // Nothing was asked of systemd yet: systemctl runs the verb.
      this.options.log?.debug('could not reach systemd over D-Bus; running systemctl', { unit, err: error });
      this.dropAfter(error);
      return null;
    }
    const queue = new Message({
      destination: SYSTEMD,
      path: SYSTEMD_PATH,
      interface: MANAGER,
      member: method,
      signature: 'ss',
      body: [unit, 'replace'],
    });
    let job: string;
    try {
      const reply = await this.untilDeadline(connection.bus.call(queue), deadline, command);
      job = String(reply?.body[0]);
    } catch (error) {
      if (error instanceof CommandTimeoutError) throw error;
      if (refusedBeforeQueueing(error)) return null;
      return { exitCode: 1, stdout: '', stderr: `Failed to ${verb} ${unit}: ${(error as Error).message}\n` };
    }
    const [warning, ended] = await Promise.all([
      this.needsDaemonReload(unit).then((needs) => (needs ? daemonReloadWarning(unit) : '')),
      this.untilDeadline(this.jobEnd(connection, job), deadline, command).then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      ),
    ]);
    if ('error' in ended) {
      if (ended.error instanceof CommandTimeoutError) throw ended.error;
      const message = (ended.error as Error).message;
      return { exitCode: 1, stdout: '', stderr: `${warning}Failed to wait for response: ${message}\n` };
    }
    const serviceResult =
      ended.result === 'done' || ended.result === 'skipped' || !unit.endsWith('.service')
        ? null
        : await this.optionalProperty(unitPathOf(unit), `${SYSTEMD}.Service`, 'Result');
    const failure = jobEndText(unit, ended.result, typeof serviceResult === 'string' ? serviceResult : null);
    if (failure !== null) return { exitCode: 1, stdout: '', stderr: `${warning}${failure}` };
    const triggers = verb === 'stop' ? triggeringWarning(unit, await this.activeTriggers(unit)) : '';
    return { exitCode: 0, stdout: '', stderr: `${warning}${triggers}` };
  }

  /** The job's result once systemd removed it (JobRemoved), perhaps already seen. */
  private jobEnd(connection: Connection, job: string): Promise<string> {
    const seen = connection.endedEarly.get(job);
    if (seen !== undefined) {
      connection.endedEarly.delete(job);
      return Promise.resolve(seen);
    }
    if (connection.lost !== null) return Promise.reject(connection.lost);
    return new Promise((resolve, reject) => connection.waiters.set(job, { resolve, reject }));
  }

  /** The units that can start `unit` again (its TriggeredBy) and are active: what `systemctl stop` warns of. */
  private async activeTriggers(unit: string): Promise<string[]> {
    const path = unitPathOf(unit);
    if ((await this.optionalProperty(path, UNIT_INTERFACE, 'LoadState')) === 'masked') return [];
    const triggeredBy = await this.optionalProperty(path, UNIT_INTERFACE, 'TriggeredBy');
    if (!Array.isArray(triggeredBy)) return [];
    const active: string[] = [];
    for (const trigger of triggeredBy as string[]) {
      const state = await this.optionalProperty(unitPathOf(trigger), UNIT_INTERFACE, 'ActiveState');
      if (state === 'active' || state === 'reloading') active.push(trigger);
    }
    return active;
  }

  private async needsDaemonReload(unit: string): Promise<boolean> {
    return (await this.optionalProperty(unitPathOf(unit), UNIT_INTERFACE, 'NeedDaemonReload')) === true;
  }

  /** A property for a warning or a message only: undefined when it cannot be read. */
  private async optionalProperty(path: string, iface: string, name: string): Promise<unknown> {
    try {
      return await this.property(path, iface, name);
    } catch {
      return undefined;
    }
  }

  private async property(path: string, iface: string, name: string): Promise<unknown> {
    return (await this.variant(path, iface, name))?.value as unknown;
  }

  private async variant(path: string, iface: string, name: string): Promise<Variant | undefined> {
    const reply = await this.call(
      new Message({
        destination: SYSTEMD,
        path,
        interface: PROPERTIES,
        member: 'Get',
        signature: 'ss',
        body: [iface, name],
      }),
    );
    return reply?.body[0] as Variant | undefined;
  }

  /**
   * The Unit interface's properties all at once and, at the same time, a Get for each of the
   * snapshot's properties that systemd keeps on a type's interface (a service's MainPID, NRestarts
   * and Result), not GetAll of that interface: a Service has some 300 properties, and decoding them
   * all cost more than the rest of the read (measured on a booted host: 1.7 ms of the agent's CPU
   * per read against 0.5 ms). A snapshot property the Unit interface lacked and not asked yet (an
   * older systemd keeps StartLimitBurst on a Service) is asked of the type's afterwards; one neither
   * has is left out, as systemctl leaves it out.
   */
  private async readSnapshot(unit: string): Promise<string> {
    const path = unitPathOf(unit);
    const typeInterface = typeInterfaceOf(unit);
    const typeProperties: Record<string, Variant> = {};
    const fromType = async (names: readonly string[]): Promise<void> => {
      const variants = await Promise.all(names.map((name) => this.propertyIfAny(path, typeInterface, name)));
      names.forEach((name, index) => {
        const variant = variants[index];
        if (variant !== undefined) typeProperties[name] = variant;
      });
    };
    // Reading the unit's object loads the unit when it is not loaded, as `systemctl show` does.
    const [unitProperties] = await Promise.all([this.getAll(path, UNIT_INTERFACE), fromType(TYPE_SNAPSHOT_PROPERTIES)]);
    const unasked = SNAPSHOT_PROPERTIES.filter(
      (name) => !(name in unitProperties) && !TYPE_SNAPSHOT_PROPERTIES.includes(name),
    );
    if (unasked.length > 0) await fromType(unasked);
    return snapshotShowText(unitProperties, typeProperties);
  }

  /** A property as its Variant; undefined when the interface does not have it (as GetAll would leave it out). */
  private async propertyIfAny(path: string, iface: string, name: string): Promise<Variant | undefined> {
    try {
      return await this.variant(path, iface, name);
    } catch (error) {
      if (error instanceof DBusError && ABSENT_PROPERTY_ERRORS.includes(error.type)) return undefined;
      throw error;
    }
  }

  private async getAll(path: string, iface: string): Promise<Record<string, Variant>> {
    const reply = await this.call(
      new Message({
        destination: SYSTEMD,
        path,
        interface: PROPERTIES,
        member: 'GetAll',
        signature: 's',
        body: [iface],
      }),
    );
    const properties = reply?.body[0] as Record<string, Variant> | undefined;
    if (!properties) throw new Error(`systemd sent no properties of ${iface} for ${path}`);
    return properties;
  }

  /** One read, answered within READ_TIMEOUT_MS or failed. */
  private async call(message: Message): Promise<Message | null> {
    return this.withinReadTimeout(this.connected().bus.call(message));
  }

  private withinReadTimeout<T>(promise: Promise<T>): Promise<T> {
    return settledWithin(
      promise,
      READ_TIMEOUT_MS,
      () => new Error(`no answer from systemd within ${READ_TIMEOUT_MS} ms`),
    );
  }

  /** `promise`, or the command's timeout once `deadline` passed, as a command past its time fails. */
  private untilDeadline<T>(
    promise: Promise<T>,
    deadline: number,
    command: { argv: readonly string[]; timeoutMs: number },
  ): Promise<T> {
    return settledWithin(
      promise,
      deadline - Date.now(),
      () => new CommandTimeoutError(command.argv, command.timeoutMs, { exitCode: null, stdout: '', stderr: '' }),
    );
  }

  /**
   * systemd's own error reply leaves the connection good; anything else (a timeout) does not: the
   * next call connects anew, and this connection ends once the jobs awaited on it ended (a read
   * slow on a busy host does not fail a restart that is going well).
   */
  private dropAfter(error: unknown): void {
    if (error instanceof DBusError) return;
    const connection = this.connection;
    if (!connection) return;
    this.connection = null;
    connection.retired = true;
    if (connection.waiters.size === 0) connection.bus.disconnect();
  }

  /** The connection is gone: the jobs awaited on it cannot be told. */
  private lose(connection: Connection, error: unknown): void {
    if (this.connection === connection) this.connection = null;
    connection.lost = error instanceof Error ? error : new Error(String(error));
    for (const waiter of connection.waiters.values()) waiter.reject(error);
    connection.waiters.clear();
    connection.bus.disconnect();
  }

  private connected(): Connection {
    if (this.connection) return this.connection;
    const bus = this.connect();
    const connection: Connection = {
      bus,
      matched: addMatch(bus, JOB_REMOVED_RULE),
      waiters: new Map(),
      endedEarly: new Map(),
      retired: false,
      lost: null,
    };
    // Read by runJob before it queues a job; a failure here only means jobs run as systemctl.
    connection.matched.catch(() => undefined);
    bus.on('message', (message: Message) => {
      if (message.interface !== MANAGER || message.member !== 'JobRemoved') return;
      const [, job, , result] = message.body as [number, string, string, string];
      const waiter = connection.waiters.get(job);
      if (waiter) {
        connection.waiters.delete(job);
        waiter.resolve(result);
        if (connection.retired && connection.waiters.size === 0) connection.bus.disconnect();
        return;
      }
      connection.endedEarly.set(job, result);
      // Other clients' jobs end here too; only the newest are worth keeping.
      if (connection.endedEarly.size > EARLY_JOB_ENDS) {
        connection.endedEarly.delete(connection.endedEarly.keys().next().value!);
      }
    });
    // Without a listener a lost connection would be an uncaught error: the next call connects again.
    onConnectionLost(bus, (error) => {
      this.options.log?.debug('lost the D-Bus connection to systemd', { err: error });
      this.lose(connection, error);
    });
    this.connection = connection;
    return connection;
  }
}

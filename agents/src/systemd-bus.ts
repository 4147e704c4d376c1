import { DBusError, Message, systemBus, type MessageBus, type Variant } from '@particle/dbus-next';
import {
  type CommandResult,
  HOST_CLOCK_ARGV,
  sameArgv,
  SNAPSHOT_PROPERTIES,
  snapshotArgvUnit,
  unitNameProblem,
} from '@drover/systemd';
import type { Logger } from './log';

export const SYSTEMD = 'org.freedesktop.systemd1';
export const SYSTEMD_PATH = '/org/freedesktop/systemd1';
export const MANAGER = 'org.freedesktop.systemd1.Manager';
export const UNIT_INTERFACE = 'org.freedesktop.systemd1.Unit';
const UNIT_PATH_PREFIX = `${SYSTEMD_PATH}/unit/`;
const PROPERTIES = 'org.freedesktop.DBus.Properties';
/** A property read over D-Bus that takes longer than this is left to `systemctl show` instead. */
const READ_TIMEOUT_MS = 5_000;
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

export interface SystemdReadsOptions {
  /** The connection to systemd's bus; the system bus by default (a test reaches a booted host's). */
  connect?: () => MessageBus;
  log?: Logger;
}

/**
 * The reads a unit action makes that an agent answers in its own process instead of running a
 * command for each: the unit's state, as `systemctl show` would print it, read over D-Bus from
 * systemd (two property reads on one held connection, against a fork and exec of systemctl), and
 * the host's clock (the agent's clock is the host's). Anything else, and any read D-Bus cannot
 * answer (no bus, an error, a timeout), runs as the command: systemctl then gives its own answer.
 */
export class SystemdReads {
  private bus: MessageBus | null = null;
  private readonly connect: () => MessageBus;

  constructor(private readonly options: SystemdReadsOptions = {}) {
    this.connect = options.connect ?? (() => systemBus());
  }

  /** The answer to `argv` without running it, or null: run it. */
  async answer(argv: readonly string[]): Promise<CommandResult | null> {
    if (sameArgv(argv, HOST_CLOCK_ARGV)) {
      // `date +%s%6N`: microseconds since the epoch (this clock has milliseconds).
      return { exitCode: 0, stdout: `${BigInt(Date.now()) * 1000n}\n`, stderr: '' };
    }
    const unit = snapshotArgvUnit(argv);
    if (unit === null) return null;
    try {
      return { exitCode: 0, stdout: await this.readSnapshot(unit), stderr: '' };
    } catch (error) {
      this.options.log?.debug('could not read the unit over D-Bus; running systemctl show', { unit, err: error });
      this.dropAfter(error);
      return null;
    }
  }

  /**
   * The running systemd's version as the first line of `systemctl --version` prints it
   * ("systemd 252 (252.39-1~deb12u1)"), from the manager's Version property; null when D-Bus cannot tell.
   */
  async managerVersion(): Promise<string | null> {
    try {
      const reply = await this.call(
        new Message({
          destination: SYSTEMD,
          path: SYSTEMD_PATH,
          interface: PROPERTIES,
          member: 'Get',
          signature: 'ss',
          body: [MANAGER, 'Version'],
        }),
      );
      const version = (reply?.body[0] as Variant | undefined)?.value as unknown;
      if (typeof version !== 'string' || version === '') return null;
      return managerVersionLine(version);
    } catch (error) {
      this.dropAfter(error);
      return null;
    }
  }

  /** Lets go of the bus connection (the next read connects again). */
  close(): void {
    this.bus?.disconnect();
    this.bus = null;
  }

  private async readSnapshot(unit: string): Promise<string> {
    const path = unitPathOf(unit);
    // Reading the unit's object loads the unit when it is not loaded, as `systemctl show` does.
    const [unitProperties, typeProperties] = await Promise.all([
      this.getAll(path, UNIT_INTERFACE),
      this.getAll(path, typeInterfaceOf(unit)),
    ]);
    return snapshotShowText(unitProperties, typeProperties);
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

  /** One method call, answered within READ_TIMEOUT_MS or failed. */
  private async call(message: Message): Promise<Message | null> {
    const bus = this.connected();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer from systemd within ${READ_TIMEOUT_MS} ms`)),
        READ_TIMEOUT_MS,
      );
    });
    try {
      return await Promise.race([bus.call(message), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** systemd's own error reply leaves the connection good; anything else (a timeout) does not. */
  private dropAfter(error: unknown): void {
    if (!(error instanceof DBusError)) this.close();
  }

  private connected(): MessageBus {
    if (this.bus) return this.bus;
    const bus = this.connect();
    // Without a listener a lost connection would be an uncaught error: the next read connects again.
    bus.on('error', (error: unknown) => {
      this.options.log?.debug('lost the D-Bus connection for unit reads', { err: error });
      if (this.bus === bus) this.bus = null;
    });
    this.bus = bus;
    return bus;
  }
}

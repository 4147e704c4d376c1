import { Prisma } from '../../generated/prisma/client';

/**
 * The database could not serve a request in time: no pool connection came free (P2024), an
 * interactive transaction outlived its timeout or was already closed (P2028), or the server could
 * not be reached or went away (P1001, P1002, P1008, P1017). A load or availability problem of the
 * moment, not a fault of the request: asking again later may succeed. Reads that bypass Prisma
 * (PrismaService.rows) fail with node-postgres' own errors: the same failures are recognised there.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseBusyError) return true;
  if (error instanceof Prisma.PrismaClientKnownRequestError) {
    return DATABASE_UNAVAILABLE_CODES.has(error.code) || UNAVAILABLE_DRIVER_KINDS.has(driverErrorKind(error));
  }
  return isConnectionFailure(error);
}

/**
 * This process lets only a few requests of one kind use the database at once (a bulkhead, such as
 * agents' unit reports), so that they leave connections to everything else, and this request
 * waited too long for its turn.
 */
export class DatabaseBusyError extends Error {}

const DATABASE_UNAVAILABLE_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2028']);

/**
 * A raw statement ($queryRaw, $executeRaw) that fails is P2010 whatever the cause, so the cause
 * is read from the driver adapter's error: these kinds are what P1001, P1017 and P1008 say of a
 * model query.
 */
const UNAVAILABLE_DRIVER_KINDS = new Set<string | undefined>([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
]);

function driverErrorKind(error: Prisma.PrismaClientKnownRequestError): string | undefined {
  const cause = (error.meta?.driverAdapterError as { cause?: { kind?: unknown } } | undefined)?.cause;
  return typeof cause?.kind === 'string' ? cause.kind : undefined;
}

/** What the socket says when the server cannot be reached or dropped the connection. */
const SOCKET_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE']);

/**
 * SQLSTATEs of a server that is going away or cannot take the connection: too many connections,
 * shutting down, crashed, starting up (57P01–57P03); class 08 is a broken connection.
 */
const SERVER_UNAVAILABLE = /^(08...|53300|57P0[123])$/;

/** node-postgres' own messages when its connection ended or never came (no code attached). */
const DRIVER_CONNECTION_LOST =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

/** A node-postgres error about the connection, not about the statement. */
function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return SOCKET_FAILURES.has(code) || SERVER_UNAVAILABLE.test(code);
  return DRIVER_CONNECTION_LOST.test(error.message);
}

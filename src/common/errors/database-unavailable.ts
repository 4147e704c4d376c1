import { Prisma } from '../../generated/prisma/client';

/**
 * The database could not serve a request in time: no pool connection came free (P2024), an
 * interactive transaction outlived its timeout or was already closed (P2028), or the server could
 * not be reached or went away (P1001, P1002, P1008, P1017). A load or availability problem of the
 * moment, not a fault of the request: asking again later may succeed.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && DATABASE_UNAVAILABLE_CODES.has(error.code);
}

const DATABASE_UNAVAILABLE_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2028']);

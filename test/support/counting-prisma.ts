import { parseConfig } from '../../src/config/config.schema';
import { PrismaService } from '../../src/infra/prisma/prisma.service';
import { testEnv } from './env';

/** A PrismaService on `databaseUrl` that counts the statements run through `rows` (every batched statement goes through it). */
export interface CountingPrisma {
  prisma: PrismaService;
  /** The statements `work` ran, and its result. */
  counted: <T>(work: () => Promise<T>) => Promise<{ result: T; statements: number }>;
}

export function countingPrisma(databaseUrl: string): CountingPrisma {
  const prisma = new PrismaService(parseConfig({ DATABASE_URL: databaseUrl, REDIS_URL: testEnv.redisUrl }));
  let statements = 0;
  const rows = prisma.rows.bind(prisma);
  prisma.rows = (sql) => {
    statements += 1;
    return rows(sql);
  };
  return {
    prisma,
    counted: async (work) => {
      const start = statements;
      const result = await work();
      return { result, statements: statements - start };
    },
  };
}

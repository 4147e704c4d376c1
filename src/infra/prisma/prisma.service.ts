import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { PrismaPg } from '@prisma/adapter-pg';
import { Pool, type QueryResult } from 'pg';
import { waitAtMost } from '../../common/concurrency/wait-at-most';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { Prisma, PrismaClient } from '../../generated/prisma/client';

/** How long a start waits for its ready connections before it goes on without them. */
const POOL_WARM_UP_WAIT_MS = 5_000;

/** The one Prisma client of a process. Only repositories inject it. */
@Injectable()
export class PrismaService extends PrismaClient implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(PrismaService.name);
  /** The connections under Prisma's adapter, shared with `rows`. */
  private readonly pool: Pool;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    const pool = new Pool({
      connectionString: config.DATABASE_URL,
      max: config.DATABASE_POOL_SIZE,
      min: config.DATABASE_POOL_MIN,
      // Kept connections may sit idle for hours: without keepalive, one a NAT or firewall dropped
      // silently would hold the next query until the kernel gives up on it.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    super({ adapter: new PrismaPg(pool) });
    this.pool = pool;
    // A pooled connection that breaks while idle is dropped by the pool; unheard, its error would
    // end the process (the adapter listens too, but only once Prisma first connects).
    pool.on('error', (error) => this.logger.warn({ err: error }, 'an idle database connection failed'));
  }

  /**
   * The rows of one statement as node-postgres reads them, past Prisma's result pipeline, which
   * costs twice the CPU on a page of a thousand rows and more than the round trip on a statement
   * of one row. For reads of many rows and for the statements every task or agent request runs,
   * whose columns need no conversion beyond node-postgres' own (text, numbers, jsonb, timestamptz
   * as Date); the SQL is a Prisma.Sql, so values are always parameters.
   */
  async rows<T>(query: Prisma.Sql): Promise<T[]> {
    return (await this.run(query)).rows as T[];
  }

  /** The number of rows one statement changed, as `rows` reads (for the writes every task runs). */
  async execute(query: Prisma.Sql): Promise<number> {
    return (await this.run(query)).rowCount ?? 0;
  }

  private run(query: Prisma.Sql): Promise<QueryResult> {
    return this.pool.query({ text: query.text, values: query.values });
  }

  /** Readiness probe: one round trip to the database. */
  async ping(): Promise<void> {
    await this.$queryRaw`SELECT 1`;
  }

  /**
   * Opens the pool's DATABASE_POOL_MIN connections now, which it then keeps while idle: otherwise the
   * first task after a start waits for a connection of its own, opened while whatever woke the
   * worker loads the database. At module init, not bootstrap: this global module initialises before
   * the worker's queue consumers start taking jobs. Best effort, and waited for at most a few
   * seconds: a database that is away is the readiness probe's news, not a reason to hold the start.
   */
  async onModuleInit(): Promise<void> {
    const opening = Array.from({ length: this.config.DATABASE_POOL_MIN }, () =>
      this.pool.connect().then((client) => client.release()),
    );
    const opened = Promise.all(opening).catch((error: unknown) =>
      this.logger.warn({ err: error }, 'could not open the database connections kept ready'),
    );
    await waitAtMost(opened, POOL_WARM_UP_WAIT_MS);
  }

  async onModuleDestroy(): Promise<void> {
    await this.$disconnect();
    await this.pool.end();
  }
}

import type { QueueName } from '@drover/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { LanePresence } from '../infra/queue/lane-presence';
import type { RedisClient } from '../infra/redis/redis-connection';
import { PrismaService } from '../infra/prisma/prisma.service';
import { REDIS } from '../infra/redis/redis.module';

export interface DependencyCheck {
  status: 'up' | 'down';
  latencyMs: number;
  error?: string;
}

export interface Readiness {
  status: 'ready' | 'not_ready';
  checks: { database: DependencyCheck; redis: DependencyCheck };
  /**
   * Worker processes consuming each lane (absent when Redis did not answer). Not part of the status:
   * the API serves without workers, but a lane at 0 holds its jobs until one starts.
   */
  workers?: Record<QueueName, number>;
}

const CHECK_TIMEOUT_MS = 2_000;

async function timed(probe: () => Promise<unknown>): Promise<DependencyCheck> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { status: 'up', latencyMs: Math.round(performance.now() - started) };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { status: 'down', latencyMs: Math.round(performance.now() - started), error: message };
  } finally {
    clearTimeout(timer);
  }
}

@Injectable()
export class HealthService {
  constructor(
    private readonly prisma: PrismaService,
    @Inject(REDIS) private readonly redis: RedisClient,
    private readonly lanes: LanePresence,
  ) {}

  async readiness(): Promise<Readiness> {
    let workers: Record<QueueName, number> | undefined;
    const [database, redis] = await Promise.all([
      timed(() => this.prisma.ping()),
      timed(() => this.redis.ping()),
      // Counted beside the checks, within the same bound, and never deciding the status.
      timed(async () => (workers = await this.lanes.workers())),
    ]);
    const ready = database.status === 'up' && redis.status === 'up';
    return { status: ready ? 'ready' : 'not_ready', checks: { database, redis }, ...(workers ? { workers } : {}) };
  }
}

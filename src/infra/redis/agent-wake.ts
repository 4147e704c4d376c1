import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import type Redis from 'ioredis';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { REDIS } from './redis.token';

/**
 * Wakes an agent's waiting request for work within milliseconds of a task being offered to its
 * host, on whichever API replica holds that request: a Redis channel per host, one pattern
 * subscription per process. A lost wake-up costs only latency: the request looks again when its
 * wait ends.
 */
@Injectable()
export class AgentWake implements OnModuleDestroy {
  private readonly logger = new Logger(AgentWake.name);
  private subscriber: Redis | null = null;
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async wake(hostId: string): Promise<void> {
    await this.redis.publish(this.channel(hostId), '1');
  }

  /** Resolves when the host is woken, after `ms`, or when `signal` aborts, whichever comes first. */
  async waitForWork(hostId: string, ms: number, signal: AbortSignal): Promise<void> {
    await this.subscribe();
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        const set = this.waiting.get(hostId);
        set?.delete(done);
        if (set?.size === 0) this.waiting.delete(hostId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
      const set = this.waiting.get(hostId) ?? new Set();
      set.add(done);
      this.waiting.set(hostId, set);
    });
  }

  onModuleDestroy(): void {
    this.subscriber?.disconnect();
    for (const waiters of this.waiting.values()) for (const wake of waiters) wake();
  }

  private channel(hostId: string): string {
    return `${this.config.QUEUE_PREFIX}:agent-wake:${hostId}`;
  }

  private async subscribe(): Promise<void> {
    if (this.subscriber) return;
    const subscriber = this.redis.duplicate();
    this.subscriber = subscriber;
    subscriber.on('error', (error: Error) => this.logger.warn(`agent wake-up channel: ${error.message}`));
    const prefix = this.channel('');
    subscriber.on('pmessage', (_pattern: string, channel: string) => {
      for (const wake of [...(this.waiting.get(channel.slice(prefix.length)) ?? [])]) wake();
    });
    await subscriber.psubscribe(`${prefix}*`);
  }
}

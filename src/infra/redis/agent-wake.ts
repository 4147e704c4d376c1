import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { duplicateRedisClient, type RedisClient } from './redis-connection';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';
import { REDIS } from './redis.token';

export interface WakeListener {
  /** Resolves true when woken (or aborted), false when `ms` passed without a wake-up. */
  wait(ms: number): Promise<boolean>;
  close(): void;
}

/**
 * Wakes an agent's waiting request for work within milliseconds of a task being offered to its
 * host, on whichever API replica holds that request: a Redis channel per host, one pattern
 * subscription per process. A lost wake-up costs only latency: the request looks again when its
 * wait ends.
 */
@Injectable()
export class AgentWake implements OnModuleDestroy {
  private readonly logger = new Logger(AgentWake.name);
  private subscriber: RedisClient | null = null;
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async wake(hostId: string): Promise<void> {
    await this.redis.publish(this.channel(hostId), '1');
  }

  /**
   * Listens for wake-ups of the host from now on (so none published while the caller looks for work
   * is missed): `wait(ms)` resolves true at once when one came since the last wait, else at the next
   * one or when `signal` aborts, and false after `ms` without one. Close it when done.
   */
  async listen(hostId: string, signal: AbortSignal): Promise<WakeListener> {
    await this.subscribe();
    let woken = false;
    let release: ((byWake: boolean) => void) | null = null;
    const onWake = (): void => {
      woken = true;
      release?.(true);
    };
    const waiters = this.waiting.get(hostId) ?? new Set();
    waiters.add(onWake);
    this.waiting.set(hostId, waiters);
    signal.addEventListener('abort', onWake);
    return {
      wait: (ms) =>
        new Promise<boolean>((resolve) => {
          if (woken || signal.aborted) {
            woken = false;
            resolve(true);
            return;
          }
          const timer = setTimeout(() => release?.(false), ms);
          release = (byWake) => {
            clearTimeout(timer);
            release = null;
            woken = false;
            resolve(byWake);
          };
        }),
      close: () => {
        signal.removeEventListener('abort', onWake);
        release?.(true);
        waiters.delete(onWake);
        if (waiters.size === 0) this.waiting.delete(hostId);
      },
    };
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
    const subscriber = duplicateRedisClient(this.redis);
    this.subscriber = subscriber;
    subscriber.on('error', (error: Error) => this.logger.warn(`agent wake-up channel: ${error.message}`));
    const prefix = this.channel('');
    subscriber.on('pmessage', (_pattern: string, channel: string) => {
      for (const wake of [...(this.waiting.get(channel.slice(prefix.length)) ?? [])]) wake();
    });
    await subscriber.psubscribe(`${prefix}*`);
  }
}

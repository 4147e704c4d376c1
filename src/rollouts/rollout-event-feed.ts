import { Inject, Injectable, Logger } from '@nestjs/common';
import { DomainError } from '../common/errors/domain-errors';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { MetricsService } from '../infra/metrics/metrics.service';
import { PgNotifications } from '../infra/prisma/pg-notifications';
import { RolloutEvent, RolloutsRepository } from './rollouts.repository';

/** The channel the rollout_events trigger notifies, with the rollout id as payload. */
const CHANNEL = 'drover_rollout_events';
export const EVENT_PAGE = 500;
/**
 * A shared source re-reads this often without being woken: it notices a rollout that settled
 * without writing an event, and anything a lost notification connection missed.
 */
const SAFETY_RECHECK_MS = 5_000;

export class TooManyStreamsError extends DomainError {
  readonly status = 429;
  readonly code = 'too_many_streams';
  readonly title = 'Too many open event streams';

  constructor(limit: number) {
    super(`this token already has ${limit} rollout event streams open on this API process; close one first`);
  }
}

type FollowerItem = RolloutEvent | 'end';

/** One open stream's view of a shared source: the events read since it joined, then 'end'. */
export class Follower {
  private readonly queue: FollowerItem[] = [];
  private wake: (() => void) | null = null;

  constructor(readonly ready: Promise<void>) {}

  push(item: FollowerItem): void {
    this.queue.push(item);
    this.wake?.();
  }

  /** The next item, or 'end' once the source ended or `signal` aborted. */
  async next(signal: AbortSignal): Promise<FollowerItem> {
    while (this.queue.length === 0) {
      if (signal.aborted) return 'end';
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener('abort', done);
          this.wake = null;
          resolve();
        };
        this.wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
    return this.queue.shift()!;
  }
}

/**
 * The events of one rollout as they are written, read once for every follower in this process:
 * woken by the rollout_events NOTIFY (and a slow safety re-check), it reads what is new and hands
 * it to each follower; it ends once the rollout is settled and all of it was handed out.
 */
class RolloutEventSource {
  readonly followers = new Set<Follower>();
  readonly ready: Promise<void>;
  private last = 0n;
  private reading = false;
  private readAgain = false;
  private ended = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly rolloutId: string,
    private readonly rollouts: RolloutsRepository,
    private readonly metrics: MetricsService,
    private readonly logger: Logger,
    private readonly onEnd: (source: RolloutEventSource) => void,
  ) {
    this.ready = this.rollouts.lastEventId(rolloutId).then((last) => {
      this.last = last;
      void this.wake();
    });
    this.timer = setInterval(() => void this.wake(), SAFETY_RECHECK_MS);
    this.timer.unref();
  }

  async wake(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    try {
      do {
        this.readAgain = false;
        await this.readNew();
      } while (this.readAgain && !this.ended);
    } catch (error) {
      // The safety re-check tries again; followers keep waiting (their heartbeats keep them open).
      this.logger.warn({ rolloutId: this.rolloutId, err: error }, 'could not read rollout events');
    } finally {
      this.reading = false;
    }
  }

  stop(): void {
    this.ended = true;
    clearInterval(this.timer);
  }

  private async readNew(): Promise<void> {
    // Settled before reading: every event of a settled rollout is in the reads that follow.
    const settled = await this.rollouts.isSettled(this.rolloutId);
    for (;;) {
      this.metrics.rolloutEventReads.inc();
      const events = await this.rollouts.eventsAfter(this.rolloutId, this.last, EVENT_PAGE);
      for (const event of events) {
        this.last = event.id;
        for (const follower of this.followers) follower.push(event);
      }
      if (events.length < EVENT_PAGE) break;
    }
    if (settled) {
      for (const follower of this.followers) follower.push('end');
      this.onEnd(this);
    }
  }
}

/**
 * Per process, one shared source per followed rollout, and a cap on the streams one token holds
 * open. Followers replay from the table (the log) and then take the live events from the source.
 */
@Injectable()
export class RolloutEventFeed {
  private readonly logger = new Logger(RolloutEventFeed.name);
  private readonly sources = new Map<string, RolloutEventSource>();
  private readonly streamsPerToken = new Map<string, number>();
  private listening: Promise<void> | null = null;

  constructor(
    private readonly rollouts: RolloutsRepository,
    private readonly notifications: PgNotifications,
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Counts a stream of the token, or refuses it (429) at the limit; returns its release. */
  openStream(tokenId: string): () => void {
    const open = this.streamsPerToken.get(tokenId) ?? 0;
    if (open >= this.config.ROLLOUT_EVENT_STREAMS_PER_TOKEN) {
      throw new TooManyStreamsError(this.config.ROLLOUT_EVENT_STREAMS_PER_TOKEN);
    }
    this.streamsPerToken.set(tokenId, open + 1);
    this.metrics.rolloutEventStreams.inc();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.metrics.rolloutEventStreams.dec();
      const left = (this.streamsPerToken.get(tokenId) ?? 1) - 1;
      if (left === 0) this.streamsPerToken.delete(tokenId);
      else this.streamsPerToken.set(tokenId, left);
    };
  }

  /**
   * Joins the rollout's shared source. Once `ready` resolves, every event after what the table
   * holds at that moment reaches the follower, so replaying the table then gives all of them.
   */
  async follow(rolloutId: string): Promise<{ follower: Follower; leave: () => void }> {
    await this.listen();
    let source = this.sources.get(rolloutId);
    if (!source) {
      source = new RolloutEventSource(rolloutId, this.rollouts, this.metrics, this.logger, (ended) =>
        this.remove(rolloutId, ended),
      );
      this.sources.set(rolloutId, source);
      this.metrics.rolloutEventSources.set(this.sources.size);
    }
    const follower = new Follower(source.ready);
    source.followers.add(follower);
    const joined = source;
    return {
      follower,
      leave: () => {
        joined.followers.delete(follower);
        if (joined.followers.size === 0) this.remove(rolloutId, joined);
      },
    };
  }

  private remove(rolloutId: string, source: RolloutEventSource): void {
    source.stop();
    if (this.sources.get(rolloutId) === source) this.sources.delete(rolloutId);
    this.metrics.rolloutEventSources.set(this.sources.size);
  }

  private listen(): Promise<void> {
    this.listening ??= this.notifications
      .listen(CHANNEL, (rolloutId) => {
        const woken = rolloutId === null ? [...this.sources.values()] : [this.sources.get(rolloutId)];
        for (const source of woken) void source?.wake();
      })
      .catch((error: unknown) => {
        this.listening = null;
        throw error;
      });
    return this.listening;
  }
}

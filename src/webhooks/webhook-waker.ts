import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { PgNotifications } from '../infra/prisma/pg-notifications';
import { JobProducer } from '../infra/queue/job-producer';
import { WEBHOOK_CHANNEL, WebhooksRepository } from './webhooks.repository';

/** Wake-ups that arrive this close together are served by one pass. */
const COALESCE_MS = 50;

/**
 * Worker side: listens for the webhook_events NOTIFY (sent at commit by the triggers, and by
 * subscription changes) and wakes the delivery job of each subscription concerned, so events go
 * out promptly. A missed notification only delays them until the reconciler's next pass.
 */
@Injectable()
export class WebhookWaker implements OnApplicationBootstrap {
  private readonly logger = new Logger(WebhookWaker.name);
  private pending: Set<string> | 'all' | null = null;

  constructor(
    private readonly notifications: PgNotifications,
    private readonly webhooks: WebhooksRepository,
    private readonly producer: JobProducer,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.notifications.listen(WEBHOOK_CHANNEL, (payload) => this.request(payload || null));
    this.request(null);
  }

  /** Queues a wake-up of one subscription, or of all (null). */
  private request(subscriptionId: string | null): void {
    const first = this.pending === null;
    if (subscriptionId === null || this.pending === 'all') this.pending = 'all';
    else this.pending = new Set(this.pending ?? []).add(subscriptionId);
    if (first) setTimeout(() => void this.wake(), COALESCE_MS).unref();
  }

  private async wake(): Promise<void> {
    const pending = this.pending;
    this.pending = null;
    try {
      const ids = pending === 'all' ? await this.webhooks.ids() : [...(pending ?? [])];
      for (const id of ids) await this.producer.wakeWebhookSubscription(id);
    } catch (error) {
      this.logger.warn({ err: error }, 'could not wake webhook deliveries; the reconciler will');
    }
  }
}

import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import { JobDeferred } from '../infra/queue/job-deferred';
import { JobProducer } from '../infra/queue/job-producer';
import { attemptOutcome, RetryPolicy } from './webhook-retry';
import { sendWebhook } from './webhook-sender';
import {
  ATTEMPT_HEADER,
  DELIVERY_ID_HEADER,
  EVENT_ID_HEADER,
  EVENT_TYPE_HEADER,
  SIGNATURE_HEADER,
  signWebhook,
} from './webhook-signature';
import { TargetPolicy } from './webhook-target';
import { DueDelivery, WebhooksRepository } from './webhooks.repository';

/**
 * How long an idle delivery job sleeps when nothing wakes it: a safety net only, since every
 * event's NOTIFY and every reconciler pass wake it.
 */
const IDLE_RECHECK_MS = 60_000;
/** An attempt's lease outlasts its timeout by this much before a lost attempt is tried again. */
const LEASE_MARGIN_MS = 5_000;

/** The request body of an event: the same bytes in every attempt and redelivery. */
export function webhookBody(event: Pick<DueDelivery, 'eventId' | 'type' | 'occurredAt' | 'data'>): string {
  return JSON.stringify({
    id: event.eventId,
    type: event.type,
    occurredAt: event.occurredAt.toISOString(),
    data: event.data,
  });
}

/**
 * Delivers a subscription's events, one at a time in order: the oldest pending delivery first,
 * retried with backoff until it is delivered or its attempts are used up (then the next one
 * goes). Runs in the subscription's one background job (JobName.DeliverWebhooks), never in the
 * path of a rollout or an operation: those only write rows.
 */
@Injectable()
export class WebhookDeliveryService {
  private readonly logger = new Logger(WebhookDeliveryService.name);
  private readonly retry: RetryPolicy;
  private readonly target: TargetPolicy;

  constructor(
    private readonly webhooks: WebhooksRepository,
    private readonly producer: JobProducer,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.retry = {
      maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
      baseDelayMs: config.WEBHOOK_RETRY_BASE_MS,
      maxDelayMs: config.WEBHOOK_RETRY_MAX_MS,
    };
    this.target = {
      allowLoopback: config.WEBHOOK_ALLOW_LOOPBACK,
      allowPrivateNetworks: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
    };
  }

  /**
   * Sends what is due now; defers the job (JobDeferred) until the next delivery is due or a
   * wake-up comes; returns once the subscription is gone.
   */
  async deliver(subscriptionId: string): Promise<{ sent: number }> {
    const wakeSignal = this.producer.webhookWakeSignal(subscriptionId);
    await this.producer.takeWakeSignal(wakeSignal);
    let sent = 0;
    for (;;) {
      const subscription = await this.webhooks.findForDelivery(subscriptionId);
      if (!subscription) return { sent };
      const horizon = await this.webhooks.committedHorizon();
      if (!(await this.webhooks.advanceCursor(subscriptionId, horizon))) return { sent };
      const head = await this.webhooks.head(subscriptionId);
      if (!head) throw new JobDeferred(IDLE_RECHECK_MS, wakeSignal);
      if (head.dueInMs > 0) throw new JobDeferred(Math.min(head.dueInMs, IDLE_RECHECK_MS), wakeSignal);
      const leaseMs = this.config.WEBHOOK_TIMEOUT_MS + LEASE_MARGIN_MS;
      const attempt = await this.webhooks.claimAttempt(head.id, head.attempts, leaseMs);
      if (attempt === null) continue;
      sent += 1;
      await this.attempt(subscriptionId, subscription, head, attempt);
    }
  }

  /** Wakes every subscription's job: the reconciler's pass (it also re-queues lost jobs). */
  async reconcile(): Promise<number> {
    const ids = await this.webhooks.ids();
    for (const id of ids) await this.producer.wakeWebhookSubscription(id);
    return ids.length;
  }

  private async attempt(
    subscriptionId: string,
    subscription: { url: string; secret: string },
    delivery: DueDelivery,
    attempt: number,
  ): Promise<void> {
    const body = webhookBody(delivery);
    const result = await sendWebhook(
      {
        url: subscription.url,
        body,
        timeoutMs: this.config.WEBHOOK_TIMEOUT_MS,
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'drover-webhooks/1',
          [EVENT_ID_HEADER]: delivery.eventId,
          [EVENT_TYPE_HEADER]: delivery.type,
          [DELIVERY_ID_HEADER]: delivery.id,
          [ATTEMPT_HEADER]: String(attempt),
          [SIGNATURE_HEADER]: signWebhook(subscription.secret, Math.floor(Date.now() / 1000), body),
        },
      },
      this.target,
    );
    const outcome = attemptOutcome(this.retry, attempt - delivery.attemptBase, result.statusCode);
    const recorded = await this.webhooks.recordAttempt(delivery.id, attempt, {
      status: outcome.status,
      retryInMs: outcome.status === 'pending' ? outcome.retryInMs : 0,
      ...result,
    });
    const fields = {
      subscriptionId,
      deliveryId: delivery.id,
      eventId: delivery.eventId,
      attempt,
      statusCode: result.statusCode,
      latencyMs: result.latencyMs,
    };
    if (!recorded) this.logger.warn(fields, 'a later attempt superseded this one; its result is not recorded');
    else if (outcome.status === 'delivered') this.logger.debug(fields, 'webhook delivered');
    else this.logger.warn({ ...fields, error: result.error, outcome: outcome.status }, 'webhook attempt failed');
  }
}

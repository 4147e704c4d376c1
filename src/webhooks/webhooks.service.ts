import { Inject, Injectable } from '@nestjs/common';
import { z } from 'zod';
import type { AuditActor } from '../audit/audit-actor';
import { RequestValidationError } from '../common/errors/domain-errors';
import { decodeCursor, Page, toPage } from '../common/pagination/cursor';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import type {
  CreatedWebhookResponse,
  CreateWebhookRequest,
  ListWebhookDeliveriesQuery,
  ListWebhooksQuery,
  WebhookDeliveryResponse,
  WebhookResponse,
} from './dto/webhook.dto';
import { generateWebhookSecret } from './webhook-signature';
import { webhookUrlProblem } from './webhook-target';
import {
  DeliveryWithEvent,
  WebhooksRepository,
  WebhookDeliveryStatus,
  WebhookSubscription,
} from './webhooks.repository';

const nameCursorSchema = z.object({ name: z.string() });
const positionCursorSchema = z.object({ position: z.string().regex(/^\d{1,19}$/) });

type DeliveryCounts = Partial<Record<WebhookDeliveryStatus, number>>;

function toWebhookResponse(subscription: WebhookSubscription, counts: DeliveryCounts = {}): WebhookResponse {
  return {
    id: subscription.id,
    name: subscription.name,
    url: subscription.url,
    events: subscription.events,
    description: subscription.description,
    createdBy: subscription.createdBy,
    createdAt: subscription.createdAt.toISOString(),
    deliveries: { pending: counts.pending ?? 0, delivered: counts.delivered ?? 0, failed: counts.failed ?? 0 },
  };
}

function toDeliveryResponse(delivery: DeliveryWithEvent): WebhookDeliveryResponse {
  return {
    id: delivery.id,
    eventId: delivery.eventId,
    eventType: delivery.event.type,
    occurredAt: delivery.event.occurredAt.toISOString(),
    status: delivery.status,
    attempts: delivery.attempts,
    nextAttemptAt: delivery.status === 'pending' ? delivery.nextAttemptAt.toISOString() : null,
    lastAttemptAt: delivery.lastAttemptAt?.toISOString() ?? null,
    lastStatusCode: delivery.lastStatusCode,
    lastLatencyMs: delivery.lastLatencyMs,
    lastError: delivery.lastError,
    deliveredAt: delivery.deliveredAt?.toISOString() ?? null,
    createdAt: delivery.createdAt.toISOString(),
  };
}

/** Webhook subscriptions and their delivery log, as the API manages them (delivery: WebhookDeliveryService). */
@Injectable()
export class WebhooksService {
  constructor(
    private readonly webhooks: WebhooksRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async create(request: CreateWebhookRequest, actor: AuditActor): Promise<CreatedWebhookResponse> {
    const problem = webhookUrlProblem(request.url, {
      allowLoopback: this.config.WEBHOOK_ALLOW_LOOPBACK,
      allowPrivateNetworks: this.config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
    });
    if (problem) throw new RequestValidationError([{ field: 'url', message: problem }]);
    const secret = generateWebhookSecret();
    const subscription = await this.webhooks.create({ ...request, secret }, actor);
    return { ...toWebhookResponse(subscription), secret };
  }

  async get(id: string): Promise<WebhookResponse> {
    const subscription = await this.webhooks.find(id);
    const counts = await this.webhooks.countDeliveries([id]);
    return toWebhookResponse(subscription, counts.get(id));
  }

  async list(query: ListWebhooksQuery): Promise<Page<WebhookResponse>> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, nameCursorSchema).name;
    const rows = await this.webhooks.list(after, query.limit + 1);
    const counts = await this.webhooks.countDeliveries(rows.map((row) => row.id));
    return toPage(
      rows,
      query.limit,
      (row) => toWebhookResponse(row, counts.get(row.id)),
      (row) => ({ name: row.name }),
    );
  }

  delete(id: string, actor: AuditActor): Promise<void> {
    return this.webhooks.delete(id, actor);
  }

  async deliveries(id: string, query: ListWebhookDeliveriesQuery): Promise<Page<WebhookDeliveryResponse>> {
    await this.webhooks.find(id);
    const before =
      query.cursor === undefined ? undefined : BigInt(decodeCursor(query.cursor, positionCursorSchema).position);
    const rows = await this.webhooks.listDeliveries(id, query.status, before, query.limit + 1);
    return toPage(rows, query.limit, toDeliveryResponse, (row) => ({ position: row.position.toString() }));
  }

  async redeliver(id: string, deliveryId: string, actor: AuditActor): Promise<WebhookDeliveryResponse> {
    await this.webhooks.find(id);
    return toDeliveryResponse(await this.webhooks.redeliver(id, deliveryId, actor));
  }
}

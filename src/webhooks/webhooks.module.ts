import { Module } from '@nestjs/common';
import { PgNotifications } from '../infra/prisma/pg-notifications';
import { QueueModule } from '../infra/queue/queue.module';
import { WebhookDeliveryService } from './webhook-delivery.service';
import { WebhookWaker } from './webhook-waker';
import { WebhooksController } from './webhooks.controller';
import { WebhooksRepository } from './webhooks.repository';
import { WebhooksService } from './webhooks.service';

/** Webhook subscriptions and their delivery log (the API), without the delivery machinery. */
@Module({ controllers: [WebhooksController], providers: [WebhooksRepository, WebhooksService] })
export class WebhooksModule {}

/**
 * The worker's side: the delivery jobs' service and the NOTIFY listener that wakes them. Events
 * are written by database triggers, so nothing else in the worker knows about webhooks.
 */
@Module({
  imports: [QueueModule],
  providers: [WebhooksRepository, WebhookDeliveryService, WebhookWaker, PgNotifications],
  exports: [WebhookDeliveryService],
})
export class WebhookDeliveryModule {}

import { z } from 'zod';
import { pageQueryShape, pageSchema } from '../../common/pagination/cursor';
import { createZodDto } from '../../common/validation/zod-dto';
import { eventPatternProblem, WEBHOOK_EVENT_KINDS } from '../webhook-events';

const WEBHOOK_NAME = /^[a-z0-9]([a-z0-9-]{0,98}[a-z0-9])?$/;

const eventPatternSchema = z.string().superRefine((pattern, context) => {
  const problem = eventPatternProblem(pattern);
  if (problem) context.addIssue({ code: 'custom', message: problem });
});

const deliveryStatusSchema = z.enum(['pending', 'delivered', 'failed']);

export class CreateWebhookDto extends createZodDto(
  z
    .strictObject({
      name: z
        .string()
        .regex(WEBHOOK_NAME, {
          error: 'must be 1-100 characters [a-z0-9-], starting and ending with a letter or digit',
        })
        .describe('A unique name, e.g. ci-pipeline or chat-ops'),
      url: z
        .string()
        .max(2048)
        .describe(
          'Where events are POSTed: http:// or https://, no user name or password. Loopback, link-local and ' +
            'metadata addresses are refused (see WEBHOOK_ALLOW_LOOPBACK and WEBHOOK_ALLOW_PRIVATE_NETWORKS)',
        ),
      events: z
        .array(eventPatternSchema)
        .min(1)
        .max(32)
        .refine((patterns) => new Set(patterns).size === patterns.length, { error: 'must not repeat a pattern' })
        .describe(
          `Event types to receive: exact types ('rollout.finished', 'operation.failed') or prefixes ending in ` +
            `'*' ('rollout.*', 'rollout.host.*', '*'). Kinds: ${WEBHOOK_EVENT_KINDS.join(', ')}`,
        ),
      description: z.string().max(1000).default('').describe('What the receiver does, for the people who read it'),
    })
    .describe('A webhook subscription'),
) {}

export class WebhookParamsDto extends createZodDto(z.object({ id: z.uuid().describe('Subscription id') })) {}

export class WebhookDeliveryParamsDto extends createZodDto(
  z.object({ id: z.uuid().describe('Subscription id'), deliveryId: z.uuid().describe('Delivery id') }),
) {}

export class ListWebhooksQueryDto extends createZodDto(z.object({ ...pageQueryShape })) {}

export class ListWebhookDeliveriesQueryDto extends createZodDto(
  z.object({ status: deliveryStatusSchema.optional().describe('Only deliveries in this state'), ...pageQueryShape }),
) {}

const webhookSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    description: z.string(),
    createdBy: z.string().describe('Name of the token that created it'),
    createdAt: z.iso.datetime(),
    deliveries: z
      .object({ pending: z.number().int(), delivered: z.number().int(), failed: z.number().int() })
      .describe('Deliveries per state'),
  })
  .describe('A webhook subscription (its secret is shown only when it is created)');

export class WebhookDto extends createZodDto(webhookSchema) {}

export class WebhookPageDto extends createZodDto(pageSchema(webhookSchema)) {}

export class CreatedWebhookDto extends createZodDto(
  webhookSchema
    .extend({
      secret: z
        .string()
        .describe(
          'The signing secret (HMAC-SHA256 key of the Drover-Signature header). Shown only now: store it with the receiver',
        ),
    })
    .describe('The new subscription with its signing secret'),
) {}

const deliverySchema = z
  .object({
    id: z.uuid(),
    eventId: z.uuid().describe('The event id (Drover-Event-Id): the same in every attempt and redelivery'),
    eventType: z.string(),
    occurredAt: z.iso.datetime(),
    status: deliveryStatusSchema,
    attempts: z.number().int().describe('Attempts made (including those before a redelivery)'),
    nextAttemptAt: z.iso.datetime().nullable().describe('When the next attempt is due (pending only)'),
    lastAttemptAt: z.iso.datetime().nullable(),
    lastStatusCode: z.number().int().nullable().describe('HTTP status of the last attempt; null when none came'),
    lastLatencyMs: z.number().int().nullable(),
    lastError: z.string().nullable().describe('Why the last attempt failed'),
    deliveredAt: z.iso.datetime().nullable(),
    createdAt: z.iso.datetime(),
  })
  .describe('One event sent (or to be sent) to one subscription');

export class WebhookDeliveryDto extends createZodDto(deliverySchema) {}

export class WebhookDeliveryPageDto extends createZodDto(pageSchema(deliverySchema)) {}

export type CreateWebhookRequest = z.output<typeof CreateWebhookDto.schema>;
export type WebhookResponse = z.output<typeof webhookSchema>;
export type CreatedWebhookResponse = z.output<typeof CreatedWebhookDto.schema>;
export type WebhookDeliveryResponse = z.output<typeof deliverySchema>;
export type ListWebhooksQuery = z.output<typeof ListWebhooksQueryDto.schema>;
export type ListWebhookDeliveriesQuery = z.output<typeof ListWebhookDeliveriesQueryDto.schema>;

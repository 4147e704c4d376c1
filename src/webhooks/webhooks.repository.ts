import { AUDIT_ACTION } from '@drover/protocol';
import { Injectable } from '@nestjs/common';
import { AuditActor, auditActorColumns } from '../audit/audit-actor';
import { ResourceConflictError, ResourceNotFoundError, StateConflictError } from '../common/errors/domain-errors';
import { Prisma, WebhookDelivery, WebhookDeliveryStatus, WebhookSubscription } from '../generated/prisma/client';
import { isUniqueViolation } from '../infra/prisma/prisma-errors';
import { PrismaService } from '../infra/prisma/prisma.service';
import { eventPatternToLike } from './webhook-events';

export type { WebhookSubscription, WebhookDeliveryStatus };

/** The channel the webhook_events triggers (and the changes below) notify; payload: a subscription id or ''. */
export const WEBHOOK_CHANNEL = 'drover_webhook_events';

export type DeliveryWithEvent = WebhookDelivery & { event: { type: string; occurredAt: Date } };

/** The head of a subscription's queue: its oldest pending delivery, with what to send. */
export interface DueDelivery {
  id: string;
  attempts: number;
  attemptBase: number;
  /** Milliseconds until it is due by the database clock (0: now). */
  dueInMs: number;
  eventId: string;
  type: string;
  occurredAt: Date;
  data: Prisma.JsonValue;
}

export interface AttemptRecord {
  status: WebhookDeliveryStatus;
  retryInMs: number;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
}

/** What an audit event keeps of a subscription: never its secret, nor a URL path that may hold a token. */
function auditedSubscription(subscription: Pick<WebhookSubscription, 'id' | 'name' | 'url' | 'events'>) {
  const url = new URL(subscription.url);
  return { id: subscription.id, name: subscription.name, origin: url.origin, events: subscription.events };
}

@Injectable()
export class WebhooksRepository {
  constructor(private readonly prisma: PrismaService) {}

  /**
   * Creates a subscription with its `webhook.create` audit event. Its cursor starts at the oldest
   * transaction still running, so it receives every event committed from now on (and possibly a
   * few written just before).
   */
  async create(
    input: { name: string; url: string; secret: string; events: string[]; description: string },
    actor: AuditActor,
  ): Promise<WebhookSubscription> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        const [cursor] = await tx.$queryRaw<{ xmin: bigint }[]>`
          SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin`;
        const subscription = await tx.webhookSubscription.create({
          data: { ...input, cursorXid: cursor!.xmin, createdBy: actor.actorName },
        });
        await tx.auditEvent.create({
          data: {
            ...auditActorColumns(actor),
            action: AUDIT_ACTION.webhookCreate,
            result: 'succeeded',
            parameters: { name: subscription.name },
            after: auditedSubscription(subscription),
          },
        });
        await tx.$executeRaw`SELECT pg_notify(${WEBHOOK_CHANNEL}, ${subscription.id})`;
        return subscription;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ResourceConflictError('webhook', 'name', input.name);
      throw error;
    }
  }

  async find(id: string): Promise<WebhookSubscription> {
    const subscription = await this.prisma.webhookSubscription.findUnique({ where: { id } });
    if (!subscription) throw new ResourceNotFoundError('webhook', id);
    return subscription;
  }

  /** The subscription's URL and secret, or null once it is deleted. */
  findForDelivery(id: string): Promise<Pick<WebhookSubscription, 'url' | 'secret'> | null> {
    return this.prisma.webhookSubscription.findUnique({ where: { id }, select: { url: true, secret: true } });
  }

  /** Up to `take` subscriptions ordered by name, strictly after `afterName`. */
  list(afterName: string | undefined, take: number): Promise<WebhookSubscription[]> {
    return this.prisma.webhookSubscription.findMany({
      where: afterName === undefined ? {} : { name: { gt: afterName } },
      orderBy: { name: 'asc' },
      take,
    });
  }

  async ids(): Promise<string[]> {
    const rows = await this.prisma.webhookSubscription.findMany({ select: { id: true } });
    return rows.map((row) => row.id);
  }

  /** Deliveries per status of each subscription. */
  async countDeliveries(ids: string[]): Promise<Map<string, Partial<Record<WebhookDeliveryStatus, number>>>> {
    const groups = await this.prisma.webhookDelivery.groupBy({
      by: ['subscriptionId', 'status'],
      where: { subscriptionId: { in: ids } },
      _count: { _all: true },
    });
    const counts = new Map<string, Partial<Record<WebhookDeliveryStatus, number>>>();
    for (const group of groups) {
      counts.set(group.subscriptionId, { ...counts.get(group.subscriptionId), [group.status]: group._count._all });
    }
    return counts;
  }

  /** Deletes a subscription and its delivery log, with its `webhook.delete` audit event. */
  async delete(id: string, actor: AuditActor): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      const [deleted] = await tx.$queryRaw<Pick<WebhookSubscription, 'id' | 'name' | 'url' | 'events'>[]>`
        DELETE FROM webhook_subscriptions WHERE id = ${id}::uuid RETURNING id::text, name, url, events`;
      if (!deleted) throw new ResourceNotFoundError('webhook', id);
      await tx.auditEvent.create({
        data: {
          ...auditActorColumns(actor),
          action: AUDIT_ACTION.webhookDelete,
          result: 'succeeded',
          parameters: { name: deleted.name },
          before: auditedSubscription(deleted),
        },
      });
    });
  }

  /** A subscription's deliveries, newest first, strictly before `beforePosition`. */
  listDeliveries(
    subscriptionId: string,
    status: WebhookDeliveryStatus | undefined,
    beforePosition: bigint | undefined,
    take: number,
  ): Promise<DeliveryWithEvent[]> {
    return this.prisma.webhookDelivery.findMany({
      where: {
        subscriptionId,
        ...(status ? { status } : {}),
        ...(beforePosition === undefined ? {} : { position: { lt: beforePosition } }),
      },
      include: { event: { select: { type: true, occurredAt: true } } },
      orderBy: { position: 'desc' },
      take,
    });
  }

  /**
   * Queues a delivered or failed delivery again, due now, with a fresh retry budget, and audits
   * it. A pending one is refused (409): it is already queued.
   */
  async redeliver(subscriptionId: string, deliveryId: string, actor: AuditActor): Promise<DeliveryWithEvent> {
    return this.prisma.$transaction(async (tx) => {
      const updated = await tx.$executeRaw`
        UPDATE webhook_deliveries
        SET status = 'pending', attempt_base = attempts, next_attempt_at = now()
        WHERE id = ${deliveryId}::uuid AND subscription_id = ${subscriptionId}::uuid AND status <> 'pending'`;
      const delivery = await tx.webhookDelivery.findFirst({
        where: { id: deliveryId, subscriptionId },
        include: { event: { select: { type: true, occurredAt: true } } },
      });
      if (!delivery) throw new ResourceNotFoundError('delivery', deliveryId);
      if (updated === 0) {
        throw new StateConflictError('delivery_pending', `delivery '${deliveryId}' is already queued`, 'deliveryId');
      }
      await tx.auditEvent.create({
        data: {
          ...auditActorColumns(actor),
          action: AUDIT_ACTION.webhookRedeliver,
          result: 'succeeded',
          parameters: { subscriptionId, deliveryId, eventId: delivery.eventId, eventType: delivery.event.type },
        },
      });
      await tx.$executeRaw`SELECT pg_notify(${WEBHOOK_CHANNEL}, ${subscriptionId})`;
      return delivery;
    });
  }

  /**
   * The oldest transaction id still running. Read outside any transaction (this statement takes no
   * transaction id of its own): every event written by a transaction below it is committed or
   * rolled back for good.
   */
  async committedHorizon(): Promise<bigint> {
    const [row] = await this.prisma.$queryRaw<{ xmin: bigint }[]>`
      SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin`;
    return row!.xmin;
  }

  /**
   * Moves the subscription's cursor up to `horizon` (from committedHorizon), creating a pending
   * delivery for every matching event in between, in event order, in the same transaction: a
   * crash leaves either both or neither. The row lock makes concurrent callers take turns.
   * Returns false when the subscription no longer exists.
   */
  async advanceCursor(subscriptionId: string, horizon: bigint): Promise<boolean> {
    return this.prisma.$transaction(async (tx) => {
      const [subscription] = await tx.$queryRaw<{ cursor: bigint; events: string[] }[]>`
        SELECT cursor_xid AS cursor, events FROM webhook_subscriptions WHERE id = ${subscriptionId}::uuid FOR UPDATE`;
      if (!subscription) return false;
      if (subscription.cursor >= horizon) return true;
      const patterns = (subscription.events ?? []).map(eventPatternToLike);
      await tx.$executeRaw`
        INSERT INTO webhook_deliveries (id, subscription_id, event_id)
        SELECT gen_random_uuid(), ${subscriptionId}::uuid, e.id
        FROM webhook_events e
        WHERE e.xid >= ${subscription.cursor}::bigint AND e.xid < ${horizon}::bigint AND e.type LIKE ANY (${patterns}::text[])
        ORDER BY e.seq
        ON CONFLICT (subscription_id, event_id) DO NOTHING`;
      await tx.$executeRaw`UPDATE webhook_subscriptions SET cursor_xid = ${horizon}::bigint WHERE id = ${subscriptionId}::uuid`;
      return true;
    });
  }

  /** The subscription's oldest pending delivery with its event, or null when none is pending. */
  async head(subscriptionId: string): Promise<DueDelivery | null> {
    const [row] = await this.prisma.$queryRaw<DueDelivery[]>`
      SELECT d.id::text AS id, d.attempts, d.attempt_base AS "attemptBase",
             greatest(0, ceil(extract(epoch FROM d.next_attempt_at - now()) * 1000))::int AS "dueInMs",
             e.id::text AS "eventId", e.type, e.occurred_at AS "occurredAt", e.data
      FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
      WHERE d.subscription_id = ${subscriptionId}::uuid AND d.status = 'pending'
      ORDER BY d.position
      LIMIT 1`;
    return row ?? null;
  }

  /**
   * Claims the next attempt of a due delivery: counts it and leases the delivery for `leaseMs`
   * (it is due again only then, so an attempt whose worker died is retried after the lease, and a
   * second worker does not send it meanwhile). Returns the attempt's number, or null when someone
   * else claimed it first.
   */
  async claimAttempt(deliveryId: string, seenAttempts: number, leaseMs: number): Promise<number | null> {
    const [row] = await this.prisma.$queryRaw<{ attempts: number }[]>`
      UPDATE webhook_deliveries
      SET attempts = attempts + 1, last_attempt_at = now(),
          next_attempt_at = now() + make_interval(secs => ${leaseMs / 1000}::float8)
      WHERE id = ${deliveryId}::uuid AND attempts = ${seenAttempts}::int AND status = 'pending' AND next_attempt_at <= now()
      RETURNING attempts`;
    return row?.attempts ?? null;
  }

  /** Records how an attempt went, unless a later attempt (or a redelivery) superseded it. */
  async recordAttempt(deliveryId: string, attempt: number, record: AttemptRecord): Promise<boolean> {
    const updated = await this.prisma.$executeRaw`
      UPDATE webhook_deliveries
      SET status = ${record.status}::"WebhookDeliveryStatus",
          next_attempt_at = now() + make_interval(secs => ${record.retryInMs / 1000}::float8),
          last_status_code = ${record.statusCode}::int, last_latency_ms = ${record.latencyMs}::int,
          last_error = ${record.error}::text,
          delivered_at = CASE WHEN ${record.status}::text = 'delivered' THEN now() ELSE delivered_at END
      WHERE id = ${deliveryId}::uuid AND attempts = ${attempt}::int AND status = 'pending'`;
    return updated > 0;
  }
}

-- Webhooks: subscriptions, the event log they read, and the delivery log.
--
-- webhook_events is filled by triggers on rollout_events and operations, so an event exists if
-- and only if the write it describes committed, and the rollout and operation code paths know
-- nothing about webhooks. Each subscription reads the log through a cursor that is a watermark of
-- transaction ids (xid): every event whose writing transaction id is below
-- pg_snapshot_xmin(pg_current_snapshot()) is committed (or rolled back) for good, so a reader that
-- takes [cursor, xmin) and then moves its cursor to xmin never skips an event that committed late
-- with a smaller sequence number, as a cursor over the sequence alone would.

-- CreateEnum
CREATE TYPE "WebhookDeliveryStatus" AS ENUM ('pending', 'delivered', 'failed');

-- CreateTable
CREATE TABLE "webhook_subscriptions" (
    "id" UUID NOT NULL,
    "name" VARCHAR(100) NOT NULL,
    "url" VARCHAR(2048) NOT NULL,
    "secret" VARCHAR(100) NOT NULL,
    "events" TEXT[],
    "description" TEXT NOT NULL DEFAULT '',
    "cursor_xid" BIGINT NOT NULL,
    "created_by" VARCHAR(100) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "webhook_subscriptions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "webhook_events" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "seq" BIGSERIAL NOT NULL,
    "xid" BIGINT NOT NULL DEFAULT (pg_current_xact_id())::text::bigint,
    "type" VARCHAR(96) NOT NULL,
    "subject_id" UUID NOT NULL,
    "data" JSONB NOT NULL,
    "occurred_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "webhook_events_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "webhook_deliveries" (
    "id" UUID NOT NULL,
    "subscription_id" UUID NOT NULL,
    "event_id" UUID NOT NULL,
    "position" BIGSERIAL NOT NULL,
    "status" "WebhookDeliveryStatus" NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "attempt_base" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_attempt_at" TIMESTAMPTZ(3),
    "last_status_code" INTEGER,
    "last_latency_ms" INTEGER,
    "last_error" TEXT,
    "delivered_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "webhook_deliveries_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "webhook_subscriptions_name_key" ON "webhook_subscriptions"("name");

-- CreateIndex
CREATE UNIQUE INDEX "webhook_events_seq_key" ON "webhook_events"("seq");

-- CreateIndex
CREATE INDEX "webhook_events_xid_idx" ON "webhook_events"("xid");

-- CreateIndex
CREATE INDEX "webhook_deliveries_subscription_id_status_position_idx" ON "webhook_deliveries"("subscription_id", "status", "position");

-- CreateIndex
CREATE INDEX "webhook_deliveries_subscription_id_position_idx" ON "webhook_deliveries"("subscription_id", "position");

-- CreateIndex
CREATE INDEX "webhook_deliveries_event_id_idx" ON "webhook_deliveries"("event_id");

-- CreateIndex
CREATE UNIQUE INDEX "webhook_deliveries_subscription_id_event_id_key" ON "webhook_deliveries"("subscription_id", "event_id");

-- AddForeignKey
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_subscription_id_fkey" FOREIGN KEY ("subscription_id") REFERENCES "webhook_subscriptions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_event_id_fkey" FOREIGN KEY ("event_id") REFERENCES "webhook_events"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Rollout progress as webhook events: 'rollout.<type>' ('rollout.created', 'rollout.host.failed',
-- 'rollout.batch.started', 'rollout.finished'...), with a summary of the rollout. Nothing is written
-- while there is no subscription. Workers LISTEN on drover_webhook_events and wake the subscriptions'
-- delivery jobs; NOTIFY is sent at commit, so a woken reader finds the rows.
CREATE FUNCTION webhook_events_from_rollout_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_subscriptions) THEN
    RETURN NULL;
  END IF;
  INSERT INTO webhook_events (type, subject_id, data, occurred_at)
  SELECT CASE WHEN i.type LIKE 'rollout.%' THEN i.type ELSE 'rollout.' || i.type END,
         i.rollout_id,
         i.data || jsonb_build_object(
           'rollout', jsonb_build_object(
             'id', r.id, 'verb', r.verb, 'unit', r.unit, 'selector', r.selector, 'status', r.status,
             'total', r.total, 'requestedBy', r.requested_by),
           'rolloutEventId', i.id::text),
         i.created_at
  FROM inserted i JOIN rollouts r ON r.id = i.rollout_id
  ORDER BY i.id;
  PERFORM pg_notify('drover_webhook_events', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER rollout_events_webhook_events
  AFTER INSERT ON rollout_events
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION webhook_events_from_rollout_events();

-- An operation's end as a webhook event: 'operation.succeeded' | 'operation.failed' |
-- 'operation.cancelled', with its task counts and its first twenty failed hosts.
CREATE FUNCTION webhook_events_from_operations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_subscriptions) THEN
    RETURN NULL;
  END IF;
  INSERT INTO webhook_events (type, subject_id, data)
  VALUES (
    'operation.' || NEW.status::text,
    NEW.id,
    jsonb_build_object(
      'operation', jsonb_build_object(
        'id', NEW.id, 'verb', NEW.verb, 'unit', NEW.unit, 'selector', NEW.selector, 'status', NEW.status,
        'rolloutId', NEW.rollout_id, 'requestedBy', NEW.requested_by, 'createdAt', NEW.created_at,
        'finishedAt', NEW.finished_at),
      'counts', (SELECT coalesce(jsonb_object_agg(c.state, c.n), '{}'::jsonb)
                 FROM (SELECT state::text AS state, count(*) AS n FROM tasks
                       WHERE operation_id = NEW.id GROUP BY state) AS c),
      'failures', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'host', f.host_name, 'unit', f.unit, 'state', f.state, 'reason', left(f.reason, 500))
                         ORDER BY f.position), '[]'::jsonb)
                   FROM (SELECT host_name, unit, state::text AS state, reason, position FROM tasks
                         WHERE operation_id = NEW.id AND state IN ('failed', 'timed_out', 'unreachable')
                         ORDER BY position LIMIT 20) AS f)));
  PERFORM pg_notify('drover_webhook_events', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER operations_webhook_events_end
  AFTER UPDATE OF status ON operations
  FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('succeeded', 'failed', 'cancelled'))
  EXECUTE FUNCTION webhook_events_from_operations();

CREATE TRIGGER operations_webhook_events_created_ended
  AFTER INSERT ON operations
  FOR EACH ROW
  WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled'))
  EXECUTE FUNCTION webhook_events_from_operations();

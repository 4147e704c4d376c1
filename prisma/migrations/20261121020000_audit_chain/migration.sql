-- Tamper-evident, append-only audit trail.
--
-- Every row is chained to the previous one:
--   hash = lower-hex SHA-256 of the UTF-8 bytes of (prev_hash || audit_event_canonical(row))
-- where prev_hash is the hash of the row with seq - 1 (64 zeros for seq 1) and
-- audit_event_canonical is the row's fields as a jsonb object rendered to text (jsonb sorts keys
-- and normalises whitespace, so the rendering is canonical; times are UTC with milliseconds).
-- A BEFORE INSERT trigger assigns seq, prev_hash and hash under a transaction-level advisory lock,
-- so concurrent writers never fork the chain. UPDATE, DELETE and TRUNCATE are refused.

-- AlterTable
ALTER TABLE "audit_events" ADD COLUMN "seq" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN "prev_hash" CHAR(64) NOT NULL DEFAULT '',
ADD COLUMN "hash" CHAR(64) NOT NULL DEFAULT '',
ADD COLUMN "source_address" VARCHAR(64);

CREATE FUNCTION audit_event_canonical(e audit_events) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object(
    'seq', e.seq,
    'occurredAt', to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'actorTokenId', e.actor_token_id,
    'actorName', e.actor_name,
    'sourceAddress', e.source_address,
    'requestId', e.request_id,
    'action', e.action,
    'result', e.result,
    'hostId', e.host_id,
    'hostName', e.host_name,
    'unit', e.unit,
    'operationId', e.operation_id,
    'taskId', e.task_id,
    'parameters', e.parameters,
    'before', e.before,
    'after', e.after,
    'reason', e.reason
  )::text
$$;

CREATE FUNCTION audit_event_hash(prev_hash text, e audit_events) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT encode(sha256(convert_to(prev_hash || audit_event_canonical(e), 'UTF8')), 'hex')
$$;

-- Chain the rows that exist already, in insertion order.
DO $$
DECLARE
  event_id bigint;
  previous text := repeat('0', 64);
  position bigint := 0;
BEGIN
  FOR event_id IN SELECT id FROM audit_events ORDER BY id LOOP
    position := position + 1;
    UPDATE audit_events SET seq = position, prev_hash = previous WHERE id = event_id;
    UPDATE audit_events e SET hash = audit_event_hash(e.prev_hash, e) WHERE id = event_id RETURNING hash INTO previous;
  END LOOP;
END $$;

CREATE FUNCTION audit_events_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  last_seq bigint;
  last_hash text;
BEGIN
  -- One writer at a time extends the chain; held until this transaction ends.
  PERFORM pg_advisory_xact_lock(7270736902);
  SELECT seq, hash INTO last_seq, last_hash FROM audit_events ORDER BY seq DESC LIMIT 1;
  NEW.seq := COALESCE(last_seq, 0) + 1;
  NEW.prev_hash := COALESCE(last_hash, repeat('0', 64));
  NEW.hash := audit_event_hash(NEW.prev_hash, NEW);
  RETURN NEW;
END $$;

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_chain();

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- CreateIndex
CREATE UNIQUE INDEX "audit_events_seq_key" ON "audit_events"("seq");

-- CreateIndex
CREATE UNIQUE INDEX "audit_events_hash_key" ON "audit_events"("hash");

-- DropIndex
DROP INDEX "audit_events_host_name_unit_occurred_at_idx";

-- CreateIndex
CREATE INDEX "audit_events_host_name_unit_seq_idx" ON "audit_events"("host_name", "unit", "seq");

-- CreateIndex
CREATE INDEX "audit_events_actor_name_seq_idx" ON "audit_events"("actor_name", "seq");

-- CreateIndex
CREATE INDEX "audit_events_action_seq_idx" ON "audit_events"("action", "seq");

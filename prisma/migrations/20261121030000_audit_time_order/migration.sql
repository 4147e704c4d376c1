-- Time-range queries on the audit trail become seq windows (see AuditRepository), which needs
-- occurred_at to never go backwards along seq. The timestamp is taken before an insert waits for
-- the chain lock, so the chain trigger now clamps it to the previous event's time (milliseconds,
-- so the stored row still matches its hash). Rows chained before this migration keep their times.
CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  last_seq bigint;
  last_hash text;
  last_occurred_at timestamptz(3);
BEGIN
  -- One writer at a time extends the chain; held until this transaction ends.
  PERFORM pg_advisory_xact_lock(7270736902);
  SELECT seq, hash, occurred_at INTO last_seq, last_hash, last_occurred_at
    FROM audit_events ORDER BY seq DESC LIMIT 1;
  NEW.occurred_at := GREATEST(NEW.occurred_at, last_occurred_at);
  NEW.seq := COALESCE(last_seq, 0) + 1;
  NEW.prev_hash := COALESCE(last_hash, repeat('0', 64));
  NEW.hash := audit_event_hash(NEW.prev_hash, NEW);
  RETURN NEW;
END $$;

-- CreateIndex
CREATE INDEX "audit_events_result_seq_idx" ON "audit_events"("result", "seq");

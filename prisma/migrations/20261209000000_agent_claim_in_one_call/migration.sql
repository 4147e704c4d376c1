-- An agent's claim of its host's next task in one call to the database.
--
-- Every poll of an agent read whether its host had anything claimable, and a poll that had took
-- a transaction of four more round trips (BEGIN, the host's advisory lock, the claim, COMMIT),
-- each through the API's event loop while the transaction held its connection and the host's
-- lock. A rollout's batch offers its tasks together, so dozens of agents claim at once: the API's
-- CPU per claim and the connection held across those round trips are what their wake-ups queued
-- behind. As a function it is one round trip; the lock is held only while the database works.
-- Statements inside a (volatile) PL/pgSQL function each see what committed before they started,
-- so the claim after the lock sees the previous claim of the host committed, as the separate
-- statement of the transaction did: never two running tasks on one unit of a host.
--
-- Returns one row: the claimed task (task_id null when none was claimable), and in how many
-- milliseconds the first running task's lease lapses (null when none runs), after which its task
-- can be claimed again without a wake-up.
CREATE FUNCTION claim_agent_task(p_host_id text, p_lease_ms int)
RETURNS TABLE (
  task_id text,
  attempt int,
  verb text,
  unit text,
  before jsonb,
  command_sent_ms_ago float8,
  command_timeout_ms int,
  daemon_reload text,
  next_lapse_ms float8
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_claimable boolean;
  v_next_lapse_ms float8;
BEGIN
  -- The cheap read first, without the lock: most polls find nothing to claim.
  SELECT bool_or(t.state = 'queued' OR t.lease_expires_at < now()),
    (EXTRACT(EPOCH FROM min(t.lease_expires_at) FILTER (WHERE t.state = 'running' AND t.lease_expires_at >= now())
      - now()) * 1000)::float8
  INTO v_claimable, v_next_lapse_ms
  FROM tasks t
  WHERE t.host_id = p_host_id::uuid AND t.offered_at IS NOT NULL AND t.state IN ('queued', 'running');

  IF v_claimable IS TRUE THEN
    -- One claim of a host at a time, each seeing the previous one committed.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_host_id, 7));
    RETURN QUERY
      WITH claimed AS (
        UPDATE tasks SET state = 'running', attempts = tasks.attempts + 1,
          started_at = COALESCE(tasks.started_at, now()),
          lease_expires_at = now() + p_lease_ms * interval '1 millisecond', output_seq = 0
        WHERE tasks.id = (
          SELECT t.id FROM tasks t
          WHERE t.host_id = p_host_id::uuid AND t.offered_at IS NOT NULL
            AND (t.state = 'queued' OR (t.state = 'running' AND t.lease_expires_at < now()))
            AND NOT EXISTS (
              SELECT 1 FROM tasks other
              WHERE other.host_id = t.host_id AND other.id <> t.id AND other.state = 'running'
                AND other.offered_at IS NOT NULL AND other.lease_expires_at >= now()
                AND other.unit IS NOT DISTINCT FROM t.unit)
          ORDER BY t.offered_at, t.position
          LIMIT 1
          FOR UPDATE SKIP LOCKED)
        RETURNING tasks.id, tasks.operation_id, tasks.attempts, tasks.verb, tasks.unit, tasks.before,
          tasks.command_sent_at
      ), started AS (
        UPDATE operations SET status = 'running'
        FROM claimed WHERE operations.id = claimed.operation_id AND operations.status = 'queued'
      )
      SELECT claimed.id::text, claimed.attempts, claimed.verb::text, claimed.unit::text, claimed.before,
        (EXTRACT(EPOCH FROM now() - claimed.command_sent_at) * 1000)::float8,
        o.command_timeout_ms, o.daemon_reload::text, v_next_lapse_ms
      FROM claimed JOIN operations o ON o.id = claimed.operation_id;
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;
  RETURN QUERY SELECT NULL::text, NULL::int, NULL::text, NULL::text, NULL::jsonb, NULL::float8, NULL::int,
    NULL::text, v_next_lapse_ms;
END $$;

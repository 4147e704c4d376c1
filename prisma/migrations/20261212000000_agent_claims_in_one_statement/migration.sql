-- The claims of many agents' polls in one call.
--
-- A rollout's batch offers its tasks together, so the polls of its agents wake together, and each
-- made its own call of claim_agent_task: one round trip per claim through the API's event loop,
-- which the wake-ups of the later agents queued behind. The polls that look for work in the same
-- turn of an API process's event loop now claim in one call, at most one claim per host.
--
-- Lock order. One call holds what it locked until it commits, so it must not wait for something
-- another call could hold while waiting for it:
-- - the hosts' advisory locks (one claim of a host at a time) are taken in host order, as every
--   call takes them, and only they are waited for while claiming;
-- - the task rows are taken with SKIP LOCKED: a task another writer holds at that moment is not
--   claimed by this call (the worker's offer wakes the agent after it committed; a task held by
--   any other writer waits for the agent's next poll);
-- - the operations whose first task was claimed are marked running last, their rows taken in id
--   order: a single claim used to take its operation's row at once, and two calls claiming for
--   interleaved hosts of two new operations then each waited for the other's.
-- Should a circle still form, PostgreSQL breaks it and nothing of the call is applied (the API then
-- claims host by host).
--
-- Times are the clock's when each host is claimed, not the call's start: a lease runs from the
-- claim (the agent renews it a third of its length after it got it), and started_at says when the
-- task was claimed.
--
-- p_host_ids and p_lease_ms are parallel: the host of each claim and its lease. Returns one row per
-- claim, with its position (1-based) in the arrays as `ordinal`: the claimed task (task_id null when
-- none was claimable), and in how many milliseconds the first running task's lease lapses (null
-- when none runs), after which its task can be claimed again without a wake-up. A host named twice
-- is claimed for twice, the second claim seeing the first.

-- claim_agent_task stays while API processes of the previous release may still call it (a rolling
-- upgrade migrates when the first new process starts); a later release drops it.

CREATE FUNCTION claim_agent_tasks(p_host_ids text[], p_lease_ms int[])
RETURNS TABLE (
  ordinal int,
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
  v_ordinal int;
  v_host text;
  v_lease_ms int;
  v_now timestamptz;
  v_looked timestamptz;
  v_claimable boolean;
  v_next_lapse_ms float8;
  v_task_id uuid;
  v_operation_id uuid;
  v_attempt int;
  v_verb text;
  v_unit text;
  v_before jsonb;
  v_command_sent_at timestamptz;
  v_started uuid[] := '{}';
BEGIN
  FOR v_ordinal, v_host, v_lease_ms IN
    SELECT c.n, c.host_id, c.lease_ms FROM unnest(p_host_ids, p_lease_ms) WITH ORDINALITY AS c(host_id, lease_ms, n)
    ORDER BY c.host_id COLLATE "C", c.n
  LOOP
    v_now := clock_timestamp();
    -- The cheap read first, without the lock: most polls find nothing to claim.
    SELECT bool_or(t.state = 'queued' OR t.lease_expires_at < v_now),
      (EXTRACT(EPOCH FROM min(t.lease_expires_at) FILTER (WHERE t.state = 'running' AND t.lease_expires_at >= v_now)
        - v_now) * 1000)::float8
    INTO v_claimable, v_next_lapse_ms
    FROM tasks t
    WHERE t.host_id = v_host::uuid AND t.offered_at IS NOT NULL AND t.state IN ('queued', 'running');

    v_task_id := NULL;
    IF v_claimable IS TRUE THEN
      -- One claim of a host at a time; each statement below sees the previous claim committed.
      v_looked := v_now;
      PERFORM pg_advisory_xact_lock(hashtextextended(v_host, 7));
      v_now := clock_timestamp();
      -- The lapse was measured before waiting for the lock.
      v_next_lapse_ms := v_next_lapse_ms - EXTRACT(EPOCH FROM v_now - v_looked) * 1000;
      UPDATE tasks SET state = 'running', attempts = tasks.attempts + 1,
        started_at = COALESCE(tasks.started_at, v_now),
        lease_expires_at = v_now + v_lease_ms * interval '1 millisecond', output_seq = 0
      WHERE tasks.id = (
        SELECT t.id FROM tasks t
        WHERE t.host_id = v_host::uuid AND t.offered_at IS NOT NULL
          AND (t.state = 'queued' OR (t.state = 'running' AND t.lease_expires_at < v_now))
          AND NOT EXISTS (
            SELECT 1 FROM tasks other
            WHERE other.host_id = t.host_id AND other.id <> t.id AND other.state = 'running'
              AND other.offered_at IS NOT NULL AND other.lease_expires_at >= v_now
              AND other.unit IS NOT DISTINCT FROM t.unit)
        ORDER BY t.offered_at, t.position
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
      RETURNING tasks.id, tasks.operation_id, tasks.attempts, tasks.verb::text, tasks.unit::text, tasks.before,
        tasks.command_sent_at
      INTO v_task_id, v_operation_id, v_attempt, v_verb, v_unit, v_before, v_command_sent_at;
    END IF;

    IF v_task_id IS NULL THEN
      RETURN QUERY SELECT v_ordinal, NULL::text, NULL::int, NULL::text, NULL::text, NULL::jsonb, NULL::float8,
        NULL::int, NULL::text, v_next_lapse_ms;
    ELSE
      v_started := v_started || v_operation_id;
      RETURN QUERY SELECT v_ordinal, v_task_id::text, v_attempt, v_verb, v_unit, v_before,
        (EXTRACT(EPOCH FROM v_now - v_command_sent_at) * 1000)::float8,
        o.command_timeout_ms, o.daemon_reload::text, v_next_lapse_ms
      FROM operations o WHERE o.id = v_operation_id;
    END IF;
  END LOOP;

  PERFORM 1 FROM operations o WHERE o.id = ANY(v_started) AND o.status = 'queued' ORDER BY o.id FOR UPDATE;
  UPDATE operations SET status = 'running' WHERE operations.id = ANY(v_started) AND operations.status = 'queued';
END $$;

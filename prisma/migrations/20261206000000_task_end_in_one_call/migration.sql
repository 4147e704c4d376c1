-- A task's end and the dispatch after it, each in one call to the database.
--
-- Ending a task was a transaction of five round trips (BEGIN, the task's update, its audit event,
-- "is any task left", COMMIT), and the audit event's insert takes the audit chain's lock, which is
-- held until COMMIT: every task end of every worker waited for two round trips of whichever worker
-- held it, through that worker's busy event loop. Dispatching after it held the operation's row
-- lock across four more. As functions, each is one round trip, and both locks are held only while
-- the database itself works and commits. Statements inside a (volatile) PL/pgSQL function each see
-- what committed before they started, so the reads after a lock see every write ordered before
-- it, as the separate statements of the transactions did.
--
-- The task states that count as active and as failed come from the caller (@drover/protocol's
-- ACTIVE_TASK_STATES and FAILED_TASK_STATES), so they are defined in one place.

-- Closes the operation when none of its tasks is active any more: failed if any task failed,
-- otherwise cancelled if any was cancelled before it ran, otherwise succeeded. Called after the
-- audit chain's lock (a task's end) or holding the rows it cancelled, so the last of concurrent
-- ends to commit sees every other one ended and exactly one closes the operation.
CREATE FUNCTION close_operation_if_done(p_operation_id uuid, p_active "TaskState"[], p_failed "TaskState"[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  -- One row, not a count: every task's end asks, and an operation may have 10,000 tasks.
  IF EXISTS (SELECT 1 FROM tasks WHERE operation_id = p_operation_id AND state = ANY (p_active)) THEN
    RETURN;
  END IF;
  UPDATE operations SET
    status = CASE
      WHEN EXISTS (SELECT 1 FROM tasks WHERE operation_id = p_operation_id AND state = ANY (p_failed))
        THEN 'failed'
      WHEN EXISTS (SELECT 1 FROM tasks WHERE operation_id = p_operation_id AND state = 'cancelled')
        THEN 'cancelled'
      ELSE 'succeeded'
    END::"OperationStatus",
    finished_at = now()
  WHERE id = p_operation_id AND status IN ('queued', 'running');
END $$;

-- Ends an attempt at a task with its outcome and records its audit event (p_event: the
-- audit_events columns by name; the chain trigger fills seq and the hashes), then closes the
-- operation if this was its last active task. False, and nothing written, when the task had ended
-- or a newer attempt owns it (p_attempt is the fencing token). p_keep_output: the output streamed
-- into the row while the command ran stays; otherwise p_output replaces it.
CREATE FUNCTION finish_task(
  p_task_id uuid,
  p_attempt int,
  p_state "TaskState",
  p_reason text,
  p_exit_code int,
  p_before jsonb,
  p_after jsonb,
  p_keep_output boolean,
  p_output text,
  p_diagnostics text,
  p_event jsonb,
  p_active "TaskState"[],
  p_failed "TaskState"[]
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_operation_id uuid;
BEGIN
  UPDATE tasks SET
    state = p_state,
    reason = p_reason,
    exit_code = p_exit_code,
    before = p_before,
    after = p_after,
    output = CASE WHEN p_keep_output THEN output ELSE p_output END,
    diagnostics = p_diagnostics,
    waiting_for = NULL,
    waiting_for_rollout_id = NULL,
    finished_at = now()
  WHERE id = p_task_id AND state = ANY (p_active) AND attempts = p_attempt
  RETURNING operation_id INTO v_operation_id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO audit_events (actor_token_id, actor_name, source_address, request_id, action, result,
    host_id, host_name, unit, operation_id, task_id, parameters, before, after, reason)
  SELECT e.actor_token_id, e.actor_name, e.source_address, e.request_id, e.action, e.result,
    e.host_id, e.host_name, e.unit, e.operation_id, e.task_id, e.parameters, e.before, e.after, e.reason
  FROM jsonb_populate_record(NULL::audit_events, p_event) AS e;
  -- After the audit insert, whose chain lock orders the ends of concurrent tasks.
  PERFORM close_operation_if_done(v_operation_id, p_active, p_failed);
  RETURN true;
END $$;

-- Marks the operation's next undispatched tasks (by position) as dispatched, up to its concurrency
-- less the tasks in flight, holding the operation's row so two dispatchers never claim past it.
-- Returns them in position order, and whether no dispatched task is left unfinished (idle: what a
-- rollout's next step waits for). Reads no more than it must: whether an undispatched task is left
-- (the index on operation_id, dispatched_at, position finds the first at once), the count in
-- flight only when there is one to claim, and one row to tell idle.
CREATE FUNCTION claim_dispatchable_tasks(p_operation_id uuid, p_active "TaskState"[])
RETURNS TABLE (claimed text[], idle boolean, rollout_id text)
LANGUAGE plpgsql AS $$
DECLARE
  v_concurrency int;
  v_status "OperationStatus";
  v_free int;
BEGIN
  claimed := '{}';
  SELECT o.concurrency, o.status, o.rollout_id::text INTO v_concurrency, v_status, rollout_id
    FROM operations o WHERE o.id = p_operation_id FOR UPDATE;
  IF NOT FOUND OR v_status IN ('succeeded', 'failed', 'cancelled') THEN
    idle := true;
    RETURN NEXT;
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM tasks t
             WHERE t.operation_id = p_operation_id AND t.dispatched_at IS NULL AND t.state = 'queued') THEN
    v_free := v_concurrency - (SELECT count(*) FROM tasks t
      WHERE t.operation_id = p_operation_id AND t.dispatched_at IS NOT NULL AND t.state = ANY (p_active));
    IF v_free > 0 THEN
      WITH next AS (
        SELECT t.id, t.position FROM tasks t
        WHERE t.operation_id = p_operation_id AND t.dispatched_at IS NULL AND t.state = 'queued'
        ORDER BY t.position
        LIMIT v_free
      ), marked AS (
        UPDATE tasks t SET dispatched_at = now() FROM next WHERE t.id = next.id RETURNING t.id, next.position
      )
      SELECT COALESCE(array_agg(marked.id::text ORDER BY marked.position), '{}') INTO claimed FROM marked;
    END IF;
  END IF;
  idle := cardinality(claimed) = 0 AND NOT EXISTS (SELECT 1 FROM tasks t
    WHERE t.operation_id = p_operation_id AND t.dispatched_at IS NOT NULL AND t.state = ANY (p_active));
  RETURN NEXT;
END $$;

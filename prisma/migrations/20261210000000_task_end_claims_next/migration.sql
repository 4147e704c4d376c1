-- A task's end claims its operation's next tasks in the same call.
--
-- After every task's end the worker (or the API, for an agent's report) made one more round trip,
-- claim_dispatchable_tasks, to hand the operation's next tasks to the queue and to learn whether
-- a rollout's batch had just ended. One statement in five of a task's, each costing the process
-- far more CPU than PostgreSQL spends on it. finish_task_and_claim_next runs both in one call and
-- returns finish_task's answer with the claim; no claim is made when the task was not ended by
-- this attempt (the caller claims on its own then, as before).
--
-- The claim comes after finish_task's audit insert and close_operation_if_done: it holds the
-- operation's row, which those take after the audit chain's lock; taken in the same order, no two
-- ends wait for each other in a circle. Each statement of a (volatile) PL/pgSQL function sees what
-- the statements before it wrote, so the claim counts this task as ended.
CREATE FUNCTION finish_task_and_claim_next(
  p_operation_id uuid,
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
  p_failed "TaskState"[],
  p_contact boolean
) RETURNS TABLE (ended boolean, claimed text[], idle boolean, rollout_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  ended := finish_task(p_task_id, p_attempt, p_state, p_reason, p_exit_code, p_before, p_after,
    p_keep_output, p_output, p_diagnostics, p_event, p_active, p_failed, p_contact);
  IF ended THEN
    SELECT c.claimed, c.idle, c.rollout_id INTO claimed, idle, rollout_id
      FROM claim_dispatchable_tasks(p_operation_id, p_active) AS c;
  END IF;
  RETURN NEXT;
END $$;

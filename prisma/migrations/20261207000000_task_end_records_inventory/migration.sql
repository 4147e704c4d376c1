-- A task's end records what it learned about its host in the same call.
--
-- After ending a task, the worker made two more round trips to keep the inventory current: the
-- host's last contact (reachable or not) and the acted unit's state as the task left it. At a
-- thousand tasks that was a quarter of the worker's database statements, and each costs the worker
-- far more CPU than PostgreSQL spends on it. Both are written by finish_task now, only when the task
-- was ended by this attempt (a superseded attempt records nothing, as before).

DROP FUNCTION finish_task(uuid, int, "TaskState", text, int, jsonb, jsonb, boolean, text, text, jsonb,
  "TaskState"[], "TaskState"[]);

-- As before, plus: p_contact (true: the host answered; false: unreachable; null: nothing to tell)
-- sets the host's status and last contact; p_after, when the task names a unit, becomes that
-- unit's row in the inventory (the columns systemctl show fills; its states cut to their columns'
-- width, since an agent reports them).
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
  p_failed "TaskState"[],
  p_contact boolean
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_operation_id uuid;
  v_host_id uuid;
  v_unit text;
BEGIN
  -- The host's row before the task's: deleting a host takes its row and then its tasks' (their
  -- host_id set to null), and an operator's edit of a host takes its row and then the audit chain's
  -- lock; taken in the same order here, none of them waits for another in a circle.
  PERFORM 1 FROM hosts h WHERE h.id = (SELECT t.host_id FROM tasks t WHERE t.id = p_task_id) FOR NO KEY UPDATE;
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
  RETURNING operation_id, host_id, unit INTO v_operation_id, v_host_id, v_unit;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  -- The inventory before the audit chain's lock, which other writers of these rows take last too.
  IF v_host_id IS NOT NULL AND p_contact IS NOT NULL THEN
    UPDATE hosts SET
      status = CASE WHEN p_contact THEN 'reachable' ELSE 'unreachable' END::"HostStatus",
      last_seen_at = CASE WHEN p_contact THEN now() ELSE last_seen_at END,
      updated_at = now()
    WHERE id = v_host_id;
  END IF;
  IF v_host_id IS NOT NULL AND v_unit IS NOT NULL AND jsonb_typeof(p_after->'loadState') = 'string'
    AND jsonb_typeof(p_after->'activeState') = 'string' AND jsonb_typeof(p_after->'subState') = 'string' THEN
    INSERT INTO units AS u (id, host_id, name, description, load_state, active_state, sub_state,
      unit_file_state, main_pid, refreshed_at)
    VALUES (gen_random_uuid(), v_host_id, v_unit, p_after->>'description',
      left(p_after->>'loadState', 32), left(p_after->>'activeState', 32), left(p_after->>'subState', 32),
      left(p_after->>'unitFileState', 32),
      CASE WHEN jsonb_typeof(p_after->'mainPid') = 'number' THEN (p_after->>'mainPid')::numeric::int END, now())
    ON CONFLICT (host_id, name) DO UPDATE SET
      description = excluded.description,
      load_state = excluded.load_state,
      active_state = excluded.active_state,
      sub_state = excluded.sub_state,
      unit_file_state = excluded.unit_file_state,
      main_pid = excluded.main_pid,
      refreshed_at = excluded.refreshed_at;
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

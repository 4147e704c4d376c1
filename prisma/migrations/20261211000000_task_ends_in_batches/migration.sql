-- The ends of many tasks in one call.
--
-- A worker running many tasks at once ended each in its own call of finish_task_and_claim_next:
-- one round trip per task end, each costing the worker more CPU than PostgreSQL spends on it. The
-- ends that are ready together (tasks whose hosts answered in the same turn of the worker's event
-- loop) now go in one call; one end alone is a list of one.
--
-- Lock order, as finish_task's own (host, task, inventory, audit chain, operation): every end's host
-- row first, all of them in one order, then each end in turn. The chain's lock, taken by the first
-- end's audit insert, is held until the call commits, so a later end must not wait for a row that a
-- writer waiting for the chain holds: a host's deletion and an operator's edit of it take its row
-- first (held here already). A discovery writes a host's units without its row: the caller puts at
-- most one end per host in a call, so a discovery and a call share at most one unit row and cannot
-- wait for each other in a circle. Should a circle still form with another writer (one holding an
-- operation's row while it waits for the chain), PostgreSQL breaks it, nothing of this call is
-- applied, and the caller ends the same tasks one call each.
--
-- Each element of p_ends has finish_task_and_claim_next's arguments by name (without the state
-- lists); the rows returned carry the element's position (1-based) in `ordinal`.
CREATE FUNCTION finish_tasks_and_claim_next(
  p_ends jsonb,
  p_active "TaskState"[],
  p_failed "TaskState"[]
) RETURNS TABLE (ordinal int, ended boolean, claimed text[], idle boolean, rollout_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_end record;
BEGIN
  PERFORM 1 FROM hosts h
  WHERE h.id IN (SELECT t.host_id FROM tasks t
    WHERE t.id IN (SELECT (e->>'task_id')::uuid FROM jsonb_array_elements(p_ends) AS e))
  ORDER BY h.id
  FOR NO KEY UPDATE;
  FOR v_end IN SELECT e.value AS item, e.ordinality::int AS n
    FROM jsonb_array_elements(p_ends) WITH ORDINALITY AS e ORDER BY e.ordinality
  LOOP
    ordinal := v_end.n;
    SELECT f.ended, f.claimed, f.idle, f.rollout_id INTO ended, claimed, idle, rollout_id
    FROM finish_task_and_claim_next(
      (v_end.item->>'operation_id')::uuid,
      (v_end.item->>'task_id')::uuid,
      (v_end.item->>'attempt')::int,
      (v_end.item->>'state')::"TaskState",
      v_end.item->>'reason',
      (v_end.item->>'exit_code')::int,
      NULLIF(v_end.item->'before', 'null'::jsonb),
      NULLIF(v_end.item->'after', 'null'::jsonb),
      (v_end.item->>'keep_output')::boolean,
      v_end.item->>'output',
      v_end.item->>'diagnostics',
      v_end.item->'event',
      p_active,
      p_failed,
      (v_end.item->>'contact')::boolean
    ) AS f;
    RETURN NEXT;
  END LOOP;
END $$;

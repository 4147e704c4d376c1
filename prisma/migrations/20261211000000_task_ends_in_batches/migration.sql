-- The ends of many tasks in one call.
--
-- A worker running many tasks at once ended each in its own call of finish_task_and_claim_next:
-- one round trip per task end, each costing the worker more CPU than PostgreSQL spends on it. The
-- ends that are ready together (tasks whose hosts answered in the same turn of the worker's event
-- loop) now go in one call; one end alone is a list of one.
--
-- Lock order. A single end takes its host's row, then the task's, the inventory's, the audit
-- chain's lock and the operation's. In a call of several, the chain's lock taken by the first end's
-- audit insert is held until the call commits, so a later end must not wait for a row that a
-- writer waiting for the chain could hold:
-- - every end's host row is taken first, before any end acts, and without waiting (SKIP LOCKED):
--   other writers lock several host rows in orders of their own (an agents' sighting batch, an
--   inventory upsert), so waiting for them here could close a circle. An end whose host row is
--   busy is left out (`busy`): the caller makes it on its own afterwards, as a single end;
-- - a host's deletion and an operator's edit of it take its row first, held here already;
-- - a discovery writes a host's units without its row: the caller puts at most one end per host in
--   a call, so a discovery and a call share at most one unit row and cannot wait for each other.
-- Should a circle still form, PostgreSQL breaks it and nothing of the call is applied.
--
-- Each element of p_ends has finish_task_and_claim_next's arguments by name (without the state
-- lists); the rows returned carry the element's position (1-based) in `ordinal`.
CREATE FUNCTION finish_tasks_and_claim_next(
  p_ends jsonb,
  p_active "TaskState"[],
  p_failed "TaskState"[]
) RETURNS TABLE (ordinal int, busy boolean, ended boolean, claimed text[], idle boolean, rollout_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_end record;
  v_busy uuid[] := '{}';
BEGIN
  IF jsonb_array_length(p_ends) > 1 THEN
    WITH wanted AS (
      SELECT DISTINCT t.host_id FROM tasks t
      WHERE t.id IN (SELECT (e->>'task_id')::uuid FROM jsonb_array_elements(p_ends) AS e) AND t.host_id IS NOT NULL
    ), taken AS (
      SELECT h.id FROM hosts h WHERE h.id IN (SELECT host_id FROM wanted)
      ORDER BY h.id FOR NO KEY UPDATE SKIP LOCKED
    )
    SELECT coalesce(array_agg(w.host_id), '{}') INTO v_busy
    FROM wanted w WHERE w.host_id NOT IN (SELECT id FROM taken);
  END IF;
  FOR v_end IN SELECT e.value AS item, e.ordinality::int AS n, t.host_id
    FROM jsonb_array_elements(p_ends) WITH ORDINALITY AS e
    LEFT JOIN tasks t ON t.id = (e.value->>'task_id')::uuid
    ORDER BY e.ordinality
  LOOP
    ordinal := v_end.n;
    busy := coalesce(v_end.host_id = ANY (v_busy), false);
    ended := NULL;
    claimed := NULL;
    idle := NULL;
    rollout_id := NULL;
    IF NOT busy THEN
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
    END IF;
    RETURN NEXT;
  END LOOP;
END $$;

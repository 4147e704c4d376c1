-- Wakes the API processes following a rollout when its events are written, whoever writes them
-- (worker steps, control requests, creation). NOTIFY is delivered at commit, so a woken follower
-- always finds the rows; one notification per rollout per statement (and Postgres folds
-- identical ones within a transaction). rollout_events stays the log followers replay from.
CREATE FUNCTION notify_rollout_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('drover_rollout_events', rollout_id::text) FROM (SELECT DISTINCT rollout_id FROM inserted) AS written;
  RETURN NULL;
END
$$;

CREATE TRIGGER rollout_events_notify
  AFTER INSERT ON rollout_events
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION notify_rollout_events();

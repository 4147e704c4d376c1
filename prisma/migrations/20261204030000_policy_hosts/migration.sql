-- The hosts each policy found out of line when it was last evaluated (the worker evaluates every
-- policy each reconcile interval, against the units discovery and agents keep current), with why.
-- A host coming in or going out is a webhook event: 'policy.host.out_of_line' when its row is
-- inserted, 'policy.host.in_line' when it is deleted (not when its policy or host is deleted).
CREATE TABLE "policy_hosts" (
    "policy_id" UUID NOT NULL,
    "host_id" UUID NOT NULL,
    "reasons" TEXT[],
    "since" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "policy_hosts_pkey" PRIMARY KEY ("policy_id","host_id")
);

CREATE INDEX "policy_hosts_host_id_idx" ON "policy_hosts"("host_id");

ALTER TABLE "policy_hosts" ADD CONSTRAINT "policy_hosts_policy_id_fkey" FOREIGN KEY ("policy_id") REFERENCES "policies"("id") ON DELETE CASCADE ON UPDATE CASCADE;

ALTER TABLE "policy_hosts" ADD CONSTRAINT "policy_hosts_host_id_fkey" FOREIGN KEY ("host_id") REFERENCES "hosts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE FUNCTION webhook_events_from_policy_hosts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_subscriptions) THEN
    RETURN NULL;
  END IF;
  -- Joined to the policy and the host: rows a deleted policy or host takes with it find neither.
  INSERT INTO webhook_events (type, subject_id, data)
  SELECT CASE TG_OP WHEN 'INSERT' THEN 'policy.host.out_of_line' ELSE 'policy.host.in_line' END,
         p.id,
         jsonb_build_object(
           'policy', jsonb_build_object(
             'id', p.id, 'name', p.name, 'selector', p.selector, 'unit', p.unit,
             'enablement', p.enablement, 'activity', p.activity),
           'host', jsonb_build_object('id', h.id, 'name', h.name),
           'reasons', CASE TG_OP WHEN 'INSERT' THEN to_jsonb(c.reasons) ELSE '[]'::jsonb END,
           'unit', (SELECT jsonb_build_object(
                      'loadState', u.load_state, 'activeState', u.active_state, 'subState', u.sub_state,
                      'unitFileState', u.unit_file_state, 'refreshedAt', u.refreshed_at)
                    FROM units u WHERE u.host_id = h.id AND u.name = p.unit))
  FROM changed c JOIN policies p ON p.id = c.policy_id JOIN hosts h ON h.id = c.host_id
  ORDER BY p.name, h.name;
  PERFORM pg_notify('drover_webhook_events', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER policy_hosts_webhook_events_out_of_line
  AFTER INSERT ON policy_hosts
  REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION webhook_events_from_policy_hosts();

CREATE TRIGGER policy_hosts_webhook_events_in_line
  AFTER DELETE ON policy_hosts
  REFERENCING OLD TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION webhook_events_from_policy_hosts();

-- Selectors that name a label without a value (`canary`, `!canary`) are served by an index too.
--
-- The GIN index on hosts.labels used jsonb_path_ops, which indexes key-value paths only: `labels ?
-- 'canary'` could not use it, and a page of the 2% of 100,000 hosts that carry the key scanned half
-- the table in name order (60 ms) instead of 2,000 index entries (4 ms). The default jsonb_ops class
-- indexes keys and values: it serves `?` and `@>` alike, and on flat label maps it is the smaller
-- of the two (1.7 MB against 5 MB for 100,000 hosts).
DROP INDEX "hosts_labels_idx";
CREATE INDEX "hosts_labels_idx" ON "hosts" USING GIN ("labels");

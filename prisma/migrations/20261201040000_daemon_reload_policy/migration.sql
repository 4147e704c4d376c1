-- What a task does when its unit's definition changed on disk since systemd loaded it
-- (NeedDaemonReload=yes): refuse to act (the default), daemon-reload first (auto), or act anyway
-- (ignore). Operations made before this existed keep acting as they did: ignore.
ALTER TABLE "operations" ADD COLUMN "daemon_reload" VARCHAR(8) NOT NULL DEFAULT 'ignore';
ALTER TABLE "operations" ALTER COLUMN "daemon_reload" SET DEFAULT 'refuse';

-- Drift: what each unit is built from (files, their combined hash, Type=, Restart=), whether systemd
-- runs an older version than the one on disk, and automatic restarts between two discoveries.
ALTER TABLE "units"
  ADD COLUMN "fragment_path" TEXT,
  ADD COLUMN "drop_in_paths" TEXT[] DEFAULT '{}',
  ADD COLUMN "service_type" VARCHAR(32),
  ADD COLUMN "restart" VARCHAR(32),
  ADD COLUMN "definition_hash" CHAR(64),
  ADD COLUMN "need_daemon_reload" BOOLEAN,
  ADD COLUMN "n_restarts" INTEGER,
  ADD COLUMN "restarts_grew_by" INTEGER NOT NULL DEFAULT 0;

-- The text of each definition seen anywhere, once: hosts with the same definition share it.
CREATE TABLE "unit_definitions" (
    "hash" CHAR(64) NOT NULL,
    "text" TEXT NOT NULL,
    "first_seen_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "unit_definitions_pkey" PRIMARY KEY ("hash")
);

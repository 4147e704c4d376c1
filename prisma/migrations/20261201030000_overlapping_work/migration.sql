-- Work that meets on the same units.
--
-- A rollout whose hosts and units overlap an earlier one's waits for it (status queued) unless its
-- request said otherwise; the order of admission decides who goes first. Admissions are serialised
-- by an advisory lock, and this sequence numbers them in that order (a retry is admitted again).
CREATE SEQUENCE "rollouts_admission_seq_seq";
ALTER TYPE "RolloutStatus" ADD VALUE 'queued' BEFORE 'running';
ALTER TABLE "rollouts"
  ADD COLUMN "admission_seq" BIGINT NOT NULL DEFAULT nextval('rollouts_admission_seq_seq'),
  ADD COLUMN "blocked_by" UUID[] DEFAULT ARRAY[]::UUID[];
ALTER SEQUENCE "rollouts_admission_seq_seq" OWNED BY "rollouts"."admission_seq";

-- A task that may not act yet (another rollout's health gate holds its unit, or systemd's start
-- limit would refuse the start): what it waits for, in words, whose rollout holds it, and since when.
ALTER TABLE "tasks"
  ADD COLUMN "waiting_for" TEXT,
  ADD COLUMN "waiting_for_rollout_id" UUID,
  ADD COLUMN "waiting_since" TIMESTAMPTZ(3);

-- Finding the rollouts that act on a host (overlaps, a unit's holder).
CREATE INDEX "rollout_hosts_host_id_state_idx" ON "rollout_hosts" ("host_id", "state");

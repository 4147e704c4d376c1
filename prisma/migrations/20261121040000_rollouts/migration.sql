-- Rollouts: durable state of rolling operations (each step is a short job reading and writing these rows).

-- CreateEnum
CREATE TYPE "RolloutStatus" AS ENUM ('running', 'paused', 'awaiting_approval', 'succeeded', 'aborted', 'cancelled');

-- CreateEnum
CREATE TYPE "RolloutHostState" AS ENUM ('pending', 'acting', 'gating', 'succeeded', 'failed', 'interrupted', 'cancelled');

-- AlterTable
ALTER TABLE "operations" ADD COLUMN "rollout_id" UUID;

-- CreateTable
CREATE TABLE "rollouts" (
    "id" UUID NOT NULL,
    "verb" VARCHAR(32) NOT NULL,
    "unit" VARCHAR(256) NOT NULL,
    "selector" TEXT NOT NULL,
    "strategy" JSONB NOT NULL,
    "status" "RolloutStatus" NOT NULL DEFAULT 'running',
    "reason" TEXT,
    "total" INTEGER NOT NULL,
    "max_failures" INTEGER NOT NULL,
    "max_unavailable" INTEGER,
    "runs" INTEGER NOT NULL DEFAULT 1,
    "approved_at" TIMESTAMPTZ(3),
    "approved_by" VARCHAR(100),
    "next_batch_at" TIMESTAMPTZ(3),
    "deadline_at" TIMESTAMPTZ(3),
    "idempotency_key" VARCHAR(255),
    "request_hash" CHAR(64) NOT NULL,
    "requested_by_token_id" UUID,
    "requested_by" VARCHAR(100) NOT NULL,
    "request_id" VARCHAR(128),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),

    CONSTRAINT "rollouts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "rollout_hosts" (
    "id" UUID NOT NULL,
    "rollout_id" UUID NOT NULL,
    "host_id" UUID,
    "host_name" VARCHAR(253) NOT NULL,
    "position" INTEGER NOT NULL,
    "units" TEXT[],
    "state" "RolloutHostState" NOT NULL DEFAULT 'pending',
    "batch" INTEGER,
    "reason" TEXT,
    "operation_id" UUID,
    "gate_started_at" TIMESTAMPTZ(3),
    "healthy_since" TIMESTAMPTZ(3),
    "baseline" JSONB,
    "last_check" JSONB,
    "finished_at" TIMESTAMPTZ(3),

    CONSTRAINT "rollout_hosts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "rollout_batches" (
    "id" UUID NOT NULL,
    "rollout_id" UUID NOT NULL,
    "index" INTEGER NOT NULL,
    "run" INTEGER NOT NULL,
    "hosts" TEXT[],
    "unavailable_at_start" INTEGER NOT NULL,
    "operation_id" UUID NOT NULL,
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),

    CONSTRAINT "rollout_batches_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "rollout_events" (
    "id" BIGSERIAL NOT NULL,
    "rollout_id" UUID NOT NULL,
    "type" VARCHAR(64) NOT NULL,
    "data" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "rollout_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "operations_rollout_id_idx" ON "operations"("rollout_id");

-- CreateIndex
CREATE INDEX "rollouts_created_at_id_idx" ON "rollouts"("created_at", "id");

-- CreateIndex
CREATE INDEX "rollouts_status_idx" ON "rollouts"("status");

-- CreateIndex
CREATE UNIQUE INDEX "rollouts_requested_by_token_id_idempotency_key_key" ON "rollouts"("requested_by_token_id", "idempotency_key");

-- CreateIndex
CREATE INDEX "rollout_hosts_rollout_id_state_idx" ON "rollout_hosts"("rollout_id", "state");

-- CreateIndex
CREATE INDEX "rollout_hosts_host_id_idx" ON "rollout_hosts"("host_id");

-- CreateIndex
CREATE UNIQUE INDEX "rollout_hosts_rollout_id_position_key" ON "rollout_hosts"("rollout_id", "position");

-- CreateIndex
CREATE UNIQUE INDEX "rollout_batches_operation_id_key" ON "rollout_batches"("operation_id");

-- CreateIndex
CREATE UNIQUE INDEX "rollout_batches_rollout_id_index_key" ON "rollout_batches"("rollout_id", "index");

-- CreateIndex
CREATE INDEX "rollout_events_rollout_id_id_idx" ON "rollout_events"("rollout_id", "id");

-- AddForeignKey
ALTER TABLE "operations" ADD CONSTRAINT "operations_rollout_id_fkey" FOREIGN KEY ("rollout_id") REFERENCES "rollouts"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "rollout_hosts" ADD CONSTRAINT "rollout_hosts_rollout_id_fkey" FOREIGN KEY ("rollout_id") REFERENCES "rollouts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "rollout_hosts" ADD CONSTRAINT "rollout_hosts_host_id_fkey" FOREIGN KEY ("host_id") REFERENCES "hosts"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "rollout_batches" ADD CONSTRAINT "rollout_batches_rollout_id_fkey" FOREIGN KEY ("rollout_id") REFERENCES "rollouts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "rollout_batches" ADD CONSTRAINT "rollout_batches_operation_id_fkey" FOREIGN KEY ("operation_id") REFERENCES "operations"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "rollout_events" ADD CONSTRAINT "rollout_events_rollout_id_fkey" FOREIGN KEY ("rollout_id") REFERENCES "rollouts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

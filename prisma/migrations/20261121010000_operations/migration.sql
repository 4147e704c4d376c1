-- CreateEnum
CREATE TYPE "OperationStatus" AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

-- CreateEnum
CREATE TYPE "TaskState" AS ENUM ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'unreachable', 'cancelled', 'skipped');

-- CreateEnum
CREATE TYPE "ConflictPolicy" AS ENUM ('wait', 'reject');

-- CreateTable
CREATE TABLE "operations" (
    "id" UUID NOT NULL,
    "verb" VARCHAR(32) NOT NULL,
    "unit" VARCHAR(256),
    "selector" TEXT,
    "concurrency" INTEGER NOT NULL,
    "on_conflict" "ConflictPolicy" NOT NULL,
    "command_timeout_ms" INTEGER NOT NULL,
    "trust_on_first_use" BOOLEAN NOT NULL DEFAULT false,
    "requested_by_token_id" UUID,
    "requested_by" VARCHAR(100) NOT NULL,
    "request_id" VARCHAR(128),
    "status" "OperationStatus" NOT NULL DEFAULT 'queued',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),

    CONSTRAINT "operations_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "tasks" (
    "id" UUID NOT NULL,
    "operation_id" UUID NOT NULL,
    "host_id" UUID,
    "host_name" VARCHAR(253) NOT NULL,
    "verb" VARCHAR(32) NOT NULL,
    "unit" VARCHAR(256),
    "position" INTEGER NOT NULL,
    "state" "TaskState" NOT NULL DEFAULT 'queued',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "dispatched_at" TIMESTAMPTZ(3),
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "exit_code" INTEGER,
    "reason" TEXT,
    "before" JSONB,
    "after" JSONB,
    "output" TEXT,

    CONSTRAINT "tasks_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_events" (
    "id" BIGSERIAL NOT NULL,
    "occurred_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor_token_id" UUID,
    "actor_name" VARCHAR(100) NOT NULL,
    "request_id" VARCHAR(128),
    "action" VARCHAR(64) NOT NULL,
    "result" VARCHAR(32) NOT NULL,
    "host_id" UUID,
    "host_name" VARCHAR(253),
    "unit" VARCHAR(256),
    "operation_id" UUID,
    "task_id" UUID,
    "parameters" JSONB NOT NULL DEFAULT '{}',
    "before" JSONB,
    "after" JSONB,
    "reason" TEXT,

    CONSTRAINT "audit_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "operations_created_at_id_idx" ON "operations"("created_at", "id");

-- CreateIndex
CREATE INDEX "operations_status_idx" ON "operations"("status");

-- CreateIndex
CREATE INDEX "tasks_operation_id_state_idx" ON "tasks"("operation_id", "state");

-- CreateIndex
CREATE INDEX "tasks_host_id_idx" ON "tasks"("host_id");

-- CreateIndex
CREATE UNIQUE INDEX "tasks_operation_id_position_key" ON "tasks"("operation_id", "position");

-- CreateIndex
CREATE INDEX "audit_events_occurred_at_idx" ON "audit_events"("occurred_at");

-- CreateIndex
CREATE INDEX "audit_events_host_name_unit_occurred_at_idx" ON "audit_events"("host_name", "unit", "occurred_at");

-- CreateIndex
CREATE INDEX "audit_events_operation_id_idx" ON "audit_events"("operation_id");

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_operation_id_fkey" FOREIGN KEY ("operation_id") REFERENCES "operations"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_host_id_fkey" FOREIGN KEY ("host_id") REFERENCES "hosts"("id") ON DELETE SET NULL ON UPDATE CASCADE;

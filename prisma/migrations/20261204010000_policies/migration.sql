-- Desired-state policies: a selector, a unit, and what the unit must be on every host the selector
-- matches. Whether a host is out of line is computed from the units table when asked (API, metrics),
-- so it is as fresh as the last discovery, agent report or task of that host, and nothing is stored.

-- CreateEnum
CREATE TYPE "PolicyEnablement" AS ENUM ('enabled', 'disabled', 'masked');

-- CreateEnum
CREATE TYPE "PolicyActivity" AS ENUM ('active', 'inactive');

-- CreateTable
CREATE TABLE "policies" (
    "id" UUID NOT NULL,
    "name" VARCHAR(100) NOT NULL,
    "selector" TEXT NOT NULL,
    "unit" VARCHAR(256) NOT NULL,
    "enablement" "PolicyEnablement",
    "activity" "PolicyActivity",
    "description" TEXT NOT NULL DEFAULT '',
    "created_by" VARCHAR(100) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "policies_pkey" PRIMARY KEY ("id"),
    -- A policy that asks nothing is no policy; a masked unit cannot be started.
    CONSTRAINT "policies_wants_something" CHECK ("enablement" IS NOT NULL OR "activity" IS NOT NULL),
    CONSTRAINT "policies_masked_not_active" CHECK (NOT ("enablement" = 'masked' AND "activity" = 'active'))
);

-- CreateIndex
CREATE UNIQUE INDEX "policies_name_key" ON "policies"("name");

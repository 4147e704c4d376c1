-- CreateEnum
CREATE TYPE "HostTransport" AS ENUM ('ssh', 'agent');

-- CreateEnum
CREATE TYPE "HostStatus" AS ENUM ('unknown', 'reachable', 'unreachable');

-- CreateEnum
CREATE TYPE "TokenScope" AS ENUM ('read', 'operate', 'admin', 'audit');

-- CreateTable
CREATE TABLE "hosts" (
    "id" UUID NOT NULL,
    "name" VARCHAR(253) NOT NULL,
    "address" VARCHAR(253) NOT NULL,
    "port" INTEGER NOT NULL DEFAULT 22,
    "transport" "HostTransport" NOT NULL DEFAULT 'ssh',
    "ssh_user" VARCHAR(32) NOT NULL DEFAULT 'root',
    "host_key_fingerprint" VARCHAR(100),
    "labels" JSONB NOT NULL DEFAULT '{}',
    "status" "HostStatus" NOT NULL DEFAULT 'unknown',
    "last_seen_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "hosts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "units" (
    "id" UUID NOT NULL,
    "host_id" UUID NOT NULL,
    "name" VARCHAR(256) NOT NULL,
    "description" TEXT,
    "load_state" VARCHAR(32) NOT NULL,
    "active_state" VARCHAR(32) NOT NULL,
    "sub_state" VARCHAR(32) NOT NULL,
    "unit_file_state" VARCHAR(32),
    "main_pid" INTEGER,
    "refreshed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "units_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_tokens" (
    "id" UUID NOT NULL,
    "name" VARCHAR(100) NOT NULL,
    "secret_hash" CHAR(64) NOT NULL,
    "scopes" "TokenScope"[],
    "host_selector" TEXT,
    "unit_glob" VARCHAR(256),
    "expires_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),
    "last_used_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "api_tokens_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "hosts_name_key" ON "hosts"("name");

-- CreateIndex
CREATE INDEX "hosts_labels_idx" ON "hosts" USING GIN ("labels" jsonb_path_ops);

-- CreateIndex
CREATE INDEX "units_name_host_id_idx" ON "units"("name", "host_id");

-- CreateIndex
CREATE UNIQUE INDEX "units_host_id_name_key" ON "units"("host_id", "name");

-- CreateIndex
CREATE UNIQUE INDEX "api_tokens_name_key" ON "api_tokens"("name");

-- CreateIndex
CREATE UNIQUE INDEX "api_tokens_secret_hash_key" ON "api_tokens"("secret_hash");

-- AddForeignKey
ALTER TABLE "units" ADD CONSTRAINT "units_host_id_fkey" FOREIGN KEY ("host_id") REFERENCES "hosts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The per-host agent: join tokens, enrolled agents, and what a task offered to an agent needs.
ALTER TABLE "tasks" ADD COLUMN "offered_at" TIMESTAMPTZ(3),
  ADD COLUMN "lease_expires_at" TIMESTAMPTZ(3),
  ADD COLUMN "output_seq" INTEGER NOT NULL DEFAULT 0;

-- What an agent looks for when it asks for work: its host's tasks offered to it.
CREATE INDEX "tasks_agent_claim_idx" ON "tasks" ("host_id", "state");

CREATE TABLE "agent_join_tokens" (
    "id" UUID NOT NULL,
    "secret_hash" CHAR(64) NOT NULL,
    "host_name" VARCHAR(253),
    "labels" JSONB NOT NULL DEFAULT '{}',
    "created_by" VARCHAR(100) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "used_at" TIMESTAMPTZ(3),
    "used_by_agent_id" UUID,
    "revoked_at" TIMESTAMPTZ(3),
    CONSTRAINT "agent_join_tokens_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "agent_join_tokens_secret_hash_key" ON "agent_join_tokens"("secret_hash");

CREATE TABLE "agents" (
    "id" UUID NOT NULL,
    "host_id" UUID NOT NULL,
    "public_key" TEXT NOT NULL,
    "facts" JSONB,
    "protocol_version" INTEGER NOT NULL,
    "enrolled_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_seen_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),
    CONSTRAINT "agents_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "agents_host_id_key" ON "agents"("host_id");
ALTER TABLE "agents" ADD CONSTRAINT "agents_host_id_fkey" FOREIGN KEY ("host_id") REFERENCES "hosts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

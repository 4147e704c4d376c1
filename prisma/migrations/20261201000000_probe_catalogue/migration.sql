-- The probe catalogue: named commands an admin allows as rollout health probes (rollouts refer to
-- them by name instead of carrying an argv of their own).

-- CreateTable
CREATE TABLE "probe_commands" (
    "id" UUID NOT NULL,
    "name" VARCHAR(64) NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "argv" TEXT[],
    "timeout_ms" INTEGER NOT NULL DEFAULT 2000,
    "unit_glob" VARCHAR(256),
    "created_by" VARCHAR(100) NOT NULL,
    "updated_by" VARCHAR(100) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "probe_commands_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "probe_commands_name_key" ON "probe_commands"("name");

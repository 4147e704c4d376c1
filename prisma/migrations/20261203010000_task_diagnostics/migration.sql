-- A failed task keeps what its unit said: `systemctl status` and the journal since the action began.
ALTER TABLE "tasks" ADD COLUMN "diagnostics" TEXT;

-- When an attempt at a task was last cleared (by a write fenced on tasks.attempts) to send its
-- command to the host. A later attempt that finds it set knows the command may have been sent: it
-- waits out that attempt's window before acting, or does not send it again (hosts without systemd).
ALTER TABLE "tasks" ADD COLUMN "command_sent_at" TIMESTAMPTZ(3);

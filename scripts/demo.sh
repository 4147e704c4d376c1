#!/usr/bin/env bash
# drover's main job, end to end, on a fresh Debian machine (root): builds drover, starts
# PostgreSQL and Redis when no DATABASE_URL/REDIS_URL is given, boots a small fleet of real
# systemd hosts (systemd-nspawn), starts the API and a worker, imports the fleet through the API
# with every host key pinned, performs a rolling restart of nginx with a canary (one host, then half
# the rest at a time; each host verified — new MainPID — and health-gated by an HTTP probe, with live
# progress) and shows what changed. `scripts/demo.sh down` stops everything it started.
set -euo pipefail
# shellcheck source=scripts/lib/stack.sh
source "$(dirname "$0")/lib/stack.sh"
cd "$DROVER_ROOT"

RUN_DIR="$DROVER_ROOT/.drover"
HOSTS="${DROVER_DEMO_HOSTS:-4}"
PORT="${DROVER_PORT:-8080}"
FLEET="$DROVER_ROOT/test/fleet/fleet.sh"
# The demo's fleet is its own (test/fleet/fleet.sh keeps fleets apart by state directory): one per
# checkout, so `npm test`, another checkout's demo or a developer's fleet on this machine are never
# booted over or torn down by it. Recorded in .drover, so `down` finds the fleet `up` booted.
if [ -z "${DROVER_FLEET_STATE:-}" ] && [ -s "$RUN_DIR/fleet-state" ]; then
  DROVER_FLEET_STATE="$(cat "$RUN_DIR/fleet-state")"
fi
export DROVER_FLEET_STATE="${DROVER_FLEET_STATE:-/var/lib/drover-fleet/demo-$(printf '%s' "$DROVER_ROOT" | sha256sum | cut -c1-6)}"

stop_processes() {
  for name in api worker; do
    local pid_file="$RUN_DIR/$name.pid"
    [ -f "$pid_file" ] || continue
    local pid
    pid=$(cat "$pid_file")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
  done
}

if [ "${1:-up}" = down ]; then
  log "stopping the drover API and worker"
  stop_processes
  log "tearing down the demo fleet ($DROVER_FLEET_STATE)"
  bash "$FLEET" down
  rm -f "$RUN_DIR/fleet-state"
  exit 0
fi

started_at=$(date +%s)
mkdir -p "$RUN_DIR"
chmod 700 "$RUN_DIR"
ensure_build

if [ -z "${DATABASE_URL:-}" ]; then
  ensure_postgres
  ensure_postgres_role drover drover
  ensure_database drover drover
  export DATABASE_URL=postgresql://drover:drover@127.0.0.1:5432/drover
fi
if [ -z "${REDIS_URL:-}" ]; then
  ensure_redis
  export REDIS_URL=redis://127.0.0.1:6379
fi

stop_processes
if tcp_open 127.0.0.1 "$PORT"; then
  die "port $PORT is taken by another program: set DROVER_PORT to a free port"
fi

log "booting a fleet of $HOSTS real systemd hosts ($DROVER_FLEET_STATE)"
echo "$DROVER_FLEET_STATE" >"$RUN_DIR/fleet-state"
bash "$FLEET" up --hosts "$HOSTS"

log "starting the drover API on 127.0.0.1:$PORT (applies migrations) and a worker"
# drover's SSH key for the fleet: the one the fleet tooling authorised on every host.
export SSH_PRIVATE_KEY_PATH="${SSH_PRIVATE_KEY_PATH:-$DROVER_FLEET_STATE/ssh/id_ed25519}"
PORT=$PORT node dist/src/main.js >"$RUN_DIR/api.log" 2>&1 &
echo $! >"$RUN_DIR/api.pid"
node dist/src/worker.js >"$RUN_DIR/worker.log" 2>&1 &
echo $! >"$RUN_DIR/worker.pid"
for _ in $(seq 1 100); do
  http_ok "http://127.0.0.1:$PORT/healthz/ready" && break
  kill -0 "$(cat "$RUN_DIR/api.pid")" 2>/dev/null || die "the API exited: see $RUN_DIR/api.log"
  sleep 0.2
done
http_ok "http://127.0.0.1:$PORT/healthz/ready" || die "the API is not ready: see $RUN_DIR/api.log"

log "creating an admin API token (kept in $RUN_DIR/token)"
TOKEN_NAME="demo-$(date +%Y%m%d-%H%M%S)"
(umask 077 && node dist/src/admin.js create-token --name "$TOKEN_NAME" --scope admin >"$RUN_DIR/token" 2>/dev/null)
export DROVER_URL="http://127.0.0.1:$PORT"
DROVER_TOKEN="$(cat "$RUN_DIR/token")"
export DROVER_TOKEN
drover() { node dist/src/cli/main.js "$@"; }

log "importing the fleet inventory (host keys pinned) through the bulk API"
drover hosts import "$DROVER_FLEET_STATE/inventory.json"
log "the fleet as drover sees it"
drover hosts list -l fleet=nspawn
log "selecting with a label selector: -l 'fleet=nspawn,env in (prod)'"
drover hosts list -l 'fleet=nspawn,env in (prod)'
log "the plan first (a dry run changes nothing): canary, then 50% of the hosts per batch"
drover rollout restart nginx -l fleet=nspawn --batch 1,50% --dry-run
log "a rolling restart of nginx: canary first, then batches; each host health-gated (2 s, HTTP probe)"
drover rollout restart nginx -l fleet=nspawn --batch 1,50% --max-failures 1 --min-healthy 2s \
  --probe http:80/ --wait
log "nginx.service across the fleet, as discovered after the restart"
sleep 2
drover units list nginx.service -l fleet=nspawn
log "the rollouts and operations so far (one operation per batch)"
drover rollout list
drover ops list
log "the audit trail of this run, and its hash chain verified"
drover audit list --actor "$TOKEN_NAME"
drover audit verify

cat <<DONE

drover is running ($(($(date +%s) - started_at)) s):
  dashboard  $DROVER_URL/ui/   (sign in with the admin token in $RUN_DIR/token: cat $RUN_DIR/token)
  API        $DROVER_URL   (reference: $DROVER_URL/docs, spec: $DROVER_URL/openapi.json)
  logs       $RUN_DIR/api.log, $RUN_DIR/worker.log
  CLI        export DROVER_URL=$DROVER_URL DROVER_TOKEN=\$(cat $RUN_DIR/token)
             node dist/src/cli/main.js hosts list -l 'role=web'
  fleet      DROVER_FLEET_STATE=$DROVER_FLEET_STATE bash test/fleet/fleet.sh status
  stop all   npm run demo -- down
DONE

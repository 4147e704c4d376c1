#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine (root): installs and starts what it needs
# (Node dependencies, PostgreSQL, Redis, a booted systemd-nspawn fleet), runs the static checks,
# unit tests and integration tests, and prints "N passed, N failed" last.
#
# A run is named by a random id and owns what carries it: its fleet (fleet.sh state
# /var/lib/drover-fleet/test-<id>, with its own bridge, subnet and cgroups), its databases
# (drover_run_<id>_*) and its queue prefixes (random per test API). So two runs, or a run and
# `npm run demo`, can share the machine, PostgreSQL and Redis. Whatever way a run ends, it removes
# its own fleet and databases; at start it also removes those of runs that are gone.
set -uo pipefail
# shellcheck source=scripts/lib/stack.sh
source "$(dirname "$0")/lib/stack.sh"
cd "$DROVER_ROOT" || exit 1

# Ten: the overlapping-rollouts test runs eight rollouts across ten hosts, as the issue measured.
FLEET_HOSTS="${DROVER_TEST_HOSTS:-10}"
FLEET="$DROVER_ROOT/test/fleet/fleet.sh"
RUN_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
# "PID START_TIME" of every run that is (or was) on this machine: a run is gone when no process
# has that PID and start time any more (a PID alone may have been reused).
RUNS_DIR=/run/drover-test
DB_PREFIX="drover_run_${RUN_ID}_"
TEMPLATE_DB="${DB_PREFIX}template"
# Always a fleet of the run's own: an exported DROVER_FLEET_STATE (a demo's, a developer's) is
# never booted over or torn down by the suite.
export DROVER_FLEET_STATE="/var/lib/drover-fleet/test-$RUN_ID"
unset DROVER_FLEET_NAME
RESULTS="$(mktemp -d -t drover-test.XXXXXX)"
RUN_DEADLINE=$((SECONDS + ${DROVER_TEST_RUN_TIMEOUT:-4200}))
passed=0
failed=0
failures=()

psql_admin() { runuser -u postgres -- psql -qAtX -v ON_ERROR_STOP=1 -d postgres "$@"; }

start_time_of() { # PID — the kernel's start time of that process (field 22 of /proc/PID/stat)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086 # split on purpose: the fields after "(comm) "
  set -- $stat
  echo "${20}"
}

run_alive() { # ID
  local pid start
  read -r pid start 2>/dev/null <"$RUNS_DIR/$1" || return 1
  [ "$(start_time_of "$pid")" = "$start" ]
}

drop_databases() { # LIKE-PATTERN
  psql_admin -c "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE);', datname) FROM pg_database WHERE datname LIKE '$1'" |
    psql_admin >/dev/null
}

# Fleets and databases of runs that ended without cleaning up (SIGKILL, a machine crash).
remove_stale_runs() {
  local state id
  for state in /var/lib/drover-fleet/test-*; do
    [ -d "$state" ] || continue
    id=${state##*/test-}
    run_alive "$id" && continue
    log "removing the fleet of test run $id (gone)"
    DROVER_FLEET_STATE=$state bash "$FLEET" down >/dev/null 2>&1 && rm -rf --one-file-system "$state"
  done
  while read -r id; do
    [ -n "$id" ] || continue
    run_alive "$id" && continue
    log "dropping the databases of test run $id (gone)"
    drop_databases "drover\\_run\\_${id}\\_%"
  done < <(psql_admin -c "SELECT DISTINCT split_part(datname, '_', 3) FROM pg_database WHERE datname LIKE 'drover\\_run\\_%'")
  for state in "$RUNS_DIR"/*; do
    [ -f "$state" ] || continue
    run_alive "${state##*/}" || rm -f "$state"
  done
}

# Processes a batch of tests left running (an API a failed test never stopped): killed, and the
# batch failed for it, since a leak can hold up or disturb what runs next.
TEST_GROUP=
group_pids() { # PGID — its live processes (killed ones stay zombies a while: PID 1 reaps lazily)
  ps -e -o pid=,pgid=,stat= | awk -v g="$1" '$2 == g && $3 !~ /^Z/ { print $1 }'
}

stop_test_group() { # PGID WHAT
  local left
  left=$(group_pids "$1" | paste -sd' ')
  [ -n "$left" ] || return 0
  printf 'FAILED %s left processes running; killing them:\n' "$2"
  # shellcheck disable=SC2086 # a list of PIDs
  ps -o pid=,args= -p ${left// /,} | sed 's/^/    /'
  kill -TERM -- "-$1" 2>/dev/null
  for _ in $(seq 1 50); do
    [ -n "$(group_pids "$1")" ] || break
    sleep 0.1
  done
  kill -KILL -- "-$1" 2>/dev/null
  failed=$((failed + 1))
  failures+=("$2 left processes running")
}

cleanup() {
  [ -z "$TEST_GROUP" ] || stop_test_group "$TEST_GROUP" "the tests running when the run was stopped"
  log "removing this run's fleet and databases"
  if ! bash "$FLEET" down >"$RESULTS/fleet-down.log" 2>&1; then
    cat "$RESULTS/fleet-down.log" >&2
  else
    rm -rf --one-file-system "$DROVER_FLEET_STATE"
  fi
  drop_databases "drover\\_run\\_${RUN_ID}\\_%" || log "could not drop the databases ${DB_PREFIX}*"
  rm -f "$RUNS_DIR/$RUN_ID"
  rm -rf "$RESULTS"
}

check() {
  local name=$1
  shift
  if "$@" >"$RESULTS/$name.log" 2>&1; then
    passed=$((passed + 1))
    printf 'ok     check: %s\n' "$name"
  else
    failed=$((failed + 1))
    failures+=("check: $name")
    printf 'FAILED check: %s\n' "$name"
    tail -n 60 "$RESULTS/$name.log" | sed 's/^/    /'
  fi
}

openapi_in_sync() {
  node dist/src/openapi/generate.js "$RESULTS/openapi.json" >/dev/null || return 1
  npx --no-install openapi-typescript "$RESULTS/openapi.json" --default-non-nullable false -o "$RESULTS/schema.d.ts" >/dev/null 2>&1 || return 1
  if ! diff -u openapi.json "$RESULTS/openapi.json" || ! diff -u src/client/schema.d.ts "$RESULTS/schema.d.ts"; then
    echo "openapi.json or src/client/schema.d.ts is out of date: run 'npm run openapi:generate' and commit"
    return 1
  fi
}

compose_valid() {
  apt_install docker-compose >/dev/null
  docker-compose -f docker-compose.yml config -q || return 1
  # `docker compose up --scale worker=N` needs a worker with no fixed name or host port, and every
  # worker needs the SSH key (it cannot reach a host without one).
  local worker
  worker=$(docker-compose -f docker-compose.yml config | awk '/^  worker:$/ { in_worker = 1; next } /^  [^ ]|^[^ ]/ { in_worker = 0 } in_worker')
  if grep -Eq '^    (container_name|ports):' <<<"$worker"; then
    echo "docker-compose.yml: the worker service has a container_name or ports, so it cannot be scaled"
    return 1
  fi
  if ! grep -q 'SSH_PRIVATE_KEY_PATH: /run/secrets/drover_ssh_key' <<<"$worker" || ! grep -q 'source: drover_ssh_key' <<<"$worker"; then
    echo "docker-compose.yml: the worker service does not get the SSH key (secret drover_ssh_key)"
    return 1
  fi
}

shell_scripts_clean() {
  apt_install shellcheck >/dev/null
  shellcheck -x scripts/*.sh scripts/lib/*.sh test/fleet/*.sh agents/packaging/*.sh .ci/run
}

# --- provisioning (a failure here stops the run: nothing meaningful could be tested) ---
ensure_build || die "build failed"
ensure_postgres
ensure_postgres_role drover drover
ensure_redis
# visudo and cvtsudoers check the generated sudoers drop-ins.
apt_install sudo
# The dashboard's tests drive Debian's Chromium with playwright-core (no browser download).
apt_install chromium

mkdir -p "$RUNS_DIR"
remove_stale_runs
echo "$$ $(start_time_of $$)" >"$RUNS_DIR/$RUN_ID"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log "test run $RUN_ID: fleet $DROVER_FLEET_STATE, databases ${DB_PREFIX}*"

log "preparing the migrated template database"
ensure_database "$TEMPLATE_DB" drover
DATABASE_URL="postgresql://drover:drover@127.0.0.1:5432/$TEMPLATE_DB" REDIS_URL=redis://127.0.0.1:6379 \
  QUEUE_PREFIX="drover-test-$RUN_ID" node dist/src/admin.js migrate >/dev/null || die "migrating the template database failed"

log "booting a test fleet of $FLEET_HOSTS hosts (systemd-nspawn)"
bash "$FLEET" up --hosts "$FLEET_HOSTS" || die "the test fleet did not boot"

# --- static checks ---
log "static checks"
check lint npx --no-install eslint --max-warnings 0 .
check format npx --no-install prettier --check .
check typecheck npx --no-install tsc --noEmit -p .
check typecheck-dashboard npx --no-install tsc --noEmit -p ui
check layers node scripts/check-layers.mjs
check openapi-in-sync openapi_in_sync
check openapi-lint npx --no-install redocly lint openapi.json --format stylish
check compose-file compose_valid
check shellcheck shell_scripts_clean

# --- unit and integration tests ---
log "unit and integration tests"
mapfile -t unit_files < <(find dist/src packages/*/dist agents/dist -name '*.spec.js' | sort)
mapfile -t integration_files < <(find dist/test -name '*.test.js' | sort)
# A floor, so a suite that shrank cannot pass: every test file of the tree compiled and ran, and at
# least as many tests ran as there are it()/test() call sites in them (loops only add to that).
source_files=$(find src packages/*/src agents/src -name '*.spec.ts' | wc -l)
source_files=$((source_files + $(find test -name '*.test.ts' | wc -l)))
test_sites=$(grep -rhoE '^\s*(it|test)\(' src packages agents/src test --include='*.spec.ts' --include='*.test.ts' | wc -l)
mkdir -p "$RESULTS/tap"

# One node --test per batch, with a time limit per test and what is left of the run's time limit
# (SIGTERM, then SIGKILL), so one hung test (a stream nobody closes) cannot take the summary with it.
# `timeout` leads a process group of its own, holding everything the batch starts (but the fleet,
# which fleet.sh detaches), so what the batch leaves behind is found and stopped.
run_tests() { # TAP_FILE WHAT FILE...
  local tap=$1 what=$2 left=$((RUN_DEADLINE - SECONDS))
  shift 2
  if [ "$left" -le 0 ]; then
    failed=$((failed + 1))
    failures+=("the run's time limit (DROVER_TEST_RUN_TIMEOUT) passed before $what")
    return 0
  fi
  TEST_POSTGRES_URL=postgresql://drover:drover@127.0.0.1:5432/postgres \
    TEST_TEMPLATE_DATABASE="$TEMPLATE_DB" \
    TEST_DATABASE_PREFIX="$DB_PREFIX" \
    REDIS_URL=redis://127.0.0.1:6379 \
    timeout --kill-after=30 "$left" \
    node --test --test-concurrency=1 --test-timeout="${DROVER_TEST_TIMEOUT_MS:-600000}" \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    "$@" &
  TEST_GROUP=$!
  wait "$TEST_GROUP"
  local status=$?
  echo "$status" >"$tap.exit"
  stop_test_group "$TEST_GROUP" "$what"
  TEST_GROUP=
}

run_tests "$RESULTS/tap/000-unit.tap" "the unit tests" "${unit_files[@]}"
# Integration tests share the fleet, one file at a time. Before each, the hosts go back to the
# image's units (fleet.sh reset): whatever a file left behind — a drop-in, a masked or edited unit,
# a frozen host — even when it was killed before its own after() hooks ran, the next file does not
# inherit it. What a reset had to undo is printed, naming the file that left it.
previous="the fleet's boot"
index=0
for file in "${integration_files[@]}"; do
  index=$((index + 1))
  reset_log="$RESULTS/reset-$index.log"
  if bash "$FLEET" reset >"$reset_log" 2>&1; then
    if grep -qv '^fleet[ :]' "$reset_log"; then
      printf 'fleet reset after %s:\n' "$previous"
      grep -v '^fleet[ :]' "$reset_log" | sed 's/^/    /'
    fi
  else
    failed=$((failed + 1))
    failures+=("fleet reset after $previous")
    printf 'FAILED fleet reset after %s:\n' "$previous"
    sed 's/^/    /' "$reset_log"
  fi
  run_tests "$(printf '%s/tap/%03d.tap' "$RESULTS" "$index")" "${file#dist/}" "$file"
  previous=${file#dist/}
done

# Each failed test of a TAP file with its diagnostics (at most 40 lines of them): node's TAP puts a
# test's YAML block ("---" … "...") right under its "not ok" line. A suite's block, which only says
# that subtests failed, is left out, and so are the stack's frames inside node itself.
failed_tests_in() { # TAP_FILE
  awk '
    function flush() { if (block != "" && block !~ /subtestsFailed/) printf "%s", block; block = ""; collecting = 0 }
    /^ *not ok / { flush(); if ($0 !~ /# (SKIP|TODO)/) { collecting = 1; lines = 0 } }
    collecting && /^ *(ok |# Subtest:)/ { flush() }
    collecting && /\(node:[a-z_\/]+:[0-9]+:[0-9]+\)$/ { next }
    collecting { if (lines++ < 40) block = block "    " $0 "\n"; if ($0 ~ /^ *\.\.\.$/) flush() }
    END { flush() }
  ' "$1"
}

tap_count() { # KEY TAP_FILE
  awk -v key="# $1" '$0 ~ "^"key" " { print $3 }' "$2" | tail -n 1
}
declare -A total=([pass]=0 [fail]=0 [cancelled]=0 [skipped]=0 [todo]=0 [tests]=0)
for tap in "$RESULTS"/tap/*.tap; do
  exit_status=$(cat "$tap.exit" 2>/dev/null || echo none)
  if [ -z "$(tap_count pass "$tap")" ]; then
    failed=$((failed + 1))
    failures+=("the test runner produced no summary for ${tap##*/} (exit $exit_status)")
    continue
  fi
  for key in "${!total[@]}"; do
    value=$(tap_count "$key" "$tap")
    total[$key]=$((total[$key] + ${value:-0}))
  done
  if [ "$(tap_count fail "$tap")" = 0 ] && [ "$(tap_count cancelled "$tap")" = 0 ] && [ "$exit_status" != 0 ]; then
    failed=$((failed + 1))
    failures+=("node --test exited $exit_status for ${tap##*/}")
  fi
done
ran_files=$((${#unit_files[@]} + ${#integration_files[@]}))
if [ "$ran_files" -lt "$source_files" ]; then
  failed=$((failed + 1))
  failures+=("only $ran_files compiled test files for $source_files in the tree")
fi
if [ "${total[tests]}" -lt "$test_sites" ]; then
  failed=$((failed + 1))
  failures+=("only ${total[tests]} tests ran, fewer than the $test_sites it()/test() call sites in the tree")
fi
# A skipped or todo test proves nothing: counted and refused.
if [ "${total[skipped]}" -gt 0 ] || [ "${total[todo]}" -gt 0 ]; then
  failed=$((failed + 1))
  failures+=("${total[skipped]} skipped and ${total[todo]} todo test(s)")
fi
passed=$((passed + total[pass]))
failed=$((failed + total[fail] + total[cancelled]))
# Why each failed test failed (its TAP diagnostics: error, expected, stack), printed again after the
# teardown: whoever reads only the end of a long log still sees the cause, not just the count.
why_failed=$(for tap in "$RESULTS"/tap/*.tap; do failed_tests_in "$tap"; done)

# Tear down before the summary, so "N passed, N failed" is the last line printed.
trap - EXIT
cleanup
echo
[ -n "$why_failed" ] && printf 'why the failed tests failed:\n%s\n\n' "$why_failed"
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed, ${total[skipped]} skipped, ${total[todo]} todo"
[ "$failed" -eq 0 ]

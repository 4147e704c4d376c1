#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine (root): installs and starts what it needs
# (Node dependencies, PostgreSQL, Redis, a booted systemd-nspawn fleet), runs the static checks,
# unit tests and integration tests, and prints "N passed, N failed" last.
set -uo pipefail
# shellcheck source=scripts/lib/stack.sh
source "$(dirname "$0")/lib/stack.sh"
cd "$DROVER_ROOT" || exit 1

FLEET_HOSTS="${DROVER_TEST_HOSTS:-6}"
export DROVER_FLEET_STATE="${DROVER_FLEET_STATE:-/var/lib/drover-fleet/state}"
RESULTS="$(mktemp -d -t drover-test.XXXXXX)"
passed=0
failed=0
failures=()

cleanup() {
  log "tearing down the test fleet"
  bash test/fleet/fleet.sh down >"$RESULTS/fleet-down.log" 2>&1 || cat "$RESULTS/fleet-down.log" >&2
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
  docker-compose -f docker-compose.yml config -q
}

shell_scripts_clean() {
  apt_install shellcheck >/dev/null
  shellcheck -x scripts/*.sh scripts/lib/*.sh test/fleet/*.sh .ci/run
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

log "preparing the migrated template database"
runuser -u postgres -- psql -qAtX -d postgres -c \
  "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE);', datname) FROM pg_database WHERE datname LIKE 'drover\_t\_%' OR datname = 'drover_test_template'" |
  runuser -u postgres -- psql -qX -d postgres >/dev/null
ensure_database drover_test_template drover
DATABASE_URL=postgresql://drover:drover@127.0.0.1:5432/drover_test_template REDIS_URL=redis://127.0.0.1:6379 \
  node dist/src/admin.js migrate >/dev/null || die "migrating the template database failed"

trap cleanup EXIT
log "booting a test fleet of $FLEET_HOSTS hosts (systemd-nspawn)"
bash test/fleet/fleet.sh up --hosts "$FLEET_HOSTS" || die "the test fleet did not boot"

# --- static checks ---
log "static checks"
check lint npx --no-install eslint --max-warnings 0 .
check format npx --no-install prettier --check .
check typecheck npx --no-install tsc --noEmit -p .
check typecheck-dashboard npx --no-install tsc --noEmit -p ui
check circular-imports npx --no-install madge --circular --extensions ts --ts-config tsconfig.json --exclude '^generated/' src
check openapi-in-sync openapi_in_sync
check openapi-lint npx --no-install redocly lint openapi.json --format stylish
check compose-file compose_valid
check shellcheck shell_scripts_clean

# --- unit and integration tests ---
log "unit and integration tests"
mapfile -t test_files < <(find dist/src -name '*.spec.js' | sort; find dist/test -name '*.test.js' | sort)
# A floor, so a suite that shrank cannot pass: every test file of the tree compiled and ran, and at
# least as many tests ran as there are it()/test() call sites in them (loops only add to that).
source_files=$(find src -name '*.spec.ts' | wc -l)
source_files=$((source_files + $(find test -name '*.test.ts' | wc -l)))
test_sites=$(grep -rhoE '^\s*(it|test)\(' src test --include='*.spec.ts' --include='*.test.ts' | wc -l)
# One hung test (a stream nobody closes) must not take the closing line with it: each test has a
# time limit, and the whole run one too (SIGTERM, then SIGKILL), after which the summary still prints.
TEST_POSTGRES_URL=postgresql://drover:drover@127.0.0.1:5432/postgres \
  TEST_TEMPLATE_DATABASE=drover_test_template \
  REDIS_URL=redis://127.0.0.1:6379 \
  timeout --kill-after=30 "${DROVER_TEST_RUN_TIMEOUT:-4200}" \
  node --test --test-concurrency=1 --test-timeout="${DROVER_TEST_TIMEOUT_MS:-600000}" \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$RESULTS/tests.tap" \
  "${test_files[@]}"
tests_exit=$?

tap_count() { awk -v key="# $1" '$0 ~ "^"key" " { print $3 }' "$RESULTS/tests.tap" | tail -n 1; }
test_pass=$(tap_count pass)
test_fail=$(tap_count fail)
test_cancelled=$(tap_count cancelled)
test_skipped=$(tap_count skipped)
test_todo=$(tap_count todo)
test_total=$(tap_count tests)
if [ "${#test_files[@]}" -lt "$source_files" ]; then
  failed=$((failed + 1))
  failures+=("only ${#test_files[@]} compiled test files for $source_files in the tree")
fi
if [ -n "$test_total" ] && [ "$test_total" -lt "$test_sites" ]; then
  failed=$((failed + 1))
  failures+=("only $test_total tests ran, fewer than the $test_sites it()/test() call sites in the tree")
fi
# A skipped or todo test proves nothing: counted and refused.
if [ "${test_skipped:-0}" -gt 0 ] || [ "${test_todo:-0}" -gt 0 ]; then
  failed=$((failed + 1))
  failures+=("${test_skipped:-0} skipped and ${test_todo:-0} todo test(s)")
fi
if [ -z "$test_pass" ]; then
  failed=$((failed + 1))
  failures+=("the test runner produced no summary (exit $tests_exit)")
else
  passed=$((passed + test_pass))
  failed=$((failed + ${test_fail:-0} + ${test_cancelled:-0}))
  [ "${test_fail:-0}" -eq 0 ] && [ "${test_cancelled:-0}" -eq 0 ] && [ "$tests_exit" -ne 0 ] &&
    failed=$((failed + 1)) && failures+=("node --test exited $tests_exit")
fi

# Tear down before the summary, so "N passed, N failed" is the last line printed.
trap - EXIT
cleanup
echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed, ${test_skipped:-0} skipped"
[ "$failed" -eq 0 ]

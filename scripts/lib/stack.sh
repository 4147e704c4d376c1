# shellcheck shell=bash
# Shared by scripts/demo.sh and scripts/test.sh: bring up what drover needs on a fresh Debian
# machine (Node dependencies, PostgreSQL, Redis) without assuming anything was set up by hand.

DROVER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export DROVER_ROOT

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}: run as root or install them"
  log "installing ${missing[*]} (apt)"
  if [ -z "${DROVER_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    export DROVER_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Installs the locked Node dependencies when node_modules is missing or older than the lock, then
# builds. `npm install` rather than `npm ci`: registries that serve only this platform's optional
# native packages leave the other platforms' entries out of the lock, and `npm ci` then refuses it.
# One build of a checkout at a time (a demo and a test run may start together): two tsc writing the
# same dist/ at once could leave a file half written for the other to load. An incremental build of
# an unchanged tree writes nothing, so a build does not disturb a run already using dist/.
ensure_build() {
  cd "$DROVER_ROOT" || die "no $DROVER_ROOT"
  (
    flock -w 900 8 || die "timed out waiting for another build of $DROVER_ROOT"
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
      log "installing Node dependencies (npm install from package-lock.json)"
      npm install --no-audit --no-fund --loglevel=error
    fi
    log "building (prisma generate + tsc)"
    npm run --silent build >/dev/null
  ) 8>"/run/lock/drover-build-$(printf '%s' "$DROVER_ROOT" | sha256sum | cut -c1-12).lock"
}

# 0 when GET URL answers 2xx (node's fetch: no curl needed on a fresh machine).
http_ok() {
  node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for_tcp() {
  local host=$1 port=$2 what=$3
  for _ in $(seq 1 100); do
    tcp_open "$host" "$port" && return 0
    sleep 0.2
  done
  die "$what did not start listening on $host:$port"
}

# PostgreSQL on 127.0.0.1:5432: started (installed if absent) when nothing listens there.
ensure_postgres() {
  if ! tcp_open 127.0.0.1 5432; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    local version
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
    [ -n "$version" ] || die "PostgreSQL is installed but has no cluster"
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for_tcp 127.0.0.1 5432 PostgreSQL
  fi
}

# A login role for drover with a password, created over the local socket as the postgres user,
# so it works whether TCP auth is trust or scram-sha-256.
ensure_postgres_role() {
  local role=$1 password=$2
  command -v runuser >/dev/null || die "runuser is missing"
  runuser -u postgres -- psql -qAtX -v ON_ERROR_STOP=1 -d postgres >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
    CREATE ROLE "$role" LOGIN CREATEDB PASSWORD '$password';
  END IF;
END \$\$;
SQL
}

ensure_database() {
  local database=$1 owner=$2
  if ! runuser -u postgres -- psql -qAtX -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
    runuser -u postgres -- psql -qX -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$database\" OWNER \"$owner\"" >/dev/null
  fi
}

redis_ping() {
  (
    exec 3<>/dev/tcp/127.0.0.1/6379 || exit 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3 && [[ $reply == +PONG* ]]
  ) 2>/dev/null
}

# Redis on 127.0.0.1:6379: started (installed if absent) when it does not answer. The binaries are
# needed even when another Redis answers: tests start servers, sentinels and a cluster of their own.
ensure_redis() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server redis-tools
  fi
  redis_ping && return 0
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do
    redis_ping && return 0
    sleep 0.2
  done
  die "Redis did not start"
}

#!/usr/bin/env bash
# fleet.sh — real Linux test hosts for drover on one machine.
#
#   up [--hosts N]        boot N systemd-nspawn containers with real systemd, sshd, nginx and the
#                         drover-probe test unit; write $STATE/inventory.json
#   down                  remove everything up/scale-up of this fleet created (the base image cache
#                         and other fleets stay)
#   reset [HOST...]       put the hosts' units back as the image has them (unit files, drop-ins,
#                         masks, init scripts, sudoers rules; runtime drop-ins), thaw and reconnect
#                         them, boot again any that stopped, and have the standard units active
#   status                one line per host: name, address, reachable yes/no
#   ssh [--user U] HOST [--] [CMD...]
#                         run CMD on a host (name or address) with the pinned host key
#   scale-up [--hosts N]  start N plain sshd processes on 127.0.0.1 (cheap, no systemd) for load
#                         tests; write $STATE/scale-inventory.json
#   scale-down            stop them
#   name                  print this fleet's name, bridge, subnet and cgroup parents
#
# A fleet is named by its state directory (or DROVER_FLEET_NAME): several can be up at once, each
# with its own bridge, /16, cgroups, machine names, lock and processes, and every command touches
# its own fleet only. The fleet in /var/lib/drover-fleet/state is "default" and keeps the names it
# always had (drvfleet0, 10.213.0.0/16, cgroup drover-fleet).
#
# Environment: DROVER_FLEET_STATE (/var/lib/drover-fleet/state), DROVER_FLEET_NAME, DROVER_FLEET_HOSTS
# (up, default 3), DROVER_FLEET_SCALE_HOSTS (scale-up, default 20), DROVER_FLEET_CACHE
# (/var/cache/drover-fleet, shared by all fleets), DROVER_FLEET_BOOT_PARALLEL (8),
# DROVER_FLEET_BOOT_TIMEOUT (180 s), DROVER_FLEET_STOP_TIMEOUT (10 s), DROVER_FLEET_NSPAWN_ARGS (extra
# nspawn arguments), DROVER_FLEET_KEEP_ON_FAILURE=1, DROVER_FLEET_MIRROR.
# Needs root. See README.md next to this file for paths, timings and pitfalls.
set -Eeuo pipefail
shopt -s nullglob

FLEET_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly FLEET_DIR

# ---------------------------------------------------------------------------------------------
# Settings. Bump BASE_RECIPE_VERSION when the base recipe changes in a way the hash below cannot
# see (e.g. the Debian archive moved on); the recipe's own text is hashed into the version anyway.
readonly BASE_RECIPE_VERSION=1
readonly SUITE=bookworm
readonly DEBOOTSTRAP_INCLUDE=systemd,systemd-sysv,openssh-server,dbus,nginx-light,iproute2,procps,python3,sudo
readonly MIRROR=${DROVER_FLEET_MIRROR:-http://deb.debian.org/debian}
readonly CACHE=${DROVER_FLEET_CACHE:-/var/cache/drover-fleet}
readonly DEFAULT_STATE=/var/lib/drover-fleet/state
STATE=${DROVER_FLEET_STATE:-$DEFAULT_STATE}
while [[ $STATE == ?*/ ]]; do STATE=${STATE%/}; done
readonly STATE
readonly MAX_HOSTS=1000 MAX_SCALE_HOSTS=2000
readonly BOOT_PARALLEL=${DROVER_FLEET_BOOT_PARALLEL:-8}
NODE_BIN=$(command -v node || true)
[ -z "$NODE_BIN" ] || NODE_BIN=$(readlink -f "$NODE_BIN")
readonly NODE_BIN
readonly BOOT_TIMEOUT=${DROVER_FLEET_BOOT_TIMEOUT:-180}
readonly STOP_TIMEOUT=${DROVER_FLEET_STOP_TIMEOUT:-10}
readonly LOCK_TIMEOUT=${DROVER_FLEET_LOCK_TIMEOUT:-900}
# Machine-wide, held briefly: the base image cache and package installs (one writer at a time), and
# the choice of a subnet or scale ports (so two fleets coming up at once cannot pick the same).
readonly CACHE_LOCK_FILE=/run/lock/drover-fleet-cache.lock
readonly NET_LOCK_FILE=/run/lock/drover-fleet-net.lock
# Which state directory holds each fleet name that is up (so two directories cannot share a name).
readonly REGISTRY=/run/drover-fleet
# Subnets other fleets may use: 10.NET_FIRST.0.0/16 … 10.NET_LAST.0.0/16 (10.213 is the default's).
readonly NET_FIRST=200 NET_LAST=250 DEFAULT_NET=10.213
readonly REQUIRED_PKGS=(systemd-container debootstrap openssh-server openssh-client bridge-utils zstd iproute2)
# Units every host runs as the image boots it; `reset` leaves them active.
readonly STANDARD_UNITS=(ssh.service nginx.service drover-probe.service)
# What `reset` compares with the base image (relative to a host's root): where units, their
# drop-ins, masks and enablement live, and what runs them.
readonly RESET_TREES=(etc/systemd/system etc/systemd/system.control usr/lib/systemd/system lib/systemd/system
  etc/init.d etc/sudoers.d usr/local/lib/drover-probe)

readonly CLIENT_KEY=$STATE/ssh/id_ed25519
readonly KNOWN_HOSTS=$STATE/known_hosts
readonly HOSTS_DIR=$STATE/hosts
readonly SCALE_DIR=$STATE/scale
readonly INVENTORY=$STATE/inventory.json
readonly HOSTS_TSV=$STATE/hosts.tsv            # name, address, port, fingerprint (for status/ssh)
readonly SCALE_INVENTORY=$STATE/scale-inventory.json
readonly SCALE_TSV=$STATE/scale-hosts.tsv
readonly INSTANCE_ENV=$STATE/instance.env      # what `up` chose: subnet, bridge, base (for down/reset)
readonly INSTANCE_JSON=$STATE/instance.json    # the same for tests: cgroups, machine and veth per host

# Per fleet, set by init_instance: NAME, BRIDGE, CG_PARENT, CG_SCALE_PARENT, LAUNCHER_MARK,
# MOUNT_SOURCE, LOCK_FILE, MACHINE_PREFIX; by up (or read back from $INSTANCE_ENV): NET_PREFIX, LOWER.
NAME='' BRIDGE='' CG_PARENT='' CG_SCALE_PARENT='' LAUNCHER_MARK='' MOUNT_SOURCE='' LOCK_FILE=''
MACHINE_PREFIX='' NET_PREFIX='' SCALE_PORT_BASE='' LOWER_REAL=''
RESTORED=() # what reset_host put back, one "removed|restored PATH" per entry
CMD=
MAIN_PID=$BASHPID
DIED=
FAILED_AT=
CLEANUP_ON_FAIL=
CG_ROOTS=()
LOWER=
WAITERS=()

# ---------------------------------------------------------------------------------------------
# Output, errors, traps

log() { printf 'fleet: %s\n' "$*" >&2; }

die() {
  DIED=1
  printf 'fleet.sh %s: error: %s\n' "${CMD:-}" "$*" >&2
  exit 1
}

on_err() {
  [ "$BASHPID" = "$MAIN_PID" ] || return 0
  [ -n "$FAILED_AT" ] || FAILED_AT="line $1: $2"
}

on_exit() {
  local rc=$?
  [ "$BASHPID" = "$MAIN_PID" ] || return 0
  [ "$rc" -ne 0 ] || return 0
  [ -n "$DIED" ] || printf 'fleet.sh %s: error: command failed (%s), exit status %s\n' \
    "${CMD:-}" "${FAILED_AT:-unknown}" "$rc" >&2
  stop_waiters
  [ -n "$CLEANUP_ON_FAIL" ] || return 0
  if [ "${DROVER_FLEET_KEEP_ON_FAILURE:-0}" = 1 ]; then
    log "DROVER_FLEET_KEEP_ON_FAILURE=1: leaving this run's hosts in place; 'fleet.sh down' removes them"
    return 0
  fi
  log "cleaning up what this run created ..."
  set +e
  "$CLEANUP_ON_FAIL" || log "cleanup failed too; run 'fleet.sh down'"
}

trap 'on_err "$LINENO" "$BASH_COMMAND"' ERR
trap on_exit EXIT
trap 'FAILED_AT="interrupted by SIGINT"; exit 130' INT
trap 'FAILED_AT="interrupted by SIGTERM"; exit 143' TERM

now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }
secs_since() { local d=$(($(now_ms) - $1)); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }

usage() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
}

# ---------------------------------------------------------------------------------------------
# Preconditions

require_root() { [ "$(id -u)" = 0 ] || die "must run as root (it mounts, creates a bridge and cgroups)"; }

check_paths() {
  local p
  for p in "$CACHE" "$STATE"; do
    [[ $p == /?* ]] || die "'$p' must be an absolute path"
    [[ $p != *[[:space:],:\\]* ]] || die "'$p' must not contain whitespace, ',', ':' or '\\' (overlayfs options)"
  done
}

# Names everything that belongs to this fleet. The default fleet keeps the names fleets always had,
# so a fleet booted by an older fleet.sh is still found (and torn down) by this one; every other
# fleet gets names no other fleet (or an older fleet.sh, whose `down` sweeps the default names)
# can match.
init_instance() {
  local base tag sane
  if [ -n "${DROVER_FLEET_NAME:-}" ]; then
    NAME=$DROVER_FLEET_NAME
    [[ $NAME =~ ^[a-z0-9][a-z0-9_-]{0,47}$ ]] ||
      die "DROVER_FLEET_NAME '$NAME' must be 1-48 of a-z 0-9 _ - (starting with a letter or digit)"
    [ "$NAME" != default ] || [ "$STATE" = "$DEFAULT_STATE" ] ||
      die "the name 'default' belongs to the fleet in $DEFAULT_STATE"
    [ "$NAME" = default ] || [ "$STATE" != "$DEFAULT_STATE" ] ||
      die "the fleet in $DEFAULT_STATE is called 'default' (unset DROVER_FLEET_NAME)"
  elif [ "$STATE" = "$DEFAULT_STATE" ]; then
    NAME=default
  else
    base=${STATE##*/}
    sane=$(printf '%s' "$base" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9_-' '-' | cut -c1-40)
    sane=${sane#[-_]}
    # /var/lib/drover-fleet/<name> is called <name>; anything else gets a hash of its path too.
    if [ "$STATE" = "/var/lib/drover-fleet/$base" ] && [ "$sane" = "$base" ] && [ "$base" != default ]; then
      NAME=$base
    else
      NAME=${sane:-fleet}-$(printf '%s' "$STATE" | sha256sum | cut -c1-6)
    fi
  fi
  if [ "$NAME" = default ]; then
    BRIDGE=drvfleet0 CG_PARENT=drover-fleet CG_SCALE_PARENT=drover-fleet-scale
    LAUNCHER_MARK=drover-fleet-launcher MOUNT_SOURCE=drover-fleet MACHINE_PREFIX=fleet
    LOCK_FILE=/run/lock/drover-fleet.lock
  else
    # Interface names have at most 15 characters: the bridge is drvf + 6 hex (10), and a machine
    # f + 6 hex + -NNNN (at most 12), so nspawn's "vb-<machine>" veth fits without being hashed.
    tag=$(printf '%s' "$NAME" | sha256sum | cut -c1-6)
    BRIDGE=drvf$tag CG_PARENT=drover-fleet@$NAME CG_SCALE_PARENT=drover-fleet-scale@$NAME
    LAUNCHER_MARK=drover-fleet-launcher@$NAME MOUNT_SOURCE=drover-fleet@$NAME MACHINE_PREFIX=f$tag
    LOCK_FILE=/run/lock/drover-fleet@$NAME.lock
  fi
  readonly NAME BRIDGE CG_PARENT CG_SCALE_PARENT LAUNCHER_MARK MOUNT_SOURCE MACHINE_PREFIX LOCK_FILE
}

# What up recorded: the subnet, the base the overlays use. Absent for a default fleet booted by an
# older fleet.sh (which always used 10.213).
read_instance_env() {
  local key value
  NET_PREFIX='' LOWER=''
  if [ -f "$INSTANCE_ENV" ]; then
    while IFS='=' read -r key value; do
      case $key in
        net_prefix) NET_PREFIX=$value ;;
        lower) LOWER=$value ;;
      esac
    done <"$INSTANCE_ENV"
  fi
  if [ -z "$NET_PREFIX" ] && [ "$NAME" = default ]; then NET_PREFIX=$DEFAULT_NET; fi
  if [ -z "$LOWER" ]; then # the lower dir of our overlays, when they are mounted
    LOWER=$(awk -v src="$MOUNT_SOURCE" -v dir="$HOSTS_DIR/" '{ for (i = 7; i <= NF; i++) if ($i == "-") break
      if ($(i + 1) != "overlay" || $(i + 2) != src || index($5, dir) != 1) next
      n = split($(i + 3), o, ","); for (j = 1; j <= n; j++) if (o[j] ~ /^lowerdir=/) { print substr(o[j], 10); exit } }' \
      /proc/self/mountinfo)
  fi
  return 0
}

write_instance_env() {
  printf 'name=%s\nbridge=%s\nnet_prefix=%s\nlower=%s\n' "$NAME" "$BRIDGE" "$NET_PREFIX" "$LOWER" >"$INSTANCE_ENV.tmp"
  mv -f "$INSTANCE_ENV.tmp" "$INSTANCE_ENV"
}

# A fleet name belongs to one state directory while that fleet exists: another directory with the
# same DROVER_FLEET_NAME would derive the same bridge and cgroups and tear down the first's.
claim_name() {
  local owner=
  mkdir -p "$REGISTRY"
  [ -f "$REGISTRY/$NAME" ] && owner=$(cat "$REGISTRY/$NAME")
  if [ -n "$owner" ] && [ "$owner" != "$STATE" ] && { [ -d "$owner/hosts" ] || [ -d "$owner/scale" ]; }; then
    die "the fleet name '$NAME' is in use by the fleet in $owner"
  fi
  printf '%s\n' "$STATE" >"$REGISTRY/$NAME"
}

release_name() {
  [ -f "$REGISTRY/$NAME" ] && [ "$(cat "$REGISTRY/$NAME")" = "$STATE" ] || return 0
  [ -d "$HOSTS_DIR" ] || [ -d "$SCALE_DIR" ] || rm -f "$REGISTRY/$NAME"
}

# This fleet's own lock: commands on one fleet queue, other fleets go on.
take_lock() {
  mkdir -p "$(dirname "$LOCK_FILE")"
  exec 9>"$LOCK_FILE"
  if ! flock -n 9; then
    log "another fleet.sh is working on fleet '$NAME'; waiting up to ${LOCK_TIMEOUT}s for $LOCK_FILE"
    flock -w "$LOCK_TIMEOUT" 9 || die "timed out waiting for $LOCK_FILE"
  fi
}

take_shared_lock() { # FD FILE WHAT
  mkdir -p "$(dirname "$2")"
  eval "exec $1>\"\$2\"" # FD is a literal number
  if ! flock -n "$1"; then
    log "waiting for another fleet.sh ($3, $2) ..."
    flock -w "$LOCK_TIMEOUT" "$1" || die "timed out waiting for $2"
  fi
}

release_shared_lock() { eval "exec $1>&-"; }

ensure_packages() {
  local missing=() p st out
  for p in "${REQUIRED_PKGS[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ $st == ii* ]] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (apt-get) ..."
  out=$(mktemp)
  if ! DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$out" 2>&1; then
    log "apt-get update reported errors (some repositories may be unreachable); installing anyway"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >>"$out" 2>&1 || { tail -n 20 "$out" >&2; rm -f "$out"; die "apt-get install ${missing[*]} failed"; }
  rm -f "$out"
}

init_cgroup_roots() {
  local h
  CG_ROOTS=()
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
    CG_ROOTS=(/sys/fs/cgroup)
    return 0
  fi
  for h in systemd unified freezer; do
    [ -e "/sys/fs/cgroup/$h/cgroup.procs" ] && CG_ROOTS+=("/sys/fs/cgroup/$h")
  done
  [ ${#CG_ROOTS[@]} -gt 0 ] || die "no usable cgroup hierarchy under /sys/fs/cgroup"
}

raise_sysctl() { # KEY MIN — only ever raises
  local cur
  cur=$(sysctl -n "$1")
  if [ "$cur" -lt "$2" ]; then sysctl -qw "$1=$2"; fi
}

ensure_client_key() {
  install -d -m 0700 "$STATE/ssh"
  if [ ! -f "$CLIENT_KEY" ]; then
    ssh-keygen -q -t ed25519 -N '' -C drover-fleet-client -f "$CLIENT_KEY"
  fi
  chmod 0600 "$CLIENT_KEY"
}

# ---------------------------------------------------------------------------------------------
# Base image: debootstrap once, cache as zstd tarball, unpack once into the shared lower dir.

prepare_base() { # ROOTFS — everything that makes the debootstrapped tree a fleet base
  local r=$1 b=$FLEET_DIR/base
  systemctl --root="$r" --quiet enable systemd-networkd.service ssh.service nginx.service
  systemctl --root="$r" --quiet mask apt-daily.timer apt-daily-upgrade.timer fstrim.timer \
    e2scrub_all.timer e2scrub_reap.service getty@tty1.service console-getty.service \
    systemd-networkd-wait-online.service
  install -D -m 0644 "$b/drover-probe.service" "$r/lib/systemd/system/drover-probe.service"
  install -D -m 0755 "$b/drover-probe" "$r/usr/local/lib/drover-probe/drover-probe"
  install -D -m 0755 "$b/drover-probe-ctl" "$r/usr/local/lib/drover-probe/drover-probe-ctl"
  systemctl --root="$r" --quiet enable drover-probe.service
  install -D -m 0644 "$b/sshd-drover-fleet.conf" "$r/etc/ssh/sshd_config.d/drover-fleet.conf"
  install -D -m 0644 "$b/journald-drover-fleet.conf" "$r/etc/systemd/journald.conf.d/drover-fleet.conf"
  chroot "$r" useradd --create-home --shell /bin/bash --user-group drover
  chroot "$r" usermod --password '*' drover # no password, but not "locked" for sshd
  install -d -m 0700 "$r/root/.ssh"
  rm -f "$r"/etc/ssh/ssh_host_*
  : >"$r/etc/machine-id"
  if [ -d "$r/var/lib/dbus" ]; then
    rm -f "$r/var/lib/dbus/machine-id"
    ln -s /etc/machine-id "$r/var/lib/dbus/machine-id"
  fi
  rm -f "$r/etc/hostname" "$r/etc/resolv.conf"
  printf '# drover test fleet: no DNS inside the fleet\n' >"$r/etc/resolv.conf"
  rm -rf "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
  install -d "$r/var/lib/apt/lists/partial"
}

base_version() {
  local h
  h=$({
    declare -f prepare_base
    printf '%s\n' "$SUITE" "$DEBOOTSTRAP_INCLUDE"
    cat "$FLEET_DIR"/base/*
  } | sha256sum | cut -c1-10)
  printf '%s-%s' "$BASE_RECIPE_VERSION" "$h"
}

umount_under() { # DIR — unmount everything at or below DIR (deepest first)
  local mp
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r mp; do umount "$mp" 2>/dev/null || umount -l "$mp"; done
}

build_base() { # VERSION TARBALL
  local work=$CACHE/.build-$1 t0
  t0=$(now_ms)
  log "building base image $1 (debootstrap $SUITE, about a minute; log: $CACHE/build.log) ..."
  umount_under "$work"
  rm -rf --one-file-system "$work"
  mkdir -p "$work"
  if ! debootstrap --variant=minbase --include="$DEBOOTSTRAP_INCLUDE" "$SUITE" "$work/rootfs" \
    "$MIRROR" >"$CACHE/build.log" 2>&1; then
    tail -n 20 "$CACHE/build.log" >&2
    umount_under "$work"
    die "debootstrap failed (mirror $MIRROR); full log: $CACHE/build.log"
  fi
  umount_under "$work"
  prepare_base "$work/rootfs" >>"$CACHE/build.log" 2>&1 # set -e stops here on any failure
  tar -C "$work/rootfs" --numeric-owner --xattrs --xattrs-include='*' -cf - . |
    zstd -q -T0 -6 -f -o "$2.tmp"
  mv -f "$2.tmp" "$2"
  rm -rf --one-file-system "$work"
  log "base image built in $(secs_since "$t0") s: $2 ($(du -h "$2" | cut -f1))"
}

prune_old_bases() { # VERSION — drop other versions nobody has mounted
  local keep=$1 f v
  for f in "$CACHE"/base-*.tar.zst "$CACHE"/base-*/; do
    f=${f%/}
    v=${f##*/base-}
    v=${v%.tar.zst}
    [ "$v" = "$keep" ] && continue
    if grep -q "lowerdir=$CACHE/base-${v}[,:]" /proc/self/mountinfo; then continue; fi
    log "removing old base $f"
    rm -rf --one-file-system "$f" "$CACHE/base-$v.ready"
  done
}

ensure_base() {
  local ver tarball t0
  ver=$(base_version)
  tarball=$CACHE/base-$ver.tar.zst
  LOWER=$CACHE/base-$ver
  [ -f "$CACHE/base-$ver.ready" ] && [ -d "$LOWER/usr" ] && return 0
  # An older fleet.sh builds the base under the default fleet's lock only: wait for it too.
  if [ "$NAME" != default ]; then
    take_shared_lock 6 /run/lock/drover-fleet.lock "the default fleet's lock, under which older fleet.sh versions build the base"
    if [ -f "$CACHE/base-$ver.ready" ] && [ -d "$LOWER/usr" ]; then
      release_shared_lock 6
      return 0
    fi
  fi
  mkdir -p "$CACHE"
  [ -f "$tarball" ] || build_base "$ver" "$tarball"
  t0=$(now_ms)
  rm -rf --one-file-system "$LOWER.tmp" "$LOWER"
  mkdir -p "$LOWER.tmp"
  zstd -q -dc "$tarball" | tar -C "$LOWER.tmp" --numeric-owner --xattrs --xattrs-include='*' -xpf -
  mv "$LOWER.tmp" "$LOWER"
  touch "$CACHE/base-$ver.ready"
  log "unpacked base $ver in $(secs_since "$t0") s (lower dir $LOWER)"
  prune_old_bases "$ver"
  [ "$NAME" = default ] || release_shared_lock 6
}

# ---------------------------------------------------------------------------------------------
# Known hosts and inventories

rebuild_known_hosts() {
  local files=("$HOSTS_DIR"/*/known_hosts "$SCALE_DIR"/*/known_hosts)
  mkdir -p "$STATE"
  if [ ${#files[@]} -gt 0 ]; then cat "${files[@]}" >"$KNOWN_HOSTS.tmp"; else : >"$KNOWN_HOSTS.tmp"; fi
  chmod 0644 "$KNOWN_HOSTS.tmp"
  mv -f "$KNOWN_HOSTS.tmp" "$KNOWN_HOSTS"
}

write_inventory() { # TSV JSON FLEET_LABEL — labels: role=web, env prod/staging, rack r1..r3
  local tsv=$1 json=$2 label=$3 i=0 sep='' name addr port fp env
  {
    printf '{"hosts":['
    while IFS=$'\t' read -r name addr port fp; do
      i=$((i + 1))
      if ((i % 2)); then env=prod; else env=staging; fi
      printf '%s\n  {"name":"%s","address":"%s","port":%d,"transport":"ssh","sshUser":"root",' \
        "$sep" "$name" "$addr" "$port"
      printf '"hostKeyFingerprint":"%s","labels":{"fleet":"%s","role":"web","env":"%s","rack":"r%d"}}' \
        "$fp" "$label" "$env" $(((i - 1) % 3 + 1))
      sep=,
    done <"$tsv"
    printf '\n]}\n'
  } >"$json.tmp"
  chmod 0644 "$json.tmp"
  mv -f "$json.tmp" "$json"
}

fingerprint() { ssh-keygen -lf "$1" | awk '{ print $2 }'; }

ssh_opts() {
  SSH_OPTS=(-F /dev/null -i "$CLIENT_KEY" -o IdentitiesOnly=yes -o IdentityAgent=none
    -o UserKnownHostsFile="$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null
    -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o BatchMode=yes -o ConnectTimeout=5
    -o LogLevel=ERROR -o ServerAliveInterval=10 -o ServerAliveCountMax=3)
}

host_name() { # PREFIX I N
  local w=${#3}
  [ "$w" -ge 2 ] || w=2
  printf '%s-%0*d' "$1" "$w" "$2"
}

host_addr() { # I (1-based): P.0.10 … P.0.249, P.1.10 … (P = NET_PREFIX, e.g. 10.213)
  local idx=$(($1 - 1))
  printf '%s.%d.%d' "$NET_PREFIX" $((idx / 240)) $((10 + idx % 240))
}

check_count() { # N MAX
  if ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt "$2" ]; then
    die "--hosts must be a number from 1 to $2 (got '$1')"
  fi
}

new_machine_id() { local u; u=$(cat /proc/sys/kernel/random/uuid); echo "${u//-/}"; }

# ---------------------------------------------------------------------------------------------
# Processes, cgroups, mounts, links: finding and removing them

cg_tree_pids() { # PARENT — every PID in PARENT's subtree, all hierarchies
  local r
  for r in "${CG_ROOTS[@]}"; do
    if [ -d "$r/$1" ]; then find "$r/$1" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
  done | sort -un
}

cg_remove_tree() { # PARENT — rmdir the subtree in every hierarchy; fails if something is left
  local r left=()
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    left=()
    for r in "${CG_ROOTS[@]}"; do
      [ -d "$r/$1" ] || continue
      find "$r/$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$r/$1" ] && left+=("$r/$1")
    done
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.2
  done
  log "could not remove cgroups ${left[*]} (PIDs still inside: $(cg_tree_pids "$1" | paste -sd' '))"
  return 1
}

launcher_pids() { # every running boot loop of this fleet: its argv0 marker and a root in HOSTS_DIR
  local p args
  for p in /proc/[0-9]*; do
    args=()
    mapfile -t -d '' args 2>/dev/null <"$p/cmdline" || true
    # argv: MARK launcher.sh NAME ROOT ...
    [ "${args[0]:-}" = "$LAUNCHER_MARK" ] && [[ ${args[3]:-} == "$HOSTS_DIR"/* ]] && echo "${p#/proc/}"
  done
  return 0
}

pids_with_comm() { # COMM PID... — those PIDs whose /proc/PID/comm is COMM
  local c=$1 p comm
  shift
  for p in "$@"; do
    read -r comm 2>/dev/null <"/proc/$p/comm" || continue
    [ "$comm" = "$c" ] && echo "$p"
  done
  return 0
}

signal() { # SIGNAL PID... (ignores PIDs that are gone)
  local s=$1
  shift
  [ $# -gt 0 ] || return 0
  kill -s "$s" "$@" 2>/dev/null || true
}

alive_any() { local p; for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }

wait_gone() { # SECONDS CGROUP_PARENT — until no launcher and no process in the tree, or timeout
  local deadline=$((EPOCHSECONDS + $1))
  while [ "$EPOCHSECONDS" -lt "$deadline" ]; do
    if [ -z "$(cg_tree_pids "$2")" ] && { [ "$2" != "$CG_PARENT" ] || [ -z "$(launcher_pids)" ]; }; then
      return 0
    fi
    sleep 0.5
  done
  return 1
}

# Signals only the waiters still running, from bash's own table of jobs: a finished waiter's PID
# may already be another process's. At 400 hosts the PIDs wrap around during the boot, and
# signalling every waiter once all had finished stopped sshd (likely once an init) of booted hosts.
stop_waiters() {
  [ ${#WAITERS[@]} -gt 0 ] || return 0
  local -A running=()
  local p live=()
  for p in $(jobs -rp); do running[$p]=1; done
  for p in "${WAITERS[@]}"; do [ -n "${running[$p]:-}" ] && live+=("$p"); done
  signal TERM "${live[@]}"
  WAITERS=()
}

fleet_mounts() { # mount points of this fleet's overlays (its source, below its HOSTS_DIR), deepest first
  awk -v src="$MOUNT_SOURCE" -v dir="$HOSTS_DIR/" '{ for (i = 7; i <= NF; i++) if ($i == "-") break
         if ($(i + 1) == "overlay" && $(i + 2) == src && index($5, dir) == 1) print $5 }' /proc/self/mountinfo | sort -r
}

machine_name() { # HOST NAME (fleet-07) -> nspawn machine name (fleet-07, or f1a2b3c-07)
  printf '%s-%s' "$MACHINE_PREFIX" "${1##*-}"
}

# The bridge is ours when it carries our mark (set by up), or is the default fleet's name (fleets
# booted by an older fleet.sh have no mark). Anything else with our name is someone else's.
bridge_is_ours() {
  local alias
  ip link show dev "$BRIDGE" >/dev/null 2>&1 || return 1
  alias=$(cat "/sys/class/net/$BRIDGE/ifalias" 2>/dev/null || true)
  [ "$alias" = "drover-fleet $STATE" ] || { [ "$NAME" = default ] && [ -z "$alias" ]; }
}

teardown_fleet() { # the nspawn fleet: launchers, containers, overlays, veths, bridge, cgroups
  local launchers nspawns all mp l found=0
  mapfile -t launchers < <(launcher_pids)
  mapfile -t all < <(cg_tree_pids "$CG_PARENT")
  if [ ${#launchers[@]} -gt 0 ] || [ ${#all[@]} -gt 0 ]; then
    found=1
    mp=("${CG_ROOTS[0]}/$CG_PARENT"/*/)
    log "stopping ${#mp[@]} host(s) (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s) ..."
    # Decide everything first (builtins only), then signal all at once: once containers are shutting
    # down, every fork is slow. Launchers pass SIGTERM on to their nspawn (orderly poweroff),
    # orphaned nspawns get it directly, and a container whose nspawn is gone gets SIGRTMIN+3 at its
    # init (what nspawn itself would send).
    local -A has_nspawn=()
    local term=("${launchers[@]}") halt=() st cg
    mapfile -t nspawns < <(pids_with_comm systemd-nspawn "${all[@]}")
    for l in "${nspawns[@]}"; do
      read -r -a st 2>/dev/null <"/proc/$l/stat" || continue
      [[ " ${launchers[*]} " == *" ${st[3]} "* ]] || term+=("$l")
      while IFS= read -r cg; do
        [[ $cg == *":/$CG_PARENT/"* ]] || continue
        cg=${cg#*":/$CG_PARENT/"}
        has_nspawn[${cg%%/*}]=1
      done 2>/dev/null <"/proc/$l/cgroup" || true
    done
    for l in "${mp[@]}"; do
      l=${l%/}
      [ -z "${has_nspawn[${l##*/}]:-}" ] || continue
      [ -f "$l/payload/init.scope/cgroup.procs" ] || continue
      mapfile -t st 2>/dev/null <"$l/payload/init.scope/cgroup.procs" || continue
      halt+=("${st[@]}")
    done
    signal TERM "${term[@]}"
    signal RTMIN+3 "${halt[@]}"
    if ! wait_gone "$STOP_TIMEOUT" "$CG_PARENT"; then
      log "still running after ${STOP_TIMEOUT}s: SIGKILL"
      mapfile -t launchers < <(launcher_pids)
      signal KILL "${launchers[@]}"
      mapfile -t all < <(cg_tree_pids "$CG_PARENT")
      signal KILL "${all[@]}"
      wait_gone 10 "$CG_PARENT" || log "warning: processes survived SIGKILL: $(cg_tree_pids "$CG_PARENT" | paste -sd' ')"
    fi
  fi
  while read -r mp; do
    found=1
    umount "$mp" 2>/dev/null || umount -l "$mp"
  done < <(fleet_mounts)
  if bridge_is_ours; then
    found=1
    while read -r l; do
      ip link del "$l" 2>/dev/null || true
    done < <(ip -o link show master "$BRIDGE" | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }')
    ip link del "$BRIDGE"
  elif ip link show dev "$BRIDGE" >/dev/null 2>&1; then
    log "leaving bridge $BRIDGE alone: it is not this fleet's ($(cat "/sys/class/net/$BRIDGE/ifalias" 2>/dev/null))"
  fi
  [ -d "$HOSTS_DIR" ] && found=1
  rm -rf --one-file-system "$HOSTS_DIR"
  rm -f "$INVENTORY" "$HOSTS_TSV" "$INSTANCE_JSON"
  cg_remove_tree "$CG_PARENT"
  for l in /run/systemd/nspawn/unix-export/"$MACHINE_PREFIX"-*; do rmdir "$l" 2>/dev/null || true; done
  rebuild_known_hosts
  [ "$found" = 0 ] || log "nspawn fleet '$NAME' removed"
}

teardown_scale() {
  local all found=0
  mapfile -t all < <(cg_tree_pids "$CG_SCALE_PARENT")
  if [ ${#all[@]} -gt 0 ]; then
    found=1
    log "stopping ${#all[@]} scale-fleet process(es) ..."
    signal TERM "${all[@]}"
    if ! wait_gone "$STOP_TIMEOUT" "$CG_SCALE_PARENT"; then
      mapfile -t all < <(cg_tree_pids "$CG_SCALE_PARENT")
      signal KILL "${all[@]}"
      wait_gone 10 "$CG_SCALE_PARENT" || log "warning: processes survived SIGKILL"
    fi
  fi
  [ -d "$SCALE_DIR" ] && found=1
  rm -rf --one-file-system "$SCALE_DIR"
  rm -f "$SCALE_INVENTORY" "$SCALE_TSV"
  cg_remove_tree "$CG_SCALE_PARENT"
  rebuild_known_hosts
  [ "$found" = 0 ] || log "scale fleet removed"
}

# ---------------------------------------------------------------------------------------------
# The nspawn fleet

net_users() { # 10.X — this machine's routes (any table) inside 10.X.0.0/16 or covering it, but default
  local a=${1%%.*} b=${1#*.}
  ip -4 route show table all | awk -v a="$a" -v b="$b" '
    { d = $1
      if (d ~ /^(local|broadcast|unicast|multicast|anycast|blackhole|unreachable|prohibit|throw|nat)$/) d = $2
      if (d == "default") next
      n = split(d, p, "/"); len = n > 1 ? p[2] + 0 : 32
      if (split(p[1], o, ".") != 4) next
      ip = ((o[1] * 256 + o[2]) * 256 + o[3]) * 256 + o[4]
      m = len < 16 ? len : 16; div = 2 ^ (32 - m)
      if (int(ip / div) == int((a * 256 + b) * 65536 / div)) print }'
}

# Under the machine-wide network lock: a /16 nobody on this machine routes (the default fleet's is
# always 10.213; others prefer the one they had), and the bridge with our mark and address on it,
# so the next fleet to choose sees it taken.
ensure_bridge() {
  local candidates=() p users
  take_shared_lock 7 "$NET_LOCK_FILE" "choosing a subnet"
  if ip link show dev "$BRIDGE" >/dev/null 2>&1; then
    die "a bridge named $BRIDGE exists but is not this fleet's ($(cat "/sys/class/net/$BRIDGE/ifalias" 2>/dev/null)): another fleet's name hashes like '$NAME'; set DROVER_FLEET_NAME"
  fi
  if [ "$NAME" = default ]; then
    candidates=("$DEFAULT_NET")
  else
    [[ ${NET_PREFIX#10.} =~ ^[0-9]+$ ]] && [ "${NET_PREFIX#10.}" -ge "$NET_FIRST" ] &&
      [ "${NET_PREFIX#10.}" -le "$NET_LAST" ] && [ "$NET_PREFIX" != "$DEFAULT_NET" ] && candidates+=("$NET_PREFIX")
    for ((p = NET_FIRST; p <= NET_LAST; p++)); do
      [ "10.$p" = "$DEFAULT_NET" ] || candidates+=("10.$p")
    done
  fi
  NET_PREFIX=
  for p in "${candidates[@]}"; do
    users=$(net_users "$p")
    if [ -z "$users" ]; then NET_PREFIX=$p; break; fi
    [ "$NAME" != default ] || die "$p.0.0/16 is already used on this machine: $(paste -sd';' <<<"$users")"
  done
  [ -n "$NET_PREFIX" ] || die "no free /16 in 10.$NET_FIRST-10.$NET_LAST.0.0 on this machine (ip -4 route show table all)"
  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" alias "drover-fleet $STATE"
  ip addr add "$NET_PREFIX.0.1/16" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  release_shared_lock 7
}

prepare_host() { # NAME ADDR DROVER_UID DROVER_GID
  local name=$1 addr=$2 uid=$3 gid=$4 hd=$HOSTS_DIR/$1 r cgr
  r=$hd/root
  mkdir -p "$hd/upper" "$hd/work" "$r"
  mount -t overlay "$MOUNT_SOURCE" -o "lowerdir=$LOWER,upperdir=$hd/upper,workdir=$hd/work" "$r"
  printf '%s\n' "$name" >"$r/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    "$name" >"$r/etc/hosts"
  new_machine_id >"$r/etc/machine-id"
  ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$hd/ssh_host_ed25519_key"
  install -m 0600 "$hd/ssh_host_ed25519_key" "$r/etc/ssh/ssh_host_ed25519_key"
  install -m 0644 "$hd/ssh_host_ed25519_key.pub" "$r/etc/ssh/ssh_host_ed25519_key.pub"
  install -m 0600 "$CLIENT_KEY.pub" "$r/root/.ssh/authorized_keys"
  install -d -m 0700 -o "$uid" -g "$gid" "$r/home/drover/.ssh"
  install -m 0600 -o "$uid" -g "$gid" "$CLIENT_KEY.pub" "$r/home/drover/.ssh/authorized_keys"
  install -d "$r/etc/systemd/network"
  printf '[Match]\nName=host0\n\n[Network]\nAddress=%s/16\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
    "$addr" >"$r/etc/systemd/network/10-drover-fleet.network"
  printf '%s %s\n' "$addr" "$(cut -d' ' -f1,2 "$hd/ssh_host_ed25519_key.pub")" >"$hd/known_hosts"
  printf '%s\t%s\t22\t%s\n' "$name" "$addr" "$(fingerprint "$hd/ssh_host_ed25519_key.pub")" >"$hd/host.tsv"
  for cgr in "${CG_ROOTS[@]}"; do mkdir -p "$cgr/$CG_PARENT/$name"; done
}

start_launcher() { # NAME
  local name=$1 hd=$HOSTS_DIR/$1 cgs=() extra=() r
  for r in "${CG_ROOTS[@]}"; do cgs+=("$r/$CG_PARENT/$name"); done
  read -ra extra <<<"${DROVER_FLEET_NSPAWN_ARGS:-}"
  # The machine's Node, read-only, so a host can run the drover agent (tests install it there).
  if [ -n "$NODE_BIN" ]; then extra=("--bind-ro=$NODE_BIN:/usr/local/bin/node" "${extra[@]}"); fi
  # Detached (own session, not a job of this shell, lock fds closed) so `up` can return.
  # shellcheck disable=SC2016 # expanded by the inner bash
  (setsid bash -c 'exec -a "$0" bash "$@"' "$LAUNCHER_MARK" "$FLEET_DIR/launcher.sh" "$name" \
    "$hd/root" "$BRIDGE" "$hd/launcher.pid" "$(machine_name "$name")" "${cgs[@]}" -- "${extra[@]}" \
    </dev/null >>"$hd/console.log" 2>&1 6>&- 7>&- 8>&- 9>&- &)
}

launcher_alive() { # HOSTDIR
  local p a=
  [ -s "$1/launcher.pid" ] || return 1
  p=$(cat "$1/launcher.pid")
  IFS= read -r -d '' a 2>/dev/null <"/proc/$p/cmdline" || true
  [ "$a" = "$LAUNCHER_MARK" ]
}

wait_host() { # NAME ADDR — runs in the background; writes $hd/boot-result
  local name=$1 addr=$2 hd=$HOSTS_DIR/$1 deadline=$((EPOCHSECONDS + BOOT_TIMEOUT)) out left failed
  local started=$EPOCHSECONDS
  while :; do
    left=$((deadline - EPOCHSECONDS))
    if [ "$left" -le 0 ]; then
      echo "fail: not running after ${BOOT_TIMEOUT}s (last state: '${out:-no answer}', ssh: $(tail -n 1 "$hd/wait.err" 2>/dev/null))" >"$hd/boot-result"
      return 1
    fi
    if ! launcher_alive "$hd" && [ $((EPOCHSECONDS - started)) -ge 5 ]; then
      echo "fail: its systemd-nspawn exited" >"$hd/boot-result"
      return 1
    fi
    [ "$left" -le 30 ] || left=30
    out=$(timeout "$left" ssh "${SSH_OPTS[@]}" -o ConnectTimeout=2 "root@$addr" \
      systemctl is-system-running --wait </dev/null 2>"$hd/wait.err") || true
    case $out in
      running)
        record_run_units "$name"
        echo "ok running" >"$hd/boot-result"
        return 0
        ;;
      degraded)
        failed=$(ssh "${SSH_OPTS[@]}" "root@$addr" systemctl list-units --failed --plain --no-legend </dev/null |
          awk '{ print $1 }' | paste -sd' ') || true
        record_run_units "$name"
        echo "ok degraded: $failed" >"$hd/boot-result"
        return 0
        ;;
    esac
    if grep -q 'Host key verification failed\|IDENTIFICATION HAS CHANGED' "$hd/wait.err"; then
      echo "fail: its SSH host key does not match the pinned one" >"$hd/boot-result"
      return 1
    fi
    sleep 0.3
  done
}

# Waiters still running, from bash's own table of running jobs: not `kill -0`, since a finished
# waiter's PID is soon another process's (a fleet of hundreds starts thousands), and one fork per
# call, not per waiter: with hundreds of hosts, a fork per waiter every tenth of a second was most
# of what a 400-host boot spent its time on.
running_waiters() {
  local -A running=()
  local p n=0
  for p in $(jobs -rp); do running[$p]=1; done
  for p in "${WAITERS[@]}"; do [ -n "${running[$p]:-}" ] && n=$((n + 1)); done
  echo "$n"
}

boot_all() { # NAME... — at most BOOT_PARALLEL booting at once; dies naming the first failed host
  local name hd addr results=() failed=() res
  for name in "$@"; do
    while [ "$(running_waiters)" -ge "$BOOT_PARALLEL" ]; do sleep 0.1; done
    results=("$HOSTS_DIR"/*/boot-result)
    [ ${#results[@]} -gt 0 ] && grep -q '^fail' "${results[@]}" && break
    hd=$HOSTS_DIR/$name
    addr=$(cut -f2 "$hd/host.tsv")
    start_launcher "$name"
    wait_host "$name" "$addr" &
    WAITERS+=($!)
  done
  while [ "$(running_waiters)" -gt 0 ]; do
    results=("$HOSTS_DIR"/*/boot-result)
    [ ${#results[@]} -gt 0 ] && grep -q '^fail' "${results[@]}" && break
    sleep 0.2
  done
  stop_waiters
  for name in "$@"; do
    hd=$HOSTS_DIR/$name
    res=$(cat "$hd/boot-result" 2>/dev/null || echo "fail: not booted")
    case $res in
      "ok running") ;;
      "ok degraded"*) log "warning: $name is degraded; failed units: ${res#ok degraded: }" ;;
      *) failed+=("$name") ;;
    esac
  done
  [ ${#failed[@]} -eq 0 ] && return 0
  mkdir -p "$STATE/last-failure"
  local shown=0
  for name in "${failed[@]}"; do
    hd=$HOSTS_DIR/$name
    [ -f "$hd/console.log" ] && cp "$hd/console.log" "$STATE/last-failure/$name.log"
    res=$(cat "$hd/boot-result" 2>/dev/null) || continue # never launched: stopped after a failure
    shown=$((shown + 1))
    if [ "$shown" -gt 3 ]; then
      log "$name: ${res#fail: } (console log: $STATE/last-failure/$name.log)"
      continue
    fi
    log "$name: ${res#fail: }; last lines of its console log ($STATE/last-failure/$name.log):"
    tail -n 25 "$hd/console.log" 2>/dev/null | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /' >&2
  done
  die "host(s) did not come up: $(for name in "${failed[@]}"; do [ -f "$HOSTS_DIR/$name/boot-result" ] && printf '%s ' "$name"; done)"
}

# For tests: where this fleet's hosts are on the machine (cgroups to freeze, veths to cut).
write_instance_json() { # NAME...
  local name sep='' r
  {
    printf '{"name":"%s","stateDir":"%s","bridge":"%s","subnet":"%s.0.0/16","gateway":"%s.0.1",' \
      "$NAME" "$STATE" "$BRIDGE" "$NET_PREFIX" "$NET_PREFIX"
    printf '"cgroupParent":"%s","scaleCgroupParent":"%s","cgroupRoots":[' "$CG_PARENT" "$CG_SCALE_PARENT"
    for r in "${CG_ROOTS[@]}"; do printf '%s"%s"' "$sep" "$r"; sep=,; done
    printf '],"hosts":['
    sep=''
    for name in "$@"; do
      printf '%s\n  {"name":"%s","machine":"%s","veth":"vb-%s","address":"%s"}' "$sep" "$name" \
        "$(machine_name "$name")" "$(machine_name "$name")" "$(cut -f2 "$HOSTS_DIR/$name/host.tsv")"
      sep=,
    done
    printf '\n]}\n'
  } >"$INSTANCE_JSON.tmp"
  chmod 0644 "$INSTANCE_JSON.tmp"
  mv -f "$INSTANCE_JSON.tmp" "$INSTANCE_JSON"
}

cmd_up() {
  local n=${DROVER_FLEET_HOSTS:-3} t0 t1 i name names=() uid gid
  while [ $# -gt 0 ]; do
    case $1 in
      --hosts) n=${2:?--hosts needs a number}; shift 2 ;;
      --hosts=*) n=${1#--hosts=}; shift ;;
      *) die "unknown argument '$1' (usage: fleet.sh up [--hosts N])" ;;
    esac
  done
  check_count "$n" "$MAX_HOSTS"
  require_root
  check_paths
  take_lock
  t0=$(now_ms)
  init_cgroup_roots
  read_instance_env
  teardown_fleet
  claim_name
  CLEANUP_ON_FAIL=teardown_fleet
  rm -rf --one-file-system "$STATE/last-failure"
  mkdir -p "$STATE"
  # The base is shared by every fleet: built, unpacked and pruned by one fleet.sh at a time, and
  # held until our overlays are mounted (pruning skips bases that are mounted).
  take_shared_lock 8 "$CACHE_LOCK_FILE" "base image cache"
  ensure_packages
  ensure_base
  raise_sysctl fs.inotify.max_user_instances 8192
  raise_sysctl fs.inotify.max_user_watches 524288
  ensure_client_key
  ensure_bridge
  write_instance_env
  uid=$(awk -F: '$1 == "drover" { print $3 }' "$LOWER/etc/passwd")
  gid=$(awk -F: '$1 == "drover" { print $4 }' "$LOWER/etc/passwd")
  [ -n "$uid" ] || die "user drover is missing from the base image $LOWER"
  t1=$(now_ms)
  for ((i = 1; i <= n; i++)); do
    name=$(host_name fleet "$i" "$n")
    names+=("$name")
    prepare_host "$name" "$(host_addr "$i")" "$uid" "$gid"
  done
  release_shared_lock 8
  rebuild_known_hosts
  ssh_opts
  log "prepared $n host(s) of fleet '$NAME' ($BRIDGE, $NET_PREFIX.0.0/16) in $(secs_since "$t1") s; booting them, at most $BOOT_PARALLEL at once ..."
  boot_all "${names[@]}"
  for name in "${names[@]}"; do cat "$HOSTS_DIR/$name/host.tsv"; done >"$HOSTS_TSV"
  write_inventory "$HOSTS_TSV" "$INVENTORY" nspawn
  write_instance_json "${names[@]}"
  CLEANUP_ON_FAIL=
  printf 'fleet up: %d host(s) of fleet %s running in %s s (boot %s s); inventory %s\n' \
    "$n" "$NAME" "$(secs_since "$t0")" "$(secs_since "$t1")" "$INVENTORY"
}

cmd_down() {
  [ $# -eq 0 ] || die "down takes no arguments"
  require_root
  check_paths
  take_lock
  init_cgroup_roots
  read_instance_env
  local t0
  t0=$(now_ms)
  teardown_scale
  teardown_fleet
  release_name
  printf 'fleet %s down in %s s (base cache kept in %s)\n' "$NAME" "$(secs_since "$t0")" "$CACHE"
}

# ---------------------------------------------------------------------------------------------
# Scale mode: plain sshd processes on 127.0.0.1:BASE+i (BASE 22000 for the default fleet, a free
# range for others), each with its own host key, /root and /etc/init.d

scale_ports_busy() { # BASE N — listeners on any of BASE+1 … BASE+N
  ss -Hltn | awk -v lo=$(($1 + 1)) -v hi=$(($1 + $2)) \
    '{ p = $4; sub(/.*:/, "", p); if (p + 0 >= lo && p + 0 <= hi) print $4 }' | paste -sd' '
}

choose_scale_ports() { # N — sets SCALE_PORT_BASE (held under the network lock by the caller)
  local n=$1 base previous=
  if [ "$NAME" = default ]; then
    SCALE_PORT_BASE=22000
    local busy
    busy=$(scale_ports_busy "$SCALE_PORT_BASE" "$n")
    [ -z "$busy" ] || die "ports needed by the scale fleet are in use: $busy"
    return 0
  fi
  [ -f "$STATE/scale-port-base" ] && previous=$(cat "$STATE/scale-port-base")
  for base in $previous $(seq 24000 2000 62000); do
    if ! [[ $base =~ ^[0-9]+$ ]] || [ $((base + n)) -gt 65535 ]; then continue; fi
    if [ -z "$(scale_ports_busy "$base" "$n")" ]; then
      SCALE_PORT_BASE=$base
      echo "$base" >"$STATE/scale-port-base"
      return 0
    fi
  done
  die "no free range of $n ports for the scale fleet between 24001 and 65535"
}

scale_sshd_config() { # HOSTDIR PORT
  cat <<EOF
# drover scale-fleet host: sshd only (no systemd); /root is $1/root via a private mount namespace
ListenAddress 127.0.0.1:$2
HostKey $1/ssh_host_ed25519_key
PidFile $1/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 1000:30:2000
MaxSessions 100
UseDNS no
PrintMotd no
PrintLastLog no
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
}

cmd_scale_up() {
  local n=${DROVER_FLEET_SCALE_HOSTS:-20} t0 i name port hd cgs r listening names=() deadline
  while [ $# -gt 0 ]; do
    case $1 in
      --hosts) n=${2:?--hosts needs a number}; shift 2 ;;
      --hosts=*) n=${1#--hosts=}; shift ;;
      *) die "unknown argument '$1' (usage: fleet.sh scale-up [--hosts N])" ;;
    esac
  done
  check_count "$n" "$MAX_SCALE_HOSTS"
  require_root
  check_paths
  take_lock
  t0=$(now_ms)
  ensure_packages
  init_cgroup_roots
  teardown_scale
  claim_name
  CLEANUP_ON_FAIL=teardown_scale
  mkdir -p "$STATE"
  # Held until the sshds listen, so a fleet choosing ports at the same time sees them taken.
  take_shared_lock 7 "$NET_LOCK_FILE" "choosing scale ports"
  choose_scale_ports "$n"
  ensure_client_key
  install -d -m 0755 /run/sshd
  mkdir -p "$SCALE_DIR"
  for ((i = 1; i <= n; i++)); do
    name=$(host_name scale "$i" "$n")
    port=$((SCALE_PORT_BASE + i))
    hd=$SCALE_DIR/$name
    names+=("$name")
    install -d -m 0700 "$hd" "$hd/root" "$hd/root/.ssh"
    # The host's own /etc/init.d (a copy of this machine's), so init scripts a test installs on a
    # scale host never land in this machine's /etc/init.d.
    install -d -m 0755 "$hd/init.d"
    cp -a /etc/init.d/. "$hd/init.d/"
    printf '# drover scale-fleet host %s: intentionally empty\n' "$name" | tee "$hd/root/.bashrc" >"$hd/root/.profile"
    install -m 0600 "$CLIENT_KEY.pub" "$hd/root/.ssh/authorized_keys"
    ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$hd/ssh_host_ed25519_key"
    scale_sshd_config "$hd" "$port" >"$hd/sshd_config"
    [ "$i" -gt 1 ] || /usr/sbin/sshd -t -f "$hd/sshd_config" || die "sshd rejects $hd/sshd_config"
    printf '[127.0.0.1]:%d %s\n' "$port" "$(cut -d' ' -f1,2 "$hd/ssh_host_ed25519_key.pub")" >"$hd/known_hosts"
    printf '%s\t127.0.0.1\t%d\t%s\n' "$name" "$port" "$(fingerprint "$hd/ssh_host_ed25519_key.pub")" >"$hd/host.tsv"
    cgs=()
    for r in "${CG_ROOTS[@]}"; do
      mkdir -p "$r/$CG_SCALE_PARENT/$name"
      cgs+=("$r/$CG_SCALE_PARENT/$name")
    done
    # Own cgroups (so down finds every process, sessions included), own mount namespace with the
    # host's directories bound over /root (so the machine's root dotfiles are never used) and
    # /etc/init.d. sshd closes every other inherited descriptor itself.
    # shellcheck disable=SC2016 # expanded by the inner shells
    (setsid bash -c 'for d in "${@:4}"; do echo $$ >"$d/cgroup.procs" || exit 97; done
      exec unshare --mount --propagation private -- /bin/sh -c \
        '\''mount --bind "$0" /root && mount --bind "$1" /etc/init.d && exec /usr/sbin/sshd -D -e -f "$2"'\'' "$1" "$2" "$3"' \
      drover-fleet-scale "$hd/root" "$hd/init.d" "$hd/sshd_config" "${cgs[@]}" \
      </dev/null >>"$hd/sshd.log" 2>&1 6>&- 7>&- 8>&- 9>&- &)
  done
  for name in "${names[@]}"; do cat "$SCALE_DIR/$name/host.tsv"; done >"$SCALE_TSV"
  rebuild_known_hosts
  deadline=$((EPOCHSECONDS + 60))
  while :; do
    listening=$(ss -Hltn | awk -v lo=$((SCALE_PORT_BASE + 1)) -v hi=$((SCALE_PORT_BASE + n)) \
      '$4 ~ /^127\.0\.0\.1:/ { p = $4; sub(/.*:/, "", p); if (p + 0 >= lo && p + 0 <= hi) c++ } END { print c + 0 }')
    [ "$listening" -ge "$n" ] && break
    [ "$EPOCHSECONDS" -lt "$deadline" ] || {
      for name in "${names[@]}"; do
        [ -s "$SCALE_DIR/$name/sshd.log" ] && { log "$name: $(tail -n 3 "$SCALE_DIR/$name/sshd.log")"; break; }
      done
      die "only $listening of $n scale sshds listen after 60 s"
    }
    sleep 0.2
  done
  release_shared_lock 7
  ssh_opts
  for name in "${names[0]}" "${names[-1]}"; do
    port=$(cut -f3 "$SCALE_DIR/$name/host.tsv")
    [ "$(ssh "${SSH_OPTS[@]}" -p "$port" root@127.0.0.1 echo ok </dev/null 2>&1)" = ok ] ||
      die "cannot log in to $name (127.0.0.1:$port): $(ssh "${SSH_OPTS[@]}" -p "$port" root@127.0.0.1 true </dev/null 2>&1 | tail -n 1)"
  done
  write_inventory "$SCALE_TSV" "$SCALE_INVENTORY" scale
  CLEANUP_ON_FAIL=
  printf 'scale fleet up: %d sshd host(s) on 127.0.0.1:%d-%d in %s s; inventory %s\n' \
    "$n" $((SCALE_PORT_BASE + 1)) $((SCALE_PORT_BASE + n)) "$(secs_since "$t0")" "$SCALE_INVENTORY"
}

cmd_scale_down() {
  [ $# -eq 0 ] || die "scale-down takes no arguments"
  require_root
  check_paths
  take_lock
  init_cgroup_roots
  teardown_scale
  release_name
}

# ---------------------------------------------------------------------------------------------
# reset: the hosts' units back to the image's state, between test files

same_entry() { # A B — same kind and content (symlink target, file bytes); directories never
  if [ -L "$1" ] || [ -L "$2" ]; then
    [ -L "$1" ] && [ -L "$2" ] && [ "$(readlink "$1")" = "$(readlink "$2")" ]
  elif [ -f "$1" ] && [ -f "$2" ]; then
    cmp -s "$1" "$2"
  else
    return 1
  fi
}

# Makes the host's REL (a real directory in the base) equal to the base's. Only entries the host
# wrote (present in its overlay's upper dir) can differ; entries the base has and the host lost
# (deleted: a whiteout; or hidden by a replaced directory) are copied back. Works on the mounted
# overlay, never on the upper dir itself (overlayfs forbids changing that under a mount).
restore_tree() { # HOSTDIR REL — appends "removed|restored PATH" to RESTORED
  local up=$1/upper root=$1/root rel=$2 e name
  for e in "$root/$rel"/* "$root/$rel"/.[!.]* "$root/$rel"/..?*; do
    name=${e##*/}
    [ -e "$up/$rel/$name" ] || [ -L "$up/$rel/$name" ] || continue # untouched: still the base's
    if [ ! -e "$LOWER/$rel/$name" ] && [ ! -L "$LOWER/$rel/$name" ]; then
      rm -rf --one-file-system "$e"
      RESTORED+=("removed /$rel/$name")
    elif [ -d "$LOWER/$rel/$name" ] && [ ! -L "$LOWER/$rel/$name" ] && [ -d "$e" ] && [ ! -L "$e" ]; then
      restore_tree "$1" "$rel/$name"
    elif ! same_entry "$LOWER/$rel/$name" "$e"; then
      rm -rf --one-file-system "$e"
      cp -a "$LOWER/$rel/$name" "$e"
      RESTORED+=("restored /$rel/$name")
    fi
  done
  for e in "$LOWER/$rel"/* "$LOWER/$rel"/.[!.]* "$LOWER/$rel"/..?*; do
    name=${e##*/}
    if [ ! -e "$root/$rel/$name" ] && [ ! -L "$root/$rel/$name" ]; then
      cp -a "$e" "$root/$rel/$name"
      RESTORED+=("restored /$rel/$name")
    fi
  done
}

# The unit a path configures: /etc/systemd/system/nginx.service.d/x.conf -> nginx.service.
# Enablement links (*.wants/, *.requires/) configure no unit themselves.
unit_of_path() {
  local rest=$1 tree
  for tree in /etc/systemd/system.control/ /etc/systemd/system/ /usr/lib/systemd/system/ /lib/systemd/system/; do
    [[ $rest == "$tree"* ]] || continue
    rest=${rest#"$tree"}
    rest=${rest%%/*}
    case $rest in *.wants | *.requires | *.upholds) return 0 ;; esac
    printf '%s\n' "${rest%.d}"
    return 0
  done
}

# Runs in the host: runtime units, drop-ins and masks (/run/systemd/system*) go, but for what the
# host had there at boot; systemd reloads (when anything changed) and forgets failures; standard
# units whose configuration changed restart, the others start if they are not running; all must
# end active and enabled. Few systemctl calls: this runs before every test file.
# Arguments: "entries of /run/systemd/system* at boot" "changed units" RELOAD(0|1) STANDARD_UNIT...
# shellcheck disable=SC2016 # expanded in the host
readonly REMOTE_RESET='
set -u
keep=" $1 " changed=" $2 " reload=$3
shift 3
for d in /run/systemd/system /run/systemd/system.control; do
  [ -d "$d" ] || continue
  for e in "$d"/* "$d"/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    case $keep in *" $e "*) continue ;; esac
    rm -rf "$e"
    echo "removed $e"
    reload=1
    u=${e##*/}
    u=${u%.d}
    case $u in *.wants | *.requires) ;; *) changed="$changed$u " ;; esac
  done
done
[ "$reload" = 0 ] || systemctl daemon-reload
# A unit a test installed (its file is gone now) must not keep running, e.g. an agent.
for u in $changed; do
  [ "$(systemctl show -p LoadState --value "$u" 2>/dev/null)" = not-found ] || continue
  systemctl is-active --quiet "$u" || continue
  systemctl stop "$u" && echo "stopped $u (its unit file is gone)"
done
systemctl reset-failed
restart= start=
for u in "$@"; do
  case $changed in
    *" $u "*) restart="$restart $u" ;;
    *) systemctl is-active --quiet "$u" || start="$start $u" ;;
  esac
done
for u in $restart; do systemctl restart "$u" && echo "restarted $u"; done
for u in $start; do systemctl start "$u" && echo "started $u"; done
active=$(systemctl is-active "$@" | tr "\n" " ") enabled=$(systemctl is-enabled "$@" | tr "\n" " ")
want_active= want_enabled=
for u in "$@"; do want_active="${want_active}active " want_enabled="${want_enabled}enabled "; done
[ "$active" = "$want_active" ] && [ "$enabled" = "$want_enabled" ] ||
  { echo "not as the image has them: $* are $active/ $enabled"; exit 1; }
'

host_init_pid() { # NAME — the host's PID 1 as this machine sees it
  local r procs pid
  for r in "${CG_ROOTS[@]}"; do
    procs=$r/$CG_PARENT/$1/payload/init.scope/cgroup.procs
    [ -r "$procs" ] || continue
    read -r pid <"$procs" || continue
    [ -n "$pid" ] && { echo "$pid"; return 0; }
  done
  return 1
}

reset_host() { # NAME — runs in the background; writes $hd/reset.log, fails when the host is not reset
  local name=$1 hd=$HOSTS_DIR/$1 machine addr r rel units=() rc=0
  machine=$(machine_name "$name")
  addr=$(cut -f2 "$hd/host.tsv")
  RESTORED=()
  exec >"$hd/reset.log" 2>&1
  # A test that died with its host frozen or cut off must not leave it so for the next.
  for r in "${CG_ROOTS[@]}"; do
    [ -f "$r/$CG_PARENT/$name/freezer.state" ] || continue
    [ "$(cat "$r/$CG_PARENT/$name/freezer.state")" = THAWED ] && continue
    echo THAWED >"$r/$CG_PARENT/$name/freezer.state"
    echo "thawed (it was frozen)"
  done
  if ip -o link show dev "vb-$machine" 2>/dev/null | grep -q 'state DOWN'; then
    ip link set "vb-$machine" up
    echo "reconnected (its link to the bridge was down)"
  fi
  if ! launcher_alive "$hd"; then
    echo "booting again (its nspawn had exited)"
    rm -f "$hd/boot-result"
    start_launcher "$name"
    wait_host "$name" "$addr" || { echo "did not come up again: $(cat "$hd/boot-result")"; return 1; }
  fi
  for rel in "${RESET_TREES[@]}"; do
    # A tree reached through a symlink (lib -> usr/lib) is restored through its real path.
    [ -d "$LOWER/$rel" ] || continue
    [ "$(cd "$LOWER/$rel" && pwd -P)" = "$LOWER_REAL/$rel" ] || continue
    if [ -L "$hd/root/$rel" ] || [ ! -d "$hd/root/$rel" ]; then
      rm -rf --one-file-system "${hd:?}/root/$rel"
      cp -a "$LOWER/$rel" "$hd/root/$rel"
      RESTORED+=("restored /$rel")
    else
      restore_tree "$hd" "$rel"
    fi
  done
  for rel in "${RESET_TREES[@]}"; do # trees the base does not have: anything there is a test's
    [ -e "$LOWER/$rel" ] || [ -L "$LOWER/$rel" ] || [ ! -e "$hd/root/$rel" ] || {
      rm -rf --one-file-system "${hd:?}/root/$rel"
      RESTORED+=("removed /$rel")
    }
  done
  for rel in "${RESTORED[@]}"; do
    printf '%s\n' "$rel"
    rel=$(unit_of_path "${rel#* }")
    [ -z "$rel" ] || units+=("$rel")
  done
  # Run inside the host through its init's namespaces, not over SSH: a test may have left sshd
  # stopped (an agent host), and this is what starts it again.
  local init
  init=$(host_init_pid "$name") || { echo "no init process found for $name"; return 1; }
  timeout 120 nsenter -t "$init" -m -u -i -n -p -- /bin/sh -s -- "$(cat "$hd/run-units" 2>/dev/null)" \
    "${units[*]}" $((${#RESTORED[@]} > 0)) "${STANDARD_UNITS[@]}" <<<"$REMOTE_RESET" || rc=$?
  [ "$rc" -eq 0 ] || echo "reset in the host failed (exit $rc)"
  return "$rc"
}

# What a freshly booted host has in /run/systemd/system*, which reset leaves there.
record_run_units() { # NAME
  local hd=$HOSTS_DIR/$1 addr
  addr=$(cut -f2 "$hd/host.tsv")
  # shellcheck disable=SC2016 # expanded in the host
  ssh "${SSH_OPTS[@]}" "root@$addr" -- \
    'for e in /run/systemd/system/* /run/systemd/system/.[!.]* /run/systemd/system.control/*; do
       if [ -e "$e" ] || [ -L "$e" ]; then printf "%s " "$e"; fi; done' </dev/null >"$hd/run-units"
}

cmd_reset() {
  local names=() name hd failed=() i t0 lines total=0
  require_root
  check_paths
  take_lock
  init_cgroup_roots
  read_instance_env
  [ -f "$HOSTS_TSV" ] || die "fleet '$NAME' is not up (no $HOSTS_TSV)"
  if [ -z "$LOWER" ] || [ ! -d "$LOWER/usr" ]; then
    die "the base of fleet '$NAME' is unknown or gone ('$LOWER'): run up again"
  fi
  LOWER_REAL=$(cd "$LOWER" && pwd -P)
  if [ $# -gt 0 ]; then names=("$@"); else mapfile -t names < <(cut -f1 "$HOSTS_TSV"); fi
  for name in "${names[@]}"; do
    [ -f "$HOSTS_DIR/$name/host.tsv" ] || die "no host '$name' in fleet '$NAME'"
  done
  t0=$(now_ms)
  ssh_opts
  # Hosts in parallel, at most BOOT_PARALLEL at once: each is some file checks and one SSH session.
  for name in "${names[@]}"; do
    while [ "$(running_waiters)" -ge "$BOOT_PARALLEL" ]; do sleep 0.05; done
    reset_host "$name" &
    WAITERS+=($!)
  done
  for i in "${!names[@]}"; do
    wait "${WAITERS[$i]}" || failed+=("${names[$i]}")
  done
  WAITERS=()
  for name in "${names[@]}"; do
    hd=$HOSTS_DIR/$name
    lines=$(grep -c . "$hd/reset.log" || true)
    total=$((total + lines))
    [ "$lines" -eq 0 ] || sed "s|^|$name: |" "$hd/reset.log"
  done
  [ ${#failed[@]} -eq 0 ] || die "reset failed on: ${failed[*]}"
  printf 'fleet %s reset: %d host(s) as the image has them in %s s (%d change(s))\n' \
    "$NAME" "${#names[@]}" "$(secs_since "$t0")" "$total"
}

cmd_name() {
  [ $# -eq 0 ] || die "name takes no arguments"
  read_instance_env
  printf 'name=%s\nstate=%s\nbridge=%s\nsubnet=%s\ncgroup_parent=%s\nscale_cgroup_parent=%s\nmachine_prefix=%s\nlock=%s\n' \
    "$NAME" "$STATE" "$BRIDGE" "${NET_PREFIX:+$NET_PREFIX.0.0/16}" "$CG_PARENT" "$CG_SCALE_PARENT" \
    "$MACHINE_PREFIX" "$LOCK_FILE"
}

# ---------------------------------------------------------------------------------------------
# status, ssh

all_hosts_tsv() { cat "$HOSTS_TSV" "$SCALE_TSV" 2>/dev/null || true; }

cmd_status() {
  [ $# -eq 0 ] || die "status takes no arguments"
  local tmp name addr port fp i=0 shown
  [ -f "$HOSTS_TSV" ] || [ -f "$SCALE_TSV" ] || { echo "no fleet is up (no $HOSTS_TSV, no $SCALE_TSV)"; return 0; }
  ssh_opts
  tmp=$(mktemp -d)
  while IFS=$'\t' read -r name addr port fp; do
    i=$((i + 1))
    (if timeout 15 ssh "${SSH_OPTS[@]}" -o ConnectTimeout=3 -p "$port" "root@$addr" true \
      </dev/null >/dev/null 2>&1; then echo yes; else echo no; fi) >"$tmp/$i" &
    [ $((i % 32)) -ne 0 ] || wait
  done < <(all_hosts_tsv)
  wait
  i=0
  while IFS=$'\t' read -r name addr port fp; do
    i=$((i + 1))
    shown=$addr
    [ "$port" = 22 ] || shown=$addr:$port
    printf '%-12s %-18s %s\n' "$name" "$shown" "$(cat "$tmp/$i")"
  done < <(all_hosts_tsv)
  rm -rf "$tmp"
}

cmd_ssh() {
  local user=root host line
  while [ $# -gt 0 ]; do
    case $1 in
      --user | -u) user=${2:?--user needs a name}; shift 2 ;;
      --user=*) user=${1#--user=}; shift ;;
      *) break ;;
    esac
  done
  host=${1:?usage: fleet.sh ssh [--user U] HOST [--] [CMD...]}
  shift
  [ "${1:-}" != -- ] || shift
  line=$(all_hosts_tsv | awk -F'\t' -v h="$host" '$1 == h || ($2 == h && $3 == 22) { print; exit }')
  [ -n "$line" ] || die "no host '$host' in $HOSTS_TSV or $SCALE_TSV"
  ssh_opts
  local addr port
  addr=$(cut -f2 <<<"$line")
  port=$(cut -f3 <<<"$line")
  if [ $# -eq 0 ]; then
    exec ssh "${SSH_OPTS[@]}" -o BatchMode=no -p "$port" "$user@$addr"
  fi
  exec ssh "${SSH_OPTS[@]}" -p "$port" "$user@$addr" -- "$@"
}

# ---------------------------------------------------------------------------------------------

main() {
  CMD=${1:-}
  [ $# -gt 0 ] && shift
  case $CMD in
    up) init_instance && cmd_up "$@" ;;
    down) init_instance && cmd_down "$@" ;;
    reset) init_instance && cmd_reset "$@" ;;
    status) init_instance && cmd_status "$@" ;;
    ssh) init_instance && cmd_ssh "$@" ;;
    scale-up) init_instance && cmd_scale_up "$@" ;;
    scale-down) init_instance && cmd_scale_down "$@" ;;
    name) init_instance && cmd_name "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"

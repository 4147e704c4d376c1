#!/usr/bin/env bash
# Boot loop for one fleet host. Started by `fleet.sh up` (detached, argv0 "drover-fleet-launcher",
# or "drover-fleet-launcher@FLEET" for a fleet other than the default), never by hand:
#   launcher.sh NAME ROOT BRIDGE PIDFILE MACHINE CGROUP_DIR... -- [extra systemd-nspawn arguments]
# NAME is the host's name (its hostname), MACHINE the nspawn machine name, unique on the machine
# (nspawn names the host side of the veth "vb-MACHINE").
#
# - Each boot runs in a subshell that first moves itself into the host's own cgroup in every
#   hierarchy given (without this, nspawn on a hybrid v1+v2 machine without systemd as PID 1 puts
#   every container's payload/ into the caller's cgroup and containers break each other), then
#   execs systemd-nspawn.
# - nspawn exits with 133 when the container reboots: boot it again, like a real machine.
# - SIGTERM/SIGINT/SIGHUP: pass SIGTERM to nspawn (orderly poweroff of the container), wait for
#   it to exit, do not boot again.
set -uo pipefail

name=$1 root=$2 bridge=$3 pidfile=$4 machine=$5
shift 5
cgdirs=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  cgdirs+=("$1")
  shift
done
[ $# -gt 0 ] && shift

# Hold no descriptor of whoever ran `fleet.sh up` (a pipe held here would never see EOF), except
# the one bash reads this script from.
self=$(readlink -f "$0")
for fd in "/proc/$$/fd/"*; do
  fd=${fd##*/}
  case $fd in 0 | 1 | 2) continue ;; esac
  [ "$(readlink "/proc/$$/fd/$fd" 2>/dev/null)" = "$self" ] && continue
  eval "exec $fd>&-" 2>/dev/null || true
done

echo "$$" >"$pidfile"
stopping=0
child=
trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT HUP

boot=0
while [ "$stopping" = 0 ]; do
  boot=$((boot + 1))
  echo "launcher: boot #$boot of $name at $(date -Is)"
  (
    for d in "${cgdirs[@]}"; do
      echo "$BASHPID" >"$d/cgroup.procs" || exit 97
    done
    exec systemd-nspawn --boot --register=no --keep-unit -M "$machine" --hostname="$name" -D "$root" \
      --network-bridge="$bridge" --console=read-only --resolv-conf=off --timezone=off \
      --link-journal=no "$@"
  ) &
  child=$!
  # wait returns early when a trapped signal arrives; keep waiting until nspawn has really exited.
  rc=0
  wait "$child" || rc=$?
  while kill -0 "$child" 2>/dev/null; do
    rc=0
    wait "$child" || rc=$?
  done
  child=
  echo "launcher: nspawn for $name exited with $rc at $(date -Is)"
  if [ "$stopping" = 1 ] || [ "$rc" -ne 133 ]; then
    exit "$rc"
  fi
done

#!/bin/sh
# Installs the drover agent on this host (run as root; needs node >= 20 on PATH):
#   sh install.sh --server URL --join-token drj_... [--user NAME]
# --user NAME runs the agent as the system user NAME (created when missing) instead of root. systemd
# then lets it act on units only as polkit allows: install the rule POST /v1/access/polkit generates
# (this script cannot: it does not know which verbs and units to allow). Needs polkit on the host.
# `drover agent install-command` prints the line that fetches this script from the API and runs it.
# Running it again updates the agent and its unit and skips enrolment when the host has enrolled
# already (the join token may then be spent).
set -eu

SERVER_URL=
JOIN_TOKEN=${DROVER_JOIN_TOKEN:-}
AGENT_USER=
while [ $# -gt 0 ]; do
  case $1 in
    --server) SERVER_URL=${2:?--server needs a URL}; shift 2 ;;
    --join-token) JOIN_TOKEN=${2:?--join-token needs a token}; shift 2 ;;
    --user) AGENT_USER=${2:?--user needs a user name}; shift 2 ;;
    *) echo "drover-agent install: unknown argument $1 (takes --server URL --join-token TOKEN [--user NAME])" >&2; exit 64 ;;
  esac
done
[ -n "$SERVER_URL" ] || { echo "drover-agent install: --server URL is required" >&2; exit 64; }
# POSIX portable user names, as the polkit generator accepts them; root is what runs without --user.
if [ -n "$AGENT_USER" ]; then
  if [ "$AGENT_USER" = root ] || [ "${#AGENT_USER}" -gt 32 ] || ! expr "$AGENT_USER" : '[a-z_][a-z0-9_-]*$' >/dev/null; then
    echo "drover-agent install: --user must be a POSIX user name other than root ([a-z_][a-z0-9_-], at most 32)" >&2
    exit 64
  fi
fi

INSTALL_DIR=/opt/drover-agent
CONFIG_DIR=/etc/drover-agent
CONFIG_FILE=$CONFIG_DIR/config.json
STATE_DIR=/var/lib/drover-agent
UNIT_FILE=/etc/systemd/system/drover-agent.service
USER_DROP_IN=/etc/systemd/system/drover-agent.service.d/user.conf
# polkitd is started by D-Bus activation through this file wherever polkit is installed.
POLKIT_SERVICE=/usr/share/dbus-1/system-services/org.freedesktop.PolicyKit1.service

fail() {
  echo "drover-agent install: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "run this as root"
command -v node >/dev/null 2>&1 || fail "node (>= 20) is not installed"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  fail "node $(node --version) is too old: the agent needs node >= 20"
command -v systemctl >/dev/null 2>&1 || fail "systemctl not found: the agent runs as a systemd service"
# Without --user the agent would enrol as root while the drop-in still runs it as its user.
if [ -z "$AGENT_USER" ] && [ -e "$USER_DROP_IN" ]; then
  fail "this host runs the agent as a system user ($USER_DROP_IN): pass --user again, or remove that drop-in to run it as root"
fi
if [ -n "$AGENT_USER" ] && [ ! -e "$POLKIT_SERVICE" ]; then
  fail "polkit is not installed: without it systemd lets only root manage units; install polkit (Debian: polkitd), or run the agent as root (no --user)"
fi

# Downloads URL to FILE with node's fetch (hosts may lack curl), via a temporary file renamed
# over FILE: a failed download never leaves half a file.
download() {
  # shellcheck disable=SC2016 # JavaScript, run by node: its template literals are not the shell's
  node -e '
    const [url, file] = process.argv.slice(1);
    const fs = require("node:fs");
    fetch(url).then(async (response) => {
      if (!response.ok) throw new Error(`${url} answered ${response.status}`);
      fs.writeFileSync(`${file}.download`, Buffer.from(await response.arrayBuffer()), { mode: 0o644 });
      fs.renameSync(`${file}.download`, file);
    }).catch((error) => {
      console.error(`cannot download ${url}: ${error.message}`);
      process.exit(1);
    });
  ' "$1" "$2"
}

umask 022
mkdir -p "$INSTALL_DIR"
download "$SERVER_URL/agent/v1/bundle" "$INSTALL_DIR/drover-agent.js"
chmod 0755 "$INSTALL_DIR/drover-agent.js"
download "$SERVER_URL/agent/v1/unit-file" "$UNIT_FILE"

mkdir -p "$CONFIG_DIR"
chmod 0700 "$CONFIG_DIR"
if [ ! -e "$CONFIG_FILE" ]; then
  # JSON through node, so the URL is quoted properly whatever it holds.
  (umask 077 && node -e 'process.stdout.write(JSON.stringify({ server: process.argv[1] }, null, 2) + "\n")' \
    "$SERVER_URL" >"$CONFIG_FILE")
fi

# As the agent's user: its state is its own (it writes there), its config readable but not writable
# (systemd never hands ConfigurationDirectory= to User=, so the group does it here), and the journal
# readable (drover counts a unit's starts there). Enrolment runs as that user too, so every file in
# the state directory is the user's from the start; a host that ran the agent as root before is
# handed over by the chown.
AS_AGENT=
if [ -n "$AGENT_USER" ]; then
  if ! id -u "$AGENT_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group "$AGENT_USER"
  fi
  AGENT_GROUP=$(id -gn "$AGENT_USER")
  mkdir -p "$STATE_DIR"
  chown -R "$AGENT_USER:$AGENT_GROUP" "$STATE_DIR"
  chmod 0700 "$STATE_DIR"
  chown "root:$AGENT_GROUP" "$CONFIG_DIR" "$CONFIG_FILE"
  chmod 0750 "$CONFIG_DIR"
  chmod 0640 "$CONFIG_FILE"
  mkdir -p "${USER_DROP_IN%/*}"
  {
    printf '# Written by the drover agent install script (--user %s).\n[Service]\nUser=%s\n' "$AGENT_USER" "$AGENT_USER"
    printf 'ConfigurationDirectoryMode=0750\n'
    if getent group systemd-journal >/dev/null 2>&1; then printf 'SupplementaryGroups=systemd-journal\n'; fi
  } >"$USER_DROP_IN.tmp"
  mv -f "$USER_DROP_IN.tmp" "$USER_DROP_IN"
  AS_AGENT="setpriv --reuid=$AGENT_USER --regid=$AGENT_GROUP --init-groups --"
fi

# Enrols once (the join token is used up); nothing when this host's agent enrolled already.
if [ -n "$JOIN_TOKEN" ]; then
  $AS_AGENT node "$INSTALL_DIR/drover-agent.js" enroll --config "$CONFIG_FILE" --join-token "$JOIN_TOKEN"
else
  $AS_AGENT node "$INSTALL_DIR/drover-agent.js" enroll --config "$CONFIG_FILE"
fi

systemctl daemon-reload
systemctl enable drover-agent.service
# restart, not start: a second run loads the new bundle. Returns once the agent reached the server.
systemctl restart drover-agent.service
echo "drover-agent installed and running: journalctl -u drover-agent"
if [ -n "$AGENT_USER" ]; then
  echo "it runs as $AGENT_USER: it can act on units only as a polkit rule allows (POST /v1/access/polkit generates one)"
fi

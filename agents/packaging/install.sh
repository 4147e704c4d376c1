#!/bin/sh
# Installs the drover agent on this host (run as root; needs node >= 20 on PATH):
#   sh install.sh --server URL --join-token drj_...
# `drover agent install-command` prints the line that fetches this script from the API and runs it.
# Running it again updates the agent and its unit and skips enrolment when the host has enrolled
# already (the join token may then be spent).
set -eu

SERVER_URL=
JOIN_TOKEN=${DROVER_JOIN_TOKEN:-}
while [ $# -gt 0 ]; do
  case $1 in
    --server) SERVER_URL=${2:?--server needs a URL}; shift 2 ;;
    --join-token) JOIN_TOKEN=${2:?--join-token needs a token}; shift 2 ;;
    *) echo "drover-agent install: unknown argument $1 (takes --server URL --join-token TOKEN)" >&2; exit 64 ;;
  esac
done
[ -n "$SERVER_URL" ] || { echo "drover-agent install: --server URL is required" >&2; exit 64; }

INSTALL_DIR=/opt/drover-agent
CONFIG_DIR=/etc/drover-agent
CONFIG_FILE=$CONFIG_DIR/config.json
UNIT_FILE=/etc/systemd/system/drover-agent.service

fail() {
  echo "drover-agent install: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "run this as root"
command -v node >/dev/null 2>&1 || fail "node (>= 20) is not installed"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  fail "node $(node --version) is too old: the agent needs node >= 20"
command -v systemctl >/dev/null 2>&1 || fail "systemctl not found: the agent runs as a systemd service"

# Downloads URL to FILE with node's fetch (hosts may lack curl), via a temporary file renamed
# over FILE: a failed download never leaves half a file.
download() {
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

# Enrols once (the join token is used up); nothing when this host's agent enrolled already.
if [ -n "$JOIN_TOKEN" ]; then
  node "$INSTALL_DIR/drover-agent.js" enroll --config "$CONFIG_FILE" --join-token "$JOIN_TOKEN"
else
  node "$INSTALL_DIR/drover-agent.js" enroll --config "$CONFIG_FILE"
fi

systemctl daemon-reload
systemctl enable drover-agent.service
# restart, not start: a second run loads the new bundle. Returns once the agent reached the server.
systemctl restart drover-agent.service
echo "drover-agent installed and running: journalctl -u drover-agent"

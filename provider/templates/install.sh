#!/bin/sh
# tenfra agent installer, served by the provider at {{ provider }}/bootstrap/install.sh
#
#   curl -fsSL {{ provider }}/bootstrap/install.sh | sudo sh -s -- --token TOKEN [--host NAME]
#
# Downloads the agent (one zipapp file), the release public key, enrols this
# host with the one-time bootstrap token and installs the systemd unit.
set -eu

PROVIDER='{{ provider }}'
DIR='{{ install_dir }}'
TOKEN="${TENFRA_TOKEN:-}"
HOST=""
NO_SERVICE=""

fail() { echo "tenfra install: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --token) [ $# -ge 2 ] || fail "--token needs a value"; TOKEN="$2"; shift 2 ;;
        --host) [ $# -ge 2 ] || fail "--host needs a value"; HOST="$2"; shift 2 ;;
        --dir) [ $# -ge 2 ] || fail "--dir needs a value"; DIR="$2"; shift 2 ;;
        --no-service) NO_SERVICE=1; shift ;;
        *) fail "unknown option $1 (use --token TOKEN [--host NAME] [--dir DIR] [--no-service])" ;;
    esac
done

[ -n "$TOKEN" ] || fail "no bootstrap token; pass --token TOKEN (create one with 'tenfra provider token --host NAME')"
command -v python3 >/dev/null 2>&1 || fail "python3 (3.9 or newer) is required; install it first"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
    || fail "python3 is $(python3 -V 2>&1); tenfra needs 3.9 or newer"

fetch() {
    # fetch URL FILE [AUTH]: download with curl, wget or python3
    if command -v curl >/dev/null 2>&1; then
        if [ -n "${3:-}" ]; then curl -fsSL -H "Authorization: Bearer $3" -o "$2" "$1"
        else curl -fsSL -o "$2" "$1"; fi
    elif command -v wget >/dev/null 2>&1; then
        if [ -n "${3:-}" ]; then wget -q --header "Authorization: Bearer $3" -O "$2" "$1"
        else wget -q -O "$2" "$1"; fi
    else
        TENFRA_URL="$1" TENFRA_OUT="$2" TENFRA_AUTH="${3:-}" python3 -c '
import os, urllib.request
request = urllib.request.Request(os.environ["TENFRA_URL"])
if os.environ["TENFRA_AUTH"]:
    request.add_header("Authorization", "Bearer " + os.environ["TENFRA_AUTH"])
with urllib.request.urlopen(request) as answer, open(os.environ["TENFRA_OUT"], "wb") as out:
    out.write(answer.read())
'
    fi
}

mkdir -p "$DIR"
fetch "$PROVIDER/bootstrap/agent.pyz" "$DIR/tenfra.pyz.part" "$TOKEN" \
    || fail "cannot download the agent from $PROVIDER (is the token valid?)"
mv "$DIR/tenfra.pyz.part" "$DIR/tenfra.pyz"
{% if has_key %}fetch "$PROVIDER/bootstrap/release.pub" "$DIR/release.pub.part" \
    || fail "cannot download the release public key from $PROVIDER"
mv "$DIR/release.pub.part" "$DIR/release.pub"
{% else %}[ -f "$DIR/release.pub" ] || fail "the provider serves no public key; copy the release public key to $DIR/release.pub first"
{% endif %}
set -- agent enroll --provider "$PROVIDER" --token "$TOKEN" --public-key "$DIR/release.pub"
[ -z "$HOST" ] || set -- "$@" --host "$HOST"
python3 "$DIR/tenfra.pyz" "$@" || fail "enrolment failed (see the message above)"

if [ -z "$NO_SERVICE" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    cat > /etc/systemd/system/tenfra-agent.service <<UNIT
[Unit]
Description=tenfra agent: pull, verify and apply signed configuration releases
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
Environment=TENFRA_STATE_DIR=/var/lib/tenfra
Environment=PYTHONUNBUFFERED=1
ExecStart=$(command -v python3) $DIR/tenfra.pyz agent run
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=300
Restart=always
RestartSec=10
User=root
StateDirectory=tenfra
StateDirectoryMode=0700

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --now tenfra-agent.service
    echo "tenfra: the agent runs as tenfra-agent.service"
else
    echo "tenfra: enrolled; start the agent with: python3 $DIR/tenfra.pyz agent run"
fi

#!/usr/bin/env bash
# Install and prepare every component tenfra's tests and demo need, idempotently.
#
#   scripts/setup.sh            system packages, podman config, test image, tools venv
#
# Writes only inside the repository (.state/, .venv/) apart from apt-get and
# the podman image store. Safe to run again: each step checks before it acts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.state"
IMAGE="localhost/tenfra-test:bookworm"
mkdir -p "$STATE"

log() { printf '[setup] %s\n' "$*" >&2; }

need_apt=()
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || need_apt+=(runc)
command -v slirp4netns >/dev/null || need_apt+=(slirp4netns)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v chromium >/dev/null || need_apt+=(chromium)
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    || need_apt+=(postgresql)
command -v wrk >/dev/null || need_apt+=(wrk)
if [ "${#need_apt[@]}" -gt 0 ]; then
    log "installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Podman: runc (crun fails on hybrid cgroups) and ulimits within the hard limits.
nofile="$(ulimit -Hn)"
nproc_limit="$(ulimit -Hu)"
[ "$nproc_limit" = unlimited ] && nproc_limit=4096
[ "$nproc_limit" -gt 4096 ] && nproc_limit=4096
cat > "$STATE/containers.conf.tmp" <<CONF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc_limit}:${nproc_limit}"]

[engine]
runtime = "runc"
CONF
mv "$STATE/containers.conf.tmp" "$STATE/containers.conf"
export CONTAINERS_CONF="$STATE/containers.conf"

if ! podman image exists "$IMAGE"; then
    log "building $IMAGE with debootstrap (about a minute)"
    rootfs="$(mktemp -d "$STATE/rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$rootfs" \
        >"$STATE/debootstrap.log" 2>&1 || { tail -20 "$STATE/debootstrap.log" >&2; exit 1; }
    tar -C "$rootfs" --exclude='./var/cache/apt/archives/*.deb' \
        --exclude='./var/lib/apt/lists/*' --exclude=./usr/share/doc \
        --exclude=./usr/share/locale --exclude=./usr/share/man \
        -c . | podman import -q - "$IMAGE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

# .venv: tox (with uv) drives the test environments; tenfra itself is installed
# editable with every extra, for the demo and for development.
if [ ! -x "$ROOT/.venv/bin/tox" ] || [ ! -x "$ROOT/.venv/bin/tenfra" ]; then
    log "creating .venv with tox and tenfra (editable, all extras)"
    [ -x "$ROOT/.venv/bin/python" ] || python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check uv
    VIRTUAL_ENV="$ROOT/.venv" "$ROOT/.venv/bin/uv" pip install -q \
        'tox>=4.11' 'tox-uv>=1.11' -e "$ROOT[provider,docker,s3,postgres,dev]"
fi
log "ready: CONTAINERS_CONF=$CONTAINERS_CONF, image $IMAGE"

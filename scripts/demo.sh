#!/usr/bin/env bash
# The README's demo: set up this machine, then run the whole pipeline on
# examples/ (test, compile, serve, enrol agents, apply) and wait for Ctrl-C.
#
#   scripts/demo.sh               agents in podman containers when possible
#   scripts/demo.sh --mode local  agents on this machine, confined to a sandbox
#   scripts/demo.sh --no-wait     stop after the summary (also TENFRA_DEMO_NO_WAIT=1)
#   scripts/demo.sh --help        every option
#
# TENFRA_DEMO_SKIP_SETUP=1 skips scripts/setup.sh (when it already ran);
# TENFRA_DEMO_PYTHON picks the interpreter with tenfra installed (default .venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ "${TENFRA_DEMO_SKIP_SETUP:-0}" != 1 ]; then
    scripts/setup.sh
    # Containers reach the provider on 127.0.0.1 through slirp4netns.
    if command -v podman >/dev/null && ! command -v slirp4netns >/dev/null \
        && [ "$(id -u)" = 0 ]; then
        printf '[demo] installing slirp4netns\n' >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            slirp4netns >/dev/null
    fi
fi
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/.state/containers.conf}"
exec "${TENFRA_DEMO_PYTHON:-$ROOT/.venv/bin/python}" "$ROOT/scripts/demo.py" "$@"

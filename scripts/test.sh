#!/usr/bin/env bash
# The README's test command: set up every component, then run every tox environment.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
export CONTAINERS_CONF="$ROOT/.state/containers.conf"
exec .venv/bin/tox run -e "${TOX_ENVS:-lint,types,unit,integration,docs}" "$@"

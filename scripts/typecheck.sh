#!/usr/bin/env bash
# mypy --strict on a copy of the package laid out as it installs (tenfra/, tenfra/plugins/...).
# mypy cannot follow setuptools' editable-install mapping; tox -e types checks a real wheel.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tenfra"
cp -r "$ROOT/core/." "$tmp/tenfra/"
for sub in plugins provider agent; do
    mkdir -p "$tmp/tenfra/$sub"
    cp -r "$ROOT/$sub/." "$tmp/tenfra/$sub/"
done
find "$tmp" -name __pycache__ -prune -exec rm -rf {} +
cd "$tmp"
"${MYPY:-$ROOT/.venv/bin/mypy}" --config-file "$ROOT/setup.cfg" --cache-dir "$tmp/.mypy_cache" -p tenfra "$@" \
    | sed "s#^tenfra/plugins/#plugins/#; s#^tenfra/provider/#provider/#; s#^tenfra/agent/#agent/#; s#^tenfra/#core/#"
exit "${PIPESTATUS[0]}"

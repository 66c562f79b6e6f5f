#!/usr/bin/env bash
# Builds the `clusterm` Python package into a venv (bindings-python/.venv, created on
# first use) and runs its pytest suite. The daemon-backed tests build the `clusterm`
# daemon with cargo unless CLUSTERM_DAEMON_BIN names one. Extra arguments go to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clusterm-target}"
venv="${CLUSTERM_PY_VENV:-$here/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import maturin, pytest' 2>/dev/null \
    && ! { [ -x "$venv/bin/maturin" ] && "$venv/bin/python" -c 'import pytest' 2>/dev/null; }; then
    "$venv/bin/pip" install --quiet 'maturin>=1.5,<2' 'pytest>=7'
fi

# The daemon first, so a broken build is reported as such and not as a test failure.
if [ -z "${CLUSTERM_DAEMON_BIN:-}" ]; then
    (cd "$repo" && cargo build -p clusterm-examples --bin clusterm)
    export CLUSTERM_DAEMON_BIN="$CARGO_TARGET_DIR/debug/clusterm"
fi

(cd "$here" && "$venv/bin/maturin" develop --quiet)
cd "$here"
exec "$venv/bin/python" -m pytest -q "$@"

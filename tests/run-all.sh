#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, unit, conformance and
# end-to-end tests against real serf, dockerd and ansible-playbook processes, and the
# Python package's pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need serf serf
need dockerd docker.io
need ansible-playbook ansible-core
need openssl openssl
python3 -c "import ensurepip, sysconfig" >/dev/null 2>&1 || missing+=(python3-venv python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing system packages: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clusterm-target}"
export RUST_BACKTRACE=1

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
bash bindings-python/run-tests.sh

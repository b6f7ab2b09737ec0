#!/usr/bin/env bash
# Installs the third-party ShipStation clients that the sandbox fidelity tests
# (crates/cli/tests/it/fidelity.rs) run against the sandbox:
#   - npm:  shipstation-node, pinned by tests/fidelity/node/package-lock.json
#   - PyPI: shipstation-api-wrapper and shipstation (natecox), pinned by
#           tests/fidelity/python/requirements.txt
# into .cache/fidelity/ under the repository root (gitignored).
#
# Idempotent: a stamp file keyed by the hash of the lockfiles, this script and
# the interpreter versions makes a second run a no-op. Works on a fresh machine
# with only node/npm and python3 (>= 3.10) installed and the npm registry and
# PyPI reachable. Exits non-zero with a message saying what failed.
#
# Usage: scripts/fidelity-deps.sh [--force]
set -euo pipefail

die() {
    echo "fidelity-deps: ERROR: $*" >&2
    exit 1
}
say() { echo "fidelity-deps: $*" >&2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/fidelity"
NODE_SRC="$ROOT/tests/fidelity/node"
PY_SRC="$ROOT/tests/fidelity/python"
STAMP="$CACHE/.stamp"

FORCE=0
if [[ "${1:-}" == "--force" ]]; then
    FORCE=1
elif [[ $# -gt 0 ]]; then
    die "unknown argument '$1' (usage: scripts/fidelity-deps.sh [--force])"
fi

for f in "$NODE_SRC/package.json" "$NODE_SRC/package-lock.json" "$PY_SRC/requirements.txt"; do
    [[ -f "$f" ]] || die "missing $f (is this a complete checkout?)"
done

command -v node >/dev/null 2>&1 || die "node is not installed (need Node >= 20; apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (apt-get install npm)"
NODE_VERSION="$(node --version)"
NODE_MAJOR="${NODE_VERSION#v}"
NODE_MAJOR="${NODE_MAJOR%%.*}"
# run.mjs uses module.register() (Node >= 20.6) and the global fetch.
[[ "$NODE_MAJOR" -ge 20 ]] || die "node $NODE_VERSION is too old: need Node >= 20"

PYTHON=""
for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
        PYTHON="$(command -v "$candidate")"
        break
    fi
done
[[ -n "$PYTHON" ]] || die "no python3 >= 3.10 found (shipstation-api-wrapper needs >= 3.10)"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
    die "$PYTHON cannot create virtual environments (apt-get install python3-venv)"
PY_VERSION="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"

KEY="$(
    {
        cat "$NODE_SRC/package.json" "$NODE_SRC/package-lock.json" "$PY_SRC/requirements.txt" "${BASH_SOURCE[0]}"
        echo "node=$NODE_VERSION python=$PYTHON $PY_VERSION"
    } | sha256sum | cut -d' ' -f1
)"

if [[ $FORCE -eq 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" &&
    -f "$CACHE/node/node_modules/shipstation-node/package.json" &&
    -x "$CACHE/venv/bin/python" ]]; then
    say "up to date ($CACHE)"
    exit 0
fi

mkdir -p "$CACHE"
rm -f "$STAMP"

# --- npm -------------------------------------------------------------------
say "installing npm packages (npm ci) into $CACHE/node"
rm -rf "$CACHE/node"
mkdir -p "$CACHE/node"
cp "$NODE_SRC/package.json" "$NODE_SRC/package-lock.json" "$CACHE/node/"
if ! (cd "$CACHE/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2); then
    die "npm ci failed in $CACHE/node (is the npm registry reachable? does package-lock.json match package.json?)"
fi
[[ -f "$CACHE/node/node_modules/shipstation-node/package.json" ]] ||
    die "npm ci finished but shipstation-node is missing from $CACHE/node/node_modules"

# --- Python ----------------------------------------------------------------
say "creating Python venv ($PYTHON, $PY_VERSION) in $CACHE/venv"
rm -rf "$CACHE/venv"
"$PYTHON" -m venv "$CACHE/venv" || die "'$PYTHON -m venv $CACHE/venv' failed"
say "installing PyPI packages from tests/fidelity/python/requirements.txt"
if ! "$CACHE/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$PY_SRC/requirements.txt" >&2; then
    die "pip install -r tests/fidelity/python/requirements.txt failed (is PyPI reachable?)"
fi
"$CACHE/venv/bin/python" -W ignore -c 'import shipstation.api, shipstation_api_wrapper.api' ||
    die "the Python clients installed but cannot be imported"

echo "$KEY" >"$STAMP"
say "done: node clients in $CACHE/node, Python clients in $CACHE/venv"

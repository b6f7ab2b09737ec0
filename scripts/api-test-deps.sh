#!/usr/bin/env bash
# Installs schemathesis (PyPI) into .cache/apitest/venv for the schema-driven API
# test (crates/cli/tests/it/api_schema.rs): it reads the served OpenAPI document and
# sends generated requests to every route, checking for server errors and statuses
# or bodies the document does not describe. The top-level version is pinned; pip
# resolves the rest. Re-running with the venv in place does nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/apitest"
VERSION="4.32.5"
say() { echo "api-test-deps: $*" >&2; }

if [[ -x "$CACHE/venv/bin/schemathesis" ]] && "$CACHE/venv/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION"; then
    exit 0
fi
PY="$(command -v python3.11 || command -v python3 || true)"
[[ -n "$PY" ]] || { say "no python3 found"; exit 1; }
rm -rf "$CACHE/venv"
mkdir -p "$CACHE"
say "creating a Python venv in $CACHE/venv and installing schemathesis $VERSION from PyPI"
"$PY" -m venv "$CACHE/venv"
"$CACHE/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "schemathesis==$VERSION" >&2
say "done"

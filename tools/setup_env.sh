#!/usr/bin/env bash
# Create ./.venv (if missing) with CPU torch first, then the project requirements.
# Idempotent: a second run only checks that the requirements are satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat pyproject.toml requirements.txt requirements-app.txt requirements-dev.txt requirements-reference.txt | sha1sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "==> installing torch==2.13.0 (CPU) and requirements (first run only)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  .venv/bin/python -m pip install -q --no-deps -r requirements-reference.txt
  .venv/bin/python -m pip install -q --no-deps -e .   # the project itself, importable from anywhere
  echo "$want" > "$stamp"
fi

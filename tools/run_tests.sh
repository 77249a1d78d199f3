#!/usr/bin/env bash
# Set up the environment (if needed) and run the test suite. Extra args go to pytest.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
if ! command -v chromium >/dev/null 2>&1; then  # the web app's browser tests drive Debian's Chromium
  echo "==> installing Chromium (Debian package) for the browser tests"
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
    || { $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
# one worker per core; a test file stays on one worker (its module fixtures, e.g. the app server, are made once)
exec .venv/bin/python -m pytest -q -n auto --dist loadfile "$@" tests

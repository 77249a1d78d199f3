#!/usr/bin/env bash
# The web app (Gradio), installed on first use from requirements-app.txt.
#   sh egs/tta/app/run_app.sh [--checkpoint_path DIR] [--experiments_root ckpts/tta] [--port 7860] [--host 127.0.0.1]
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"; [ -x "$py" ] || py=python3
cd "$root"
"$py" -c "import gradio" 2>/dev/null || { echo "==> installing the app's extra (requirements-app.txt)"; "$py" -m pip install -q -r requirements-app.txt; }
exec "$py" bins/tta/webapp.py "$@"

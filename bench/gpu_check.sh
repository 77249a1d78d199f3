#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py --help): mixed-precision training steps, resume and generation on this machine.
#   sh bench/gpu_check.sh [--size full|tiny] [--device cuda|cpu] [--workdir DIR]
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"; [ -x "$py" ] || py=python3
cd "$root"
exec "$py" bench/gpu_check.py "$@"

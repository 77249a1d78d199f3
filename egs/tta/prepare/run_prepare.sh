#!/usr/bin/env bash
# Prepare a dataset: sh egs/tta/prepare/run_prepare.sh --dataset SynthCaps|AudioCaps|folder [--raw_dir DIR] [--processed_dir DIR]
# All options are forwarded to bins/tta/preprocess.py (see --help).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"; [ -x "$py" ] || py=python3
exec "$py" "$root/bins/tta/preprocess.py" "$@"

#!/usr/bin/env bash
# Edit a clip by an instruction with a trained AUDIT editor (default: the newest under ckpts/tta):
#   sh egs/tta/audit/run_edit.sh --audio in.wav --instruction "Make the beep higher" [--checkpoint_path DIR]
#     [--sampler dpm++] [--num_steps 25] [--guidance_scale 3] [--source_guidance_scale 1.5] [--seed 0] [--output_dir DIR]
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"; [ -x "$py" ] || py=python3
cd "$root"
exec "$py" bins/tta/edit.py "$@"

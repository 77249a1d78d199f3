#!/usr/bin/env bash
# Text -> audio with a trained AudioLDM experiment (works under sh/dash: re-execs bash, prompts are quoted as given).
#   sh egs/tta/audioldm/run_inference.sh --text "A man is whistling" [--checkpoint_path DIR] [--sampler dpm++] [--num_steps 25]
#     [--guidance_scale 3] [--seed 0] [--duration 5] [--num_samples 1] [--text_file F] [--vocoder hifigan --vocoder_path DIR]
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"; [ -x "$py" ] || py=python3
cd "$root"
exec "$py" bins/tta/inference.py "$@"

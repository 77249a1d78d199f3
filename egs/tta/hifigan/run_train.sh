#!/usr/bin/env bash
# Vocoder: train HiFi-GAN on prepared clips.  sh egs/tta/hifigan/run_train.sh [--config F] [--exp_name N] [--resume] [--set k=v ...]
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
exec bash "$root/egs/tta/train_stage.sh" "$root/egs/tta/hifigan/exp_config.json" hifigan "$@"

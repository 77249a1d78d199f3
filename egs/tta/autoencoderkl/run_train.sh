#!/usr/bin/env bash
# Stage 1: train the mel VAE.  sh egs/tta/autoencoderkl/run_train.sh [--config F] [--exp_name N] [--resume]
#   [--num_gpus N] [--pretrained_vae DIR] [--set key=value ...]
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
exec bash "$root/egs/tta/train_stage.sh" "$root/egs/tta/autoencoderkl/exp_config.json" autoencoderkl "$@"

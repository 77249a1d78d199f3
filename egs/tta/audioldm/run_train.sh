#!/usr/bin/env bash
# Stage 2: train the latent diffusion model (needs the stage-1 VAE named by model.autoencoder_path).
#   sh egs/tta/audioldm/run_train.sh [--config F] [--exp_name N] [--resume] [--num_gpus N] [--cache_latents] [--set key=value ...]
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
exec bash "$root/egs/tta/train_stage.sh" "$root/egs/tta/audioldm/exp_config.json" audioldm "$@"

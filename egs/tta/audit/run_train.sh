#!/usr/bin/env bash
# Train the AUDIT editor from a text-to-audio export on prepared triplets (default: the SynthCaps demo model on SynthEdits).
#   sh egs/tta/audit/run_train.sh [--config F] [--init_from ckpts/tta/<AudioLDM experiment>] [--exp_name N] [--resume]
#     [--num_gpus N] [--set key=value ...]
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
exec bash "$root/egs/tta/train_stage.sh" "$root/egs/tta/audit/exp_config_synthedits.json" audit_synthedits "$@"

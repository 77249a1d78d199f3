#!/usr/bin/env bash
# Shared by the stages' run_train.sh: train_stage.sh DEFAULT_CONFIG DEFAULT_EXP_NAME [options...]
# Options: --config F, --exp_name N, --num_gpus N (>1 runs accelerate launch --multi_gpu), others go to bins/tta/train.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
config="$1"; exp_name="$2"; shift 2
num_gpus=1
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --exp_name) exp_name="$2"; shift 2 ;;
    --num_gpus) num_gpus="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
py="${PYTHON:-$root/.venv/bin/python}"; [ -x "$py" ] || py=python3
cd "$root"
if [ "$num_gpus" -gt 1 ]; then
  exec "$py" -m accelerate.commands.launch --multi_gpu --num_processes "$num_gpus" bins/tta/train.py \
    --config "$config" --exp_name "$exp_name" ${args[@]+"${args[@]}"}
fi
exec "$py" bins/tta/train.py --config "$config" --exp_name "$exp_name" ${args[@]+"${args[@]}"}

#!/usr/bin/env bash
# Shared by the stages' run_train.sh: train_stage.sh DEFAULT_CONFIG DEFAULT_EXP_NAME [options...]
# Options: --config F, --exp_name N, --num_gpus N (GPUs per machine; >1 runs accelerate launch --multi_gpu),
# --num_machines M --machine_rank R --main_process_ip IP [--main_process_port P] (several machines: run the same
# command on each, R = 0 .. M-1); others go to bins/tta/train.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
config="$1"; exp_name="$2"; shift 2
num_gpus=1
num_machines=1
machine=()
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --exp_name) exp_name="$2"; shift 2 ;;
    --num_gpus) num_gpus="$2"; shift 2 ;;
    --num_machines) num_machines="$2"; shift 2 ;;
    --machine_rank|--main_process_ip|--main_process_port) machine+=("$1" "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
py="${PYTHON:-$root/.venv/bin/python}"; [ -x "$py" ] || py=python3
cd "$root"
if [ "$num_machines" -gt 1 ] && [ ${#machine[@]} -lt 4 ]; then
  echo "error: --num_machines $num_machines needs --machine_rank and --main_process_ip" >&2; exit 2
fi
if [ "$num_gpus" -gt 1 ] || [ "$num_machines" -gt 1 ]; then
  exec "$py" -m accelerate.commands.launch --multi_gpu --num_machines "$num_machines" \
    --num_processes "$(( num_gpus * num_machines ))" ${machine[@]+"${machine[@]}"} bins/tta/train.py \
    --config "$config" --exp_name "$exp_name" ${args[@]+"${args[@]}"}
fi
exec "$py" bins/tta/train.py --config "$config" --exp_name "$exp_name" ${args[@]+"${args[@]}"}

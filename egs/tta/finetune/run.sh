#!/usr/bin/env bash
# The fine-tuning demo: teach the trained SynthCaps demo model a word it never saw ("waterfall" for its rushing noise)
# with a LoRA trained on an own-folder dataset (wavs + metadata.csv, as a user would make one), then measure
# adherence for prompts with the new word and for the original held-out prompts, before and after.
# Needs the demo model (sh egs/tta/demo/run.sh). Re-running skips finished stages. Options: --fresh.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
fresh=0
while [ $# -gt 0 ]; do
  case "$1" in
    --fresh) fresh=1; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
base=ckpts/tta/audioldm_synthcaps
raw=data/finetune/waterfall
processed=data/processed
exp=lora_waterfall
out=exp/finetune
if [ ! -f "$base/export/tta_artifact.json" ]; then
  echo "error: no trained demo model at $base; run sh egs/tta/demo/run.sh first" >&2; exit 2
fi
if [ "$fresh" = 1 ]; then rm -rf "$raw" "$processed/Waterfall" "ckpts/tta/$exp" "$out"; fi
export PATH="$root/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHON="$root/.venv/bin/python"
start=$(date +%s)
stage() { printf '\n==> [%s, %ds elapsed] %s\n' "$1" "$(( $(date +%s) - start ))" "$2"; }

stage 1/4 "own-folder dataset: rushing noise captioned as a \"waterfall\", and clips of every sound as they were"
[ -f "$raw/metadata.csv" ] || python bins/tta/finetune_demo.py folder --out "$raw"

stage 2/4 "prepare it with the demo model's audio settings"
sh egs/tta/prepare/run_prepare.sh --dataset folder --raw_dir "$raw" --name Waterfall --processed_dir "$processed" \
  --set audio.segment_seconds=2.56 --set audio.target_frames=256

stage 3/4 "train the LoRA"
if [ ! -f "ckpts/tta/$exp/export/tta_artifact.json" ]; then
  resume=()
  if ls "ckpts/tta/$exp/checkpoints"/step_* >/dev/null 2>&1; then resume=(--resume); fi
  sh egs/tta/audioldm/run_train.sh --config egs/tta/finetune/exp_config_waterfall.json --init_from "$base" --exp_name "$exp" \
    --set "data.processed_dir=$processed" ${resume[@]+"${resume[@]}"}
fi

stage 4/4 "adherence before and after"
python bins/tta/finetune_demo.py score --base "$base" --lora "ckpts/tta/$exp" --test "$processed/SynthCaps/test.json" \
  --output "$out/waterfall.json"
echo "fine-tuning demo done in $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# The AUDIT demo: SynthEdits triplets -> the trained SynthCaps demo model fine-tuned into an instruction editor ->
# edits of held-out triplets scored per edit type, beside zero-shot audio-to-audio editing at its best strength.
# Needs the demo model (sh egs/tta/demo/run.sh). Re-running skips finished stages. Options: --fresh.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
fresh=0
while [ $# -gt 0 ]; do
  case "$1" in
    --fresh) fresh=1; shift ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
base=ckpts/tta/audioldm_synthcaps
processed=data/processed
exp=audit_synthedits
if [ ! -f "$base/export/tta_artifact.json" ]; then
  echo "error: no trained demo model at $base; run sh egs/tta/demo/run.sh first" >&2; exit 2
fi
if [ "$fresh" = 1 ]; then rm -rf "$processed/SynthEdits" "ckpts/tta/$exp"; fi
export PATH="$root/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHON="$root/.venv/bin/python"
start=$(date +%s)
stage() { printf '\n==> [%s, %ds elapsed] %s\n' "$1" "$(( $(date +%s) - start ))" "$2"; }

stage 1/3 "SynthEdits triplets"
sh egs/tta/audit/run_prepare.sh --processed_dir "$processed"

stage 2/3 "fine-tune the demo model into an editor"
if [ ! -f "ckpts/tta/$exp/export/tta_artifact.json" ]; then
  resume=()
  if ls "ckpts/tta/$exp/checkpoints"/step_* >/dev/null 2>&1; then resume=(--resume); fi
  sh egs/tta/audit/run_train.sh --init_from "$base" --exp_name "$exp" --set "data.processed_dir=$processed" ${resume[@]+"${resume[@]}"}
fi

stage 3/3 "edit held-out triplets; zero-shot audio-to-audio beside it"
python bins/tta/evaluate_edits.py --checkpoint_path "ckpts/tta/$exp" --data "$processed/SynthEdits"
echo "AUDIT demo done in $(( $(date +%s) - start )) s"

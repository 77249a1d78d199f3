#!/usr/bin/env bash
# Edit triplets for the AUDIT editor: the built-in SynthEdits (default), or your own folder of triplets
# (audio + metadata.csv with columns input,output,instruction):
#   sh egs/tta/audit/run_prepare.sh [--dataset SynthEdits | --dataset edit_folder --raw_dir DIR [--name N]] [--processed_dir DIR]
# Own triplets need the audio settings of the text-to-audio model the editor starts from (--set audio.<key>=...).
# All options are forwarded to bins/tta/preprocess.py (see --help).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"; [ -x "$py" ] || py=python3
cd "$root"
case " $* " in *" --dataset "*) ;; *) set -- --dataset SynthEdits "$@" ;; esac
exec "$py" bins/tta/preprocess.py "$@"

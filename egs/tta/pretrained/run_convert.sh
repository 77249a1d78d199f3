#!/usr/bin/env bash
# Convert a published model (AudioLDM diffusers folder or .ckpt, Tango folder) into an export of this toolkit.
#   sh egs/tta/pretrained/run_convert.sh --from audioldm|audioldm-ckpt|tango --src PATH --out ckpts/tta/<name>
#     [--only vae|vocoder] [--text_encoder DIR] [--overwrite]
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"; [ -x "$py" ] || py=python3
cd "$root"
exec "$py" bins/tta/convert.py "$@"

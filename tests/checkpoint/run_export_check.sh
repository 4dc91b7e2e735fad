#!/bin/bash
# export_fixture saves a tiny model → aoetron-ckpt verify and export (small shards; f32 and
# --dtype=bf16) → check_export.py loads the export in PyTorch and compares losses, and checks the
# bf16 export is the f32 one rounded to nearest even.
# usage: run_export_check.sh PYTHON EXPORT_FIXTURE AOETRON_CKPT FFN [--options]
# Exit 0 pass, 1 fail, 77 skip (no torch).
set -euo pipefail
python=$1 fixture=$2 ckpt=$3 ffn=$4 options=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
if ! "$python" -c "import torch, numpy" > /dev/null 2>&1; then
  echo "SKIP: $python cannot import torch and numpy"
  exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/aoetron_ckpt_export_XXXXXX")
trap 'rm -rf "$work"' EXIT
"$fixture" --root="$work/ckpt" --bundle="$work/fixture.aoetb" --ffn="$ffn" $options
"$ckpt" verify "$work/ckpt"
"$ckpt" inspect "$work/ckpt" > "$work/inspect.txt"
head -14 "$work/inspect.txt"
"$ckpt" export "$work/ckpt" --out="$work/export" --max_shard_size=40KiB
"$ckpt" export "$work/ckpt" --out="$work/export_bf16" --max_shard_size=40KiB --dtype=bf16
"$python" "$here/check_export.py" --export "$work/export" --bundle "$work/fixture.aoetb" \
  --bf16_export "$work/export_bf16"

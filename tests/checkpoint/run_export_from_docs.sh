#!/bin/bash
# export_fixture saves a tiny model with its config → aoetron-ckpt export (small shards) →
# read_export_from_docs.py, which knows only docs/checkpoint.md, loads config.json and the
# safetensors and reproduces the loss and aux loss the trainer computed. Also runs
# `inspect --config` (the effective config must name fields the run left at their defaults).
# usage: run_export_from_docs.sh PYTHON EXPORT_FIXTURE AOETRON_CKPT DOCS_CHECKPOINT_MD FFN [--options]
# Exit 0 pass, 1 fail, 77 skip (no torch).
set -euo pipefail
python=$1 fixture=$2 ckpt=$3 docs=$4 ffn=$5 options=${6:-}
here=$(cd "$(dirname "$0")" && pwd)
if ! "$python" -c "import torch" > /dev/null 2>&1; then
  echo "SKIP: $python cannot import torch"
  exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/aoetron_export_docs_XXXXXX")
trap 'rm -rf "$work"' EXIT
"$fixture" --root="$work/ckpt" --bundle="$work/fixture.aoetb" --expect="$work/expect.json" \
  --ffn="$ffn" $options
"$ckpt" inspect "$work/ckpt" --config > "$work/inspect.txt"
# rope_theta is never set by the fixture: the effective config shows its default anyway.
grep -q "^  rope_theta: 10000$" "$work/inspect.txt" || { cat "$work/inspect.txt"; exit 1; }
grep -q "^  d_model: 32  # set$" "$work/inspect.txt" || { cat "$work/inspect.txt"; exit 1; }
"$ckpt" export "$work/ckpt" --out="$work/export" --max_shard_size=40KiB
"$python" "$here/read_export_from_docs.py" --export "$work/export" --expect "$work/expect.json" \
  --docs "$docs"

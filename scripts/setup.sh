#!/usr/bin/env bash
# Installs every Debian package the build and the tests need, configures and builds aoetron into
# build/ (RelWithDebInfo; binaries in build/bin/), and prepares the small KJV corpus and the GPT-2
# tokenizer files. Idempotent: a second run only rebuilds what changed.
#
#   scripts/setup.sh            # everything
#   AOETRON_SKIP_CORPUS=1 ...   # skip corpus preparation (build only)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake g++ make pkg-config git ca-certificates
  libdnnl-dev                      # CPU GEMM (docs/gemm.md)
  protobuf-compiler libprotobuf-dev libabsl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  openmpi-bin libopenmpi-dev       # multi-rank training and tests
  python3 python3-torch python3-numpy   # the PyTorch parity oracle and speed baseline
  clang libclang-rt-14-dev         # libFuzzer targets
  libopenblas-dev libeigen3-dev    # only for the GEMM library comparison bench
  gnuplot-nox                      # aoetron-study report plots (skipped without it)
  slurmctld slurmd slurm-client munge   # the Slurm tests' private cluster (tests/slurm)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js runs the reference tokenizer in the data tests; keep an existing node (it may come from
# elsewhere, with its own npm), otherwise install Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

if [[ -z "${AOETRON_SKIP_CORPUS:-}" && -x scripts/prepare_corpus.sh ]]; then
  scripts/prepare_corpus.sh --kjv-only
fi
echo "setup: done (binaries in build/bin/)"

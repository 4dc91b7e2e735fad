#!/usr/bin/env bash
# Runs set-up (idempotent: installs, builds, prepares the test corpus), then every test.
#   scripts/test.sh                 # all tests
#   scripts/test.sh -R parity       # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
ctest --output-on-failure -j"$(nproc)" "$@"

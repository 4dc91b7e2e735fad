#!/bin/bash
# A checkpoint saved by a 4-rank job is loaded by a 2-rank job and by a 1-process job.
# usage: run_cross_job.sh MPIEXEC CHECKPOINT_MPI_TEST
set -euo pipefail
mpiexec=$1
binary=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/aoetron_ckpt_cross_XXXXXX")
trap 'rm -rf "$dir"' EXIT
export AOETRON_CKPT_CROSS_DIR=$dir
flags=(--oversubscribe --allow-run-as-root)
echo "== save with 4 ranks into $dir"
"$mpiexec" -n 4 "${flags[@]}" -x AOETRON_CKPT_CROSS_DIR "$binary" --gtest_filter=CrossJob.Save
echo "== load with 2 ranks"
"$mpiexec" -n 2 "${flags[@]}" -x AOETRON_CKPT_CROSS_DIR "$binary" --gtest_filter=CrossJob.Load
echo "== load in 1 process (no mpirun)"
"$binary" --gtest_filter=CrossJob.Load

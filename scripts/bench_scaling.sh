#!/usr/bin/env bash
# Weak scaling of aoetron-train on one machine: 1 rank × 1 thread against mpirun -np 2 × 1 thread
# at the same per-rank batch (micro-batch 8 of the config, one micro-batch per rank per step, so
# the 2-rank job trains a global batch twice as large), for each layout:
#   dp2         parallel.ep 1: every parameter replicated, gradients all-reduced over 2 ranks
#   dp2_zero1   the same with ZeRO-1 (reduce-scatter + all-gather)
#   ep2         parallel.ep 2: experts split over the 2 ranks (all-to-all dispatch), only the
#               non-expert gradients all-reduced
# efficiency = tokens/s of the 2-rank job / (2 × tokens/s of 1 rank). Each measurement runs
# --repeats times, interleaved with the others; the median is reported. comm_s is the time per
# step rank 0 spent inside collectives of any group (waiting for the other rank included), and
# ep_s the part of it in the expert dispatch/return all-to-alls inside the model.
#
#   scripts/bench_scaling.sh [--build-dir build] [--config configs/bench_aoe_small.textproto]
#                            [--steps 5] [--warmup 2] [--repeats 3] [--layouts "dp2 dp2_zero1 ep2"]
#
# On a 2-core machine the 2-rank job needs both cores to itself: run it on a quiet machine (the
# script prints the load average before and after).
set -euo pipefail
cd "$(dirname "$0")/.."

build=build config=configs/bench_aoe_small.textproto steps=5 warmup=2 repeats=3
layouts="dp2 dp2_zero1 ep2"
while [[ $# -gt 0 ]]; do
  case $1 in
    --build-dir) build=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
train=$build/bin/aoetron-train
[[ -x $train ]] || { echo "$train not found (build it, or pass --build-dir)" >&2; exit 1; }
export OMP_NUM_THREADS=1
common=(--config "$config" --bench --bench_steps "$steps" --bench_warmup_steps "$warmup"
        --set parallel.threads=1 --set train.grad_accum_steps=1 --set train.global_batch_size=0)
results=$(mktemp)
trap 'rm -f "$results"' EXIT

echo "bench_scaling: $config, $steps timed steps after $warmup, $repeats repeats; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < repeats; ++r)); do
  echo "one $("$train" "${common[@]}" 2>/dev/null)" >>"$results"
  for layout in $layouts; do
    extra=()
    case $layout in
      dp2) ;;
      dp2_zero1) extra=(--set parallel.zero1=true) ;;
      ep2) extra=(--set parallel.ep=2) ;;
      *) echo "unknown layout $layout" >&2; exit 2 ;;
    esac
    line=$(mpirun --oversubscribe --allow-run-as-root --bind-to none -np 2 \
             "$train" "${common[@]}" "${extra[@]}" 2>/dev/null)
    echo "$layout $line" >>"$results"
  done
done
echo "bench_scaling: load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$results" "$layouts" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, _, payload = line.partition(" ")
    runs.setdefault(name, []).append(json.loads(payload))
def median(name, key):
    return statistics.median(r[key] for r in runs[name])
one = median("one", "tokens_per_s")
print(f"{'layout':<11} {'ranks':>5} {'tokens/s':>10} {'step_s':>8} {'comm_s':>8} {'ep_s':>8} "
      f"{'efficiency':>10}")
print(f"{'1 rank':<11} {1:>5} {one:>10.0f} {median('one', 'step_s'):>8.3f} {0:>8.3f} {0:>8.3f} "
      f"{'':>10}")
for layout in sys.argv[2].split():
    tps = median(layout, "tokens_per_s")
    print(f"{layout:<11} {2:>5} {tps:>10.0f} {median(layout, 'step_s'):>8.3f} "
          f"{median(layout, 'comm_s'):>8.3f} {median(layout, 'comm_ep_s'):>8.3f} "
          f"{tps / (2 * one):>9.1%}")
PY

#!/usr/bin/env bash
# Failure drills of aoetron-train under mpirun (4 ranks): whatever goes wrong on one rank, every
# rank must be gone, mpirun must exit non-zero within MAX_SECONDS, and the output must name the
# rank and the cause (EXPECTED, an extended regex).
#
#   run_train_drill.sh MPIEXEC AOETRON_TRAIN SCENARIO MAX_SECONDS EXPECTED
#
# Scenarios:
#   sigkill            rank 2 is SIGKILLed once training is under way
#   nan_one_rank       rank 1 runs with model.init_std=1e37 (mpirun's MPMD form): its
#                      activations overflow, RMSNorm turns them into zeros (a finite loss) and
#                      its step-1 gradient is NaN; the other ranks are fine
#   bad_data_one_rank  rank 1 reads a copy of the dataset whose tokens are all 70 (vocab 64),
#                      sharing the others' sample index (same .idx, same .bin size)
#   bad_layout         parallel.ep=3 on 4 ranks: refused before any work, printed once
set -uo pipefail

if [[ $# -ne 5 ]]; then
  echo "usage: $0 MPIEXEC AOETRON_TRAIN SCENARIO MAX_SECONDS EXPECTED" >&2
  exit 2
fi
mpiexec=$1 train=$2 scenario=$3 max_seconds=$4 expected=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/log
mpirun_flags=(--oversubscribe --allow-run-as-root)
export OMP_NUM_THREADS=1

common=(--set model.vocab_size=64 --set model.d_model=32 --set model.n_layers=2
        --set model.n_heads=2 --set model.seq_len=32 --set model.d_ffn=64 --set model.ffn=aoe
        --set model.n_experts=4 --set model.d_low=8 --set train.micro_batch_size=2
        --set train.global_batch_size=8 --set train.eval_interval=0 --set schedule.warmup_steps=0
        --set logging.interval=1 --set logging.progress=never --set parallel.threads=1
        --set "logging.metrics_file=$work/metrics.jsonl")

# A Megatron dataset (MMIDIDX v1, uint16) of 200 documents of 100 tokens < 64, and a copy whose
# tokens are all 70 (same .idx, same .bin size).
write_datasets() {
  python3 - "$work" <<'PY'
import random, struct, sys
work = sys.argv[1]
docs, length = 200, 100
idx = b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + bytes([8]) + struct.pack("<QQ", docs, docs + 1)
idx += struct.pack(f"<{docs}i", *([length] * docs))
idx += struct.pack(f"<{docs}q", *[2 * length * i for i in range(docs)])
idx += struct.pack(f"<{docs + 1}q", *range(docs + 1))
rng = random.Random(5)
for name, tokens in (("good", [rng.randrange(64) for _ in range(docs * length)]),
                     ("bad", [70] * (docs * length))):
    open(f"{work}/{name}.idx", "wb").write(idx)
    open(f"{work}/{name}.bin", "wb").write(struct.pack(f"<{len(tokens)}H", *tokens))
PY
}

start=$(date +%s.%N)
case $scenario in
  sigkill)
    timeout --kill-after=5 $((max_seconds + 60)) "$mpiexec" "${mpirun_flags[@]}" -np 4 \
      "$train" "${common[@]}" --set train.steps=100000 >"$log" 2>&1 &
    mpirun_pid=$!
    # Wait until training is under way (a few logged steps), then kill world rank 2.
    for _ in $(seq 600); do
      [[ -f $work/metrics.jsonl && $(wc -l <"$work/metrics.jsonl") -ge 3 ]] && break
      sleep 0.1
    done
    victim=""
    for pid in $(pgrep -P "$mpirun_pid" 2>/dev/null; for t in $(pgrep -P "$mpirun_pid"); do pgrep -P "$t"; done); do
      if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=2'; then
        victim=$pid
      fi
    done
    if [[ -z $victim ]]; then
      echo "FAIL: could not find world rank 2 among mpirun's children"; kill "$mpirun_pid"; exit 1
    fi
    ranks=$(for pid in $(pgrep -P "$mpirun_pid"); do
              tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=' &&
                echo "$pid"; done)
    killed_at=$(date +%s.%N)
    echo "drill: killing rank 2 (pid $victim) at $killed_at"
    kill -9 "$victim"
    wait "$mpirun_pid"
    rc=$?
    ;;
  nan_one_rank)
    timeout --kill-after=5 $((max_seconds + 60)) "$mpiexec" "${mpirun_flags[@]}" \
      -np 1 "$train" "${common[@]}" --set train.steps=5 : \
      -np 1 "$train" "${common[@]}" --set train.steps=5 --set model.init_std=1e37 : \
      -np 2 "$train" "${common[@]}" --set train.steps=5 >"$log" 2>&1
    rc=$?
    ;;
  bad_data_one_rank)
    write_datasets
    data=(--set data.source=indexed --set data.split=1 --set "data.index_cache_dir=$work/cache")
    timeout --kill-after=5 $((max_seconds + 60)) "$mpiexec" "${mpirun_flags[@]}" \
      -np 1 "$train" "${common[@]}" "${data[@]}" --set train.steps=5 --set "data.datasets=$work/good" : \
      -np 1 "$train" "${common[@]}" "${data[@]}" --set train.steps=5 --set "data.datasets=$work/bad" : \
      -np 2 "$train" "${common[@]}" "${data[@]}" --set train.steps=5 --set "data.datasets=$work/good" \
      >"$log" 2>&1
    rc=$?
    ;;
  bad_layout)
    timeout --kill-after=5 $((max_seconds + 60)) "$mpiexec" "${mpirun_flags[@]}" -np 4 \
      "$train" "${common[@]}" --set train.steps=5 --set model.n_experts=6 --set parallel.ep=3 \
      >"$log" 2>&1
    rc=$?
    ;;
  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
end=$(date +%s.%N)
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
cat "$log"
echo "----"

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
[[ $rc -ne 0 ]] || fail "mpirun exited 0 although a rank failed ($scenario)"
# (124: timeout ended it. mpirun itself exits 137 when a rank died of SIGKILL.)
[[ $rc -ne 124 ]] || fail "the job hung and was ended by the backstop timeout"
awk -v e="$elapsed" -v m="$max_seconds" 'BEGIN { exit !(e <= m) }' ||
  fail "the job took ${elapsed}s, more than ${max_seconds}s"
grep -Eq "$expected" "$log" || fail "the output does not match /$expected/"
if [[ $scenario == bad_layout ]]; then
  count=$(grep -c "parallel.ep=3 needs 3 ranks" "$log")
  [[ $count -eq 1 ]] || fail "the layout error was printed $count times, not once"
fi
if [[ $scenario == sigkill ]]; then
  for pid in $ranks; do
    state=$(ps -o stat= -p "$pid" 2>/dev/null) && [[ $state != Z* ]] &&
      fail "rank pid $pid is still running"
  done
  after=$(awk -v a="$killed_at" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
  echo "drill sigkill: mpirun exited $rc ${after}s after the kill"
fi
echo "drill $scenario: mpirun exited $rc after ${elapsed}s in all"
[[ $failures -eq 0 ]] || exit 1
echo "PASS"

#!/usr/bin/env bash
# Checkpoint save and resume of aoetron-train under mpirun (docs/training.md, "Checkpoints and
# resume"). A tiny AoE model on synthetic data; every scenario fails loudly with the reason.
#
#   run_checkpoint_resume.sh MPIEXEC AOETRON_TRAIN SCENARIO
#
# Scenarios:
#   exact     ep2·dp2 (np 4), 30 steps. Run A uninterrupted. Run B saves every 5 steps and one
#             rank is SIGKILLed once step_5 is committed; `--resume auto` continues from the
#             newest complete checkpoint to step 30. Every step's loss and grad norm (metrics
#             JSON, 9 significant digits) must equal run A's, and the final checkpoints' shard
#             files (parameters, AdamW m and v) must be identical byte for byte.
#   exact_zero1  the same with dp2 and ZeRO-1 (np 2): the moments are all-gathered to save and
#             each rank keeps its shards on load.
#   exact_bf16   `exact` with model.precision=bf16: the checkpoint holds the f32 masters, and the
#             resumed run rebuilds the bf16 compute copy from them, so it too is bit for bit.
#   exact_options  `exact` with a router MoE and every MoE option (granularity 2, a shared expert,
#             sigmoid scores, z-loss, aux-loss-free balancing): the expert bias has moved every
#             step and decides selections, so a checkpoint that lost it (or saved zeros) would
#             resume onto other experts and other losses.
#   sigterm   ep2·dp2 (np 4): SIGTERM to one rank mid-run → every rank stops after the same
#             step, step_<N> is committed, mpirun exits 0; --resume auto then finishes the run.
#   reshard   tp2·ep2 (np 4) saves step_4 and runs to 8; one process resumes from step_4: its
#             step-5 loss equals the np-4 run's within 1e-5 relative (same weights, another
#             reduction order), steps 6–8 within 1e-4. Then a model with n_experts=8 (and one
#             with d_model=48) must be refused with an error naming the tensor. Last, ep4 (np 4)
#             saves step_4 and ep2·dp2 (np 4) resumes it: step 5 within 1e-5 relative.
#   reshard_bf16  tp2·ep2 (np 4) in bf16 saves step_4, one process resumes it: steps 5–8 within
#             2⁻⁸ relative (one bf16 spacing: the layout tests' bf16 tolerance for losses).
set -uo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: $0 MPIEXEC AOETRON_TRAIN SCENARIO" >&2
  exit 2
fi
mpiexec=$1 train=$2 scenario=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
mpirun=("$mpiexec" --oversubscribe --allow-run-as-root)

common=(--set model.vocab_size=64 --set model.d_model=32 --set model.n_layers=2
        --set model.n_heads=2 --set model.seq_len=32 --set model.d_ffn=64 --set model.ffn=aoe
        --set model.n_experts=4 --set model.d_low=8 --set data.source=synthetic
        --set train.micro_batch_size=2 --set train.global_batch_size=8
        --set train.eval_interval=0 --set schedule.warmup_steps=2 --set logging.interval=1
        --set logging.progress=never --set parallel.threads=1 --set checkpoint.keep_last=10)

fail() { echo "FAIL: $*" >&2; exit 1; }

# losses FILE: "step loss grad_norm" per step, the last line logged for each step.
losses() { python3 "$(dirname "${BASH_SOURCE[0]}")/../lib/step_losses.py" "$1"; }

# wait_for PATH SECONDS
wait_for() {
  for ((i = 0; i < $2 * 20; ++i)); do
    [[ -e $1 ]] && return 0
    sleep 0.05
  done
  return 1
}

# rank_pid TAG RANK: the pid of the aoetron-train process of world rank RANK whose command
# line holds TAG (this test's own work directory).
rank_pid() {
  # Retried for up to 10 s: one fresh-clone run under full load once found no match at all.
  for ((attempt = 0; attempt < 50; ++attempt)); do
    for pid in $(pgrep -f -- "$1"); do
      if [[ -r /proc/$pid/environ ]] &&
         tr '\0' '\n' < /proc/$pid/environ | grep -qx "OMPI_COMM_WORLD_RANK=$2" &&
         [[ $(cat /proc/$pid/comm) == aoetron-train ]]; then
        echo "$pid"
        return 0
      fi
    done
    sleep 0.2
  done
  echo "rank_pid: no aoetron-train of rank $2 matching $1 among:" >&2
  ps -eo pid,stat,comm,args | grep -F -- "$1" >&2
  return 1
}

# reshard_to_one_process TOL_STEP5 TOL_LATER ARGS...: tp2·ep2 (np 4) trains with ARGS (8 steps,
# saving step_4 under $work/r); one process resumes step_4 and must give steps 5–8 within the
# relative tolerances of the uninterrupted np-4 run (step 5: the same weights in another reduction
# order; later steps: the optimizer's steps on top).
reshard_to_one_process() {
  local tol5=$1 tol_later=$2
  shift 2
  "${mpirun[@]}" -np 4 "$train" "${common[@]}" "$@" --set parallel.tp=2 \
      --set parallel.ep=2 --set "logging.metrics_file=$work/r4.jsonl" > "$work/r4.log" 2>&1 ||
    { cat "$work/r4.log"; fail "the tp2·ep2 run failed"; }
  "$train" "${common[@]}" "$@" --set "checkpoint.dir=$work/r1" \
      --set "logging.metrics_file=$work/r1.jsonl" --resume "$work/r/step_4" > "$work/r1.log" 2>&1 ||
    { cat "$work/r1.log"; fail "one process could not resume the tp2·ep2 checkpoint"; }
  grep -q "resumed from step 4 " "$work/r1.log" || { cat "$work/r1.log"; fail "not resumed"; }
  python3 - "$work/r4.jsonl" "$work/r1.jsonl" "$tol5" "$tol_later" <<'PY' ||
import json, sys
def load(path):
    return {j["step"]: j["loss"] for j in map(json.loads, filter(str.strip, open(path)))}
a, b = load(sys.argv[1]), load(sys.argv[2])
assert sorted(b) == [5, 6, 7, 8], sorted(b)
for step in b:
    tol = float(sys.argv[3] if step == 5 else sys.argv[4])
    rel = abs(a[step] - b[step]) / abs(a[step])
    print(f"step {step}: tp2·ep2 {a[step]:.9g}, 1 process {b[step]:.9g}, relative {rel:.2e} (tol {tol})")
    assert rel <= tol
PY
    fail "losses after resharding differ"
}

case $scenario in
exact | exact_zero1 | exact_bf16 | exact_options)
  np=4 layout=(--set parallel.ep=2 --set train.steps=30)
  if [[ $scenario == exact_zero1 ]]; then
    np=2 layout=(--set parallel.zero1=true --set train.steps=30)
  fi
  if [[ $scenario == exact_bf16 ]]; then
    layout+=(--set model.precision=bf16)
  fi
  if [[ $scenario == exact_options ]]; then
    layout+=(--set model.ffn=moe --set model.granularity=2 --set model.n_shared_experts=1
             --set model.d_shared=16 --set model.router_score=sigmoid
             --set model.z_loss_coeff=0.01 --set model.expert_bias_rate=0.01)
  fi
  "${mpirun[@]}" -np $np "$train" "${common[@]}" "${layout[@]}" --set "checkpoint.dir=$work/a" \
      --set "logging.metrics_file=$work/a.jsonl" > "$work/a.log" 2>&1 ||
    { cat "$work/a.log"; fail "the uninterrupted run failed"; }
  b=(--set "checkpoint.dir=$work/b" --set checkpoint.interval=5
     --set "logging.metrics_file=$work/b.jsonl")
  "${mpirun[@]}" -np $np "$train" "${common[@]}" "${layout[@]}" "${b[@]}" > "$work/b1.log" 2>&1 &
  mpirun_pid=$!
  wait_for "$work/b/step_5/COMMITTED" 60 || { cat "$work/b1.log"; fail "no step_5 checkpoint"; }
  victim=$(rank_pid "$work/b" $((np - 1))) || fail "rank $((np - 1)) not found"
  kill -9 "$victim"
  wait "$mpirun_pid" && fail "run B was not interrupted (it finished before the kill)"
  [[ -e $work/b/step_30 ]] && fail "run B reached step 30 before the kill"
  "${mpirun[@]}" -np $np "$train" "${common[@]}" "${layout[@]}" "${b[@]}" --resume auto \
      > "$work/b2.log" 2>&1 || { cat "$work/b2.log"; fail "the resumed run failed"; }
  resumed=$(grep -o "resumed from step [0-9]*" "$work/b2.log") ||
    { cat "$work/b2.log"; fail "no 'resumed from step N'"; }
  echo "killed rank $((np - 1)) (pid $victim) after step_5 was committed; $resumed"
  diff <(losses "$work/a.jsonl") <(losses "$work/b.jsonl") ||
    fail "the per-step losses differ from the uninterrupted run"
  [[ $(losses "$work/b.jsonl" | wc -l) -eq 30 ]] || fail "not 30 logged steps"
  n=0
  for f in "$work"/a/step_30/rank_*.bin; do
    cmp "$f" "$work/b/step_30/$(basename "$f")" || fail "final state differs: $(basename "$f")"
    n=$((n + 1))
  done
  [[ $n -ge 1 ]] || fail "no shard files in the final checkpoint"
  echo "OK: 30 losses identical, $n final shard files identical byte for byte"
  ;;
sigterm)
  run=(--set parallel.ep=2 --set train.steps=100000 --set "checkpoint.dir=$work/c"
       --set "logging.metrics_file=$work/c.jsonl")
  "${mpirun[@]}" -np 4 "$train" "${common[@]}" "${run[@]}" > "$work/c1.log" 2>&1 &
  mpirun_pid=$!
  for ((i = 0; i < 600; ++i)); do
    [[ -s $work/c.jsonl && $(wc -l < "$work/c.jsonl") -ge 3 ]] && break
    sleep 0.1
  done
  victim=$(rank_pid "$work/c" 1) || { cat "$work/c1.log"; fail "rank 1 not found"; }
  start=$(date +%s)
  kill -TERM "$victim"
  wait "$mpirun_pid" || { cat "$work/c1.log"; fail "mpirun exited $? after SIGTERM (want 0)"; }
  echo "exited 0 $(($(date +%s) - start)) s after SIGTERM to rank 1"
  stopped=$(grep -o "stopped on request after step [0-9]*" "$work/c1.log") ||
    { cat "$work/c1.log"; fail "no 'stopped on request'"; }
  step=${stopped##* }
  [[ -e $work/c/step_$step/COMMITTED ]] || fail "step_$step is not committed"
  echo "$stopped; step_$step committed"
  # Finish: 3 more steps from the saved one.
  "${mpirun[@]}" -np 4 "$train" "${common[@]}" "${run[@]}" --set "train.steps=$((step + 3))" \
      --resume auto > "$work/c2.log" 2>&1 || { cat "$work/c2.log"; fail "resume failed"; }
  grep -q "resumed from step $step " "$work/c2.log" || { cat "$work/c2.log"; fail "not resumed"; }
  echo "OK"
  ;;
reshard)
  run=(--set train.steps=8 --set checkpoint.interval=4 --set "checkpoint.dir=$work/r")
  reshard_to_one_process 1e-5 1e-4 "${run[@]}"
  for bad in model.n_experts=8 model.d_model=48; do
    "$train" "${common[@]}" "${run[@]}" --set "$bad" --set "checkpoint.dir=$work/bad" \
        --resume "$work/r/step_4" > "$work/bad.log" 2>&1 && fail "$bad was not refused"
    msg=$(grep -m1 "resuming" "$work/bad.log") || { cat "$work/bad.log"; fail "$bad: no message"; }
    echo "$bad refused: $msg"
    grep -Eq "(layers\.|embed|head|norm)[A-Za-z0-9_.]*" <<< "$msg" ||
      fail "$bad: the message does not name a tensor"
  done
  "${mpirun[@]}" -np 4 "$train" "${common[@]}" "${run[@]}" --set parallel.ep=4 \
      --set "checkpoint.dir=$work/e4" --set "logging.metrics_file=$work/e4.jsonl" \
      > "$work/e4.log" 2>&1 || { cat "$work/e4.log"; fail "the ep4 run failed"; }
  "${mpirun[@]}" -np 4 "$train" "${common[@]}" "${run[@]}" --set parallel.ep=2 \
      --set "checkpoint.dir=$work/e2" --set "logging.metrics_file=$work/e2.jsonl" \
      --resume "$work/e4/step_4" > "$work/e2.log" 2>&1 ||
    { cat "$work/e2.log"; fail "ep2·dp2 could not resume the ep4 checkpoint"; }
  python3 - "$work/e4.jsonl" "$work/e2.jsonl" <<'PY' || fail "ep4 → ep2·dp2 losses differ"
import json, sys
def load(path):
    return {j["step"]: j["loss"] for j in map(json.loads, filter(str.strip, open(path)))}
a, b = load(sys.argv[1]), load(sys.argv[2])
rel = abs(a[5] - b[5]) / abs(a[5])
print(f"ep4 → ep2·dp2: step 5 loss {a[5]:.9g} vs {b[5]:.9g}, relative {rel:.2e} (tol 1e-5)")
assert sorted(b) == [5, 6, 7, 8] and rel <= 1e-5
PY
  echo "OK"
  ;;
reshard_bf16)
  run=(--set train.steps=8 --set checkpoint.interval=4 --set "checkpoint.dir=$work/r"
       --set model.precision=bf16)
  reshard_to_one_process 0.00390625 0.00390625 "${run[@]}"  # 2⁻⁸
  echo "OK"
  ;;
*)
  fail "unknown scenario $scenario"
  ;;
esac

#!/usr/bin/env bash
# aoetron-study submitting its runs as Slurm jobs (execution.launcher: "slurm";
# docs/scaling_study.md, "Batch systems") on a private Slurm (scripts/slurm/local_slurm.sh):
#   1. a two-point study (tiny AoE and MoE, 2 ranks each) runs through scripts/slurm/aoetron.sbatch;
#      aoetron-study is stopped with SIGTERM while the first job trains: it has the job's ranks
#      save a checkpoint (scancel --signal=TERM) and exits 1 ("stopped");
#   2. `aoetron-study run` again: the first run resumes from its checkpoint as a new job, the
#      second runs; both finish; each run's log holds its jobs' output;
#   3. the report lists both as finished with the metrics' last step and loss.
# Skipped (exit 77) where Slurm's daemons are not installed.
#
#   run_slurm_study.sh AOETRON_STUDY AOETRON_TRAIN
set -uo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: $0 AOETRON_STUDY AOETRON_TRAIN" >&2
  exit 2
fi
study=$(realpath "$1") train=$(realpath "$2")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
slurm_test_name=slurm_study
source "$root/tests/slurm/slurm_test_env.sh"

cat > "$work/spec.textproto" <<SPEC
name: "slurm_tiny"
base_config: "$root/configs/tiny_aoe.textproto"
overrides: "schedule.warmup_steps=0"
overrides: "logging.interval=1"
overrides: "train.eval_interval=100"
overrides: "train.eval_steps=2"
overrides: "parallel.threads=1"
overrides: "checkpoint.interval=20"
execution { launcher: "slurm" ranks: 2 train_binary: "$train" }
point { name: "first" ffn: "aoe" overrides: "train.steps=400" }
point { name: "second" ffn: "moe" overrides: "train.steps=30" }
out_dir: "$work/out"
SPEC

"$study" run "$work/spec.textproto" > "$work/run1.log" 2>&1 &
study_pid=$!
for ((i = 0; i < 1200; ++i)); do
  [[ -e $work/out/first/checkpoints/step_40/COMMITTED ]] && break
  kill -0 "$study_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -e $work/out/first/checkpoints/step_40/COMMITTED ]] ||
  { cat "$work/run1.log" "$work/out/first/train.log"; fail "the first run saved no step_40"; }
kill -TERM "$study_pid"
wait "$study_pid" && fail "the stopped study exited 0"
grep -q "stopped" "$work/run1.log" || { cat "$work/run1.log"; fail "the study did not say it stopped"; }
stopped=$(grep -o "stopped on request after step [0-9]*" "$work/out/first/train.log") ||
  { cat "$work/out/first/train.log"; fail "the first run's job did not stop on request"; }
echo "first run: $stopped"

"$study" run "$work/spec.textproto" > "$work/run2.log" 2>&1 ||
  { cat "$work/run2.log"; tail -30 "$work"/out/*/train.log; fail "the restarted study failed"; }
grep -q "resumed from step ${stopped##* } " "$work/out/first/train.log" ||
  { cat "$work/out/first/train.log"; fail "the first run did not resume from its checkpoint"; }
for run in first second; do
  grep -q "state: finished" "$work/out/$run/status.textproto" ||
    { cat "$work/out/$run/status.textproto"; fail "$run is not finished"; }
  grep -q "^aoetron.sbatch: job [0-9]" "$work/out/$run/train.log" ||
    fail "$run's log has no job output"
done
echo "restarted: $(grep -c '^aoetron.sbatch: job' "$work/out/first/train.log") job(s) for the first run"

"$study" report "$work/spec.textproto" > "$work/report.log" 2>&1 ||
  { cat "$work/report.log"; fail "report failed"; }
python3 - "$work/out" <<'PY' || fail "the report does not match the metrics"
import csv, json, sys
out = sys.argv[1]
rows = {r["name"]: r for r in csv.DictReader(open(f"{out}/report/report.csv"))}
for name, steps in (("first", 400), ("second", 30)):
    last = {}
    for line in open(f"{out}/{name}/metrics.jsonl"):
        j = json.loads(line)
        last[j["step"]] = j
    r = rows[name]
    assert r["state"] == "finished", r
    assert int(r["steps"]) == steps == max(last), (r["steps"], max(last))
    assert float(r["final_loss"]) == last[steps]["loss"], (r["final_loss"], last[steps]["loss"])
    print(f"{name}: finished, {steps} steps, final loss {r['final_loss']}")
PY
echo "OK"

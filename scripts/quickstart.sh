#!/usr/bin/env bash
# The quickstart: installs what the build needs, builds aoetron, prepares the KJV corpus
# (scripts/setup.sh), then trains a small Autonomy-of-Experts model on it with two data-parallel
# ranks (configs/quickstart_aoe.textproto: 200 steps, about 2 minutes on two cores) in two
# parts, as a preempted job would: the first part stops after step 100 (--stop_after_step, what
# SIGTERM does at any step) and saves a checkpoint; the second continues it with --resume auto.
# Prints "resumed from step 100", the loss curve's ends and the validation loss.
#
#   scripts/quickstart.sh                       # everything
#   AOETRON_QUICKSTART_RANKS=1 scripts/quickstart.sh   # one process instead of mpirun -np 2
#   scripts/quickstart.sh --set train.steps=50  # extra flags go to aoetron-train
#
# Metrics (one JSON line per logged step) go to runs/quickstart/metrics.jsonl; checkpoints to
# runs/quickstart/checkpoints (every 50 steps, the newest 2 kept).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

ranks=${AOETRON_QUICKSTART_RANKS:-2}
metrics=runs/quickstart/metrics.jsonl
checkpoints=runs/quickstart/checkpoints
mkdir -p "$(dirname "$metrics")"
rm -rf "$metrics" "$checkpoints"
train=(build/bin/aoetron-train --config configs/quickstart_aoe.textproto
       --set "logging.metrics_file=$metrics" --set "checkpoint.dir=$checkpoints"
       --set logging.progress=always "$@")
run() {
  if [[ $ranks -gt 1 ]]; then
    # --oversubscribe: more ranks than cores is fine here; --allow-run-as-root is needed as root
    # (and ignored otherwise).
    mpirun --oversubscribe --allow-run-as-root -np "$ranks" "${train[@]}" "$@"
  else
    "${train[@]}" "$@"
  fi
}
start=$(date +%s)
echo "quickstart: part 1 on $ranks rank(s), stopping after step 100: ${train[*]} --stop_after_step 100"
run --stop_after_step 100
echo "quickstart: part 2, continuing from the newest checkpoint: ... --resume auto"
log=runs/quickstart/resume.log
run --resume auto 2>&1 | tee "$log"
grep -o "resumed from step [0-9]*" "$log" | sed "s/^/quickstart: /" ||
  { echo "quickstart: FAILED: did not resume" >&2; exit 1; }
end=$(date +%s)

# The run must have learned something and reported a validation loss.
python3 - "$metrics" "$((end - start))" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
first, last = lines[0], lines[-1]
vals = [(l["step"], l["val_loss"]) for l in lines if l.get("val_loss") is not None]
print(f"quickstart: {sys.argv[2]} s; loss {first['loss']:.3f} at step {first['step']} -> "
      f"{last['loss']:.3f} at step {last['step']}; val_loss " +
      ", ".join(f"{v:.3f} (step {s})" for s, v in vals))
if not vals:
    sys.exit("quickstart: FAILED: no validation loss was reported")
if not last["loss"] < first["loss"] - 1.0:
    sys.exit("quickstart: FAILED: the loss did not fall by at least 1 nat")
print("quickstart: OK (metrics in " + sys.argv[1] + ")")
PY

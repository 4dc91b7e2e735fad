#!/usr/bin/env bash
# aoetron-train's expert-parallel logging under mpirun: AoE on ep 2 (np 2), 3 logged steps. Every
# metrics line must carry the dispatch figures — payload bytes > 0 and equal to the analytic
# minimum (the dispatcher sends x once per destination rank), all exchange bytes above the
# payload, the busiest rank at least the mean — the per-layer max/mean load over the ep ranks
# (≥ 1), and time inside the ep all-to-alls (comm_ep_ms > 0, part of comm_ms).
#   run_expert_logging.sh MPIEXEC AOETRON_TRAIN
set -uo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 MPIEXEC AOETRON_TRAIN" >&2; exit 2; }
mpiexec=$1 train=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
"$mpiexec" --oversubscribe --allow-run-as-root -np 2 "$train" \
    --set model.vocab_size=64 --set model.d_model=32 --set model.n_layers=2 \
    --set model.n_heads=2 --set model.seq_len=32 --set model.d_ffn=64 --set model.ffn=aoe \
    --set model.n_experts=4 --set model.d_low=8 --set data.source=synthetic \
    --set train.micro_batch_size=2 --set train.global_batch_size=8 --set train.steps=3 \
    --set train.eval_interval=0 --set schedule.warmup_steps=1 --set logging.interval=1 \
    --set logging.progress=always --set parallel.threads=1 --set parallel.ep=2 \
    --set "logging.metrics_file=$work/m.jsonl" > "$work/log" 2>&1 ||
  { cat "$work/log"; echo "FAIL: the run failed"; exit 1; }
grep -q "| ep [0-9.]* MB/rank (min [0-9.]*), all [0-9.]* MB, ranks ×" "$work/log" ||
  { cat "$work/log"; echo "FAIL: no ep figures in the progress line"; exit 1; }
python3 - "$work/m.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 3, f"{len(lines)} metrics lines, want 3"
for m in lines:
    step = m["step"]
    assert m["ep_dispatch_payload_bytes"] > 0, (step, m)
    assert m["ep_dispatch_payload_bytes"] == m["ep_dispatch_minimum_bytes"], (step, m)
    assert m["ep_exchange_bytes"] > m["ep_dispatch_payload_bytes"], (step, m)
    assert m["ep_exchange_bytes_max"] >= m["ep_exchange_bytes"], (step, m)
    assert len(m["ep_load_max_over_mean"]) == 2, (step, m)
    assert all(x >= 1.0 for x in m["ep_load_max_over_mean"]), (step, m)
    assert m["comm_ep_ms"] > 0 and m["comm_ms"] >= m["comm_ep_ms"], (step, m)
print(f"OK: {len(lines)} steps; payload {lines[-1]['ep_dispatch_payload_bytes']:.0f} B = minimum, "
      f"load max/mean {lines[-1]['ep_load_max_over_mean']}")
PY

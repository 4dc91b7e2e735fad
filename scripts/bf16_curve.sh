#!/usr/bin/env bash
# Mixed precision against fp32 on a real corpus: trains the quickstart model
# (configs/quickstart_aoe.textproto, KJV, 200 steps) twice from the same seed and data, once with
# model.precision=fp32 and once with bf16, and compares the two loss curves step by step.
#
#   scripts/bf16_curve.sh                 # both runs under mpirun -np 2 (scripts/setup.sh first)
#   scripts/bf16_curve.sh --set train.steps=50   # extra flags go to both runs
#
# The tolerance, derived from bf16's precision (docs/training.md, "Precision"): every bf16
# rounding on the forward path perturbs what it rounds by at most u = 2⁻⁸ relative. A block has
# R_block = 16 of them: 5 weights' compute copies (qkv, output projection and the FFN's three)
# and 11 outputs (2 norms, qkv, attention, projection, the FFN's two input GEMMs, SwiGLU, its
# output GEMM, 2 residual adds); the model adds the final norm, the LM head's weight and the
# logits: R = 16·n_layers + 3. Independent roundings add like a random walk, so the loss of the
# same weights moves by about √R·u relative; the curves may differ by that at every logged step
# (and the held-out losses likewise). For the quickstart's 4 layers: R = 67, √R·u = 3.2%. A gap
# beyond it means the policy lost precision somewhere (a bf16 reduction, a bf16 master weight,
# bf16 statistics), not noise.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
ranks=${AOETRON_RANKS:-2}
out=runs/bf16_curve
mkdir -p "$out"
for precision in fp32 bf16; do
  rm -f "$out/$precision.jsonl"
  echo "bf16_curve: training the quickstart model in $precision" >&2
  start=$(date +%s)
  mpirun --oversubscribe --allow-run-as-root -np "$ranks" build/bin/aoetron-train \
    --config configs/quickstart_aoe.textproto --set "model.precision=$precision" \
    --set "logging.metrics_file=$out/$precision.jsonl" --set checkpoint.dir= \
    --set logging.progress=never "$@" >/dev/null
  echo "bf16_curve: $precision took $(( $(date +%s) - start )) s" >&2
done
python3 - "$out/fp32.jsonl" "$out/bf16.jsonl" configs/quickstart_aoe.textproto "$@" <<'PY'
import json, math, re, sys
fp32 = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bf16 = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
layers = int(re.search(r"n_layers:\s*(\d+)", open(sys.argv[3]).read()).group(1))
for flag in sys.argv[4:]:
    m = re.match(r"model\.n_layers=(\d+)", flag)
    if m:
        layers = int(m.group(1))
rounding = 2.0 ** -8
tolerance = math.sqrt(16 * layers + 3) * rounding
print(f"bf16_curve: tolerance sqrt(16*{layers}+3) * 2^-8 = {tolerance:.4f} relative")
print(f"{'step':>5} {'fp32 loss':>10} {'bf16 loss':>10} {'gap':>9} {'relative':>9}")
worst = 0.0
failed = []
for a, b in zip(fp32, bf16):
    assert a["step"] == b["step"], (a["step"], b["step"])
    for key in ("loss", "val_loss"):
        if a.get(key) is None:
            continue
        gap = b[key] - a[key]
        rel = abs(gap) / abs(a[key])
        worst = max(worst, rel)
        print(f"{a['step']:>5} {a[key]:>10.4f} {b[key]:>10.4f} {gap:>+9.4f} {rel:>9.5f}"
              + ("  (val)" if key == "val_loss" else ""))
        if rel > tolerance:
            failed.append((a["step"], key, rel))
mean_gap = sum(b["loss"] - a["loss"] for a, b in zip(fp32, bf16)) / len(fp32)
print(f"bf16_curve: {len(fp32)} logged steps, worst relative gap {worst:.5f}, "
      f"mean gap {mean_gap:+.4f} nats (bf16 − fp32), tolerance {tolerance:.4f}")
if failed:
    sys.exit(f"bf16_curve: FAILED beyond the tolerance at {failed}")
print("bf16_curve: OK")
PY

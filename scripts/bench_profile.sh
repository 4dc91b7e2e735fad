#!/usr/bin/env bash
# Where a training step's time goes: `aoetron-train --bench` under `perf record`, the samples
# grouped by kernel family (GEMM, attention, SwiGLU, ...), with attention's share of the model
# FLOPs beside its share of the time (models/flop_count.h counts attention as 6·L·T·d per token,
# QKᵀ and PV with the causal half not discounted, as Megatron does).
#
#   scripts/bench_profile.sh configs/bench_aoe_small.textproto [--set k=v ...]
#   AOETRON_CPU_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 scripts/bench_profile.sh ...  # the AVX2 paths
#
# Environment: BUILD_DIR (default build), FREQ (samples per second, 1999), OUT (perf data and
# the full report; default a temporary folder). Needs perf (Debian: linux-perf) and permission
# to profile (root, or kernel.perf_event_paranoid ≤ 1).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: scripts/bench_profile.sh CONFIG [--set k=v ...]}
shift
BUILD_DIR=${BUILD_DIR:-build}
FREQ=${FREQ:-1999}
OUT=${OUT:-$(mktemp -d /tmp/aoetron_profile.XXXXXX)}
mkdir -p "$OUT"
train="$BUILD_DIR/bin/aoetron-train"
command -v perf >/dev/null || { echo "bench_profile: perf is not installed (linux-perf)" >&2; exit 1; }
[[ -x $train ]] || { echo "bench_profile: $train not found; build first" >&2; exit 1; }

"$train" --config "$config" "$@" --print_config > "$OUT/config.txt"
perf record -q -F "$FREQ" -o "$OUT/perf.data" -- "$train" --config "$config" "$@" --bench \
  > "$OUT/bench.json" 2> "$OUT/bench.err" || { cat "$OUT/bench.err" >&2; exit 1; }
perf report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio -q 2>/dev/null \
  > "$OUT/report.txt"
/usr/bin/python3 - "$OUT" <<'PY'
import json, re, sys
out = sys.argv[1]
bench = {}
for line in open(f"{out}/bench.json"):
    if line.startswith("{"):
        bench = json.loads(line)
text = open(f"{out}/config.txt").read()
def field(name):
    match = re.search(rf"\b{name}: (\d+)", text)
    return int(match.group(1)) if match else 0
layers, d, seq = field("n_layers"), field("d_model"), field("seq_len")
families = [
    ("GEMM (oneDNN, JIT code)", r"libdnnl|\[JIT\]|^\[unknown\]|//anon|jit_|dnnl"),
    ("attention", r"CausalAttention"),
    ("SwiGLU", r"SwiGlu"),
    ("cross-entropy", r"CrossEntropy"),
    ("softmax", r"Softmax"),
    ("RMSNorm", r"RmsNorm"),
    ("AdamW", r"AdamW"),
    ("RoPE", r"Rope"),
    ("embedding", r"Embedding"),
    ("routing, AoE scoring, permutes", r"TopK|GroupedL2|AoeGate|ExpertPermute|ExpertSlices|ColumnBlock|Combine|Gather|Scatter|Routing|Dispatch"),
    ("copies, fills, elementwise", r"Fill|Copy|Convert|AddInto|Axpy|Scale|SumSquares|memcpy|memset|memmove"),
    ("OpenMP runtime (waiting)", r"libgomp"),
    ("kernel", r"\[kernel|\[k\]"),
]
shares = {name: 0.0 for name, _ in families}
shares["other"] = 0.0
others = []
for line in open(f"{out}/report.txt"):
    match = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(.*)", line)
    if not match:
        continue
    pct, dso, sym = float(match.group(1)), match.group(2), match.group(3)
    where = dso + " " + sym
    for name, pattern in families:
        if re.search(pattern, where):
            shares[name] += pct
            break
    else:
        shares["other"] += pct
        others.append((pct, where))
flops = bench.get("flops_per_step", 0.0)
tokens = bench.get("tokens_per_step", 0)
attention_flops = 6.0 * layers * seq * d * tokens
print(f"bench: {bench.get('tokens_per_s', 0):.0f} tokens/s, "
      f"{bench.get('model_flops_per_s', 0) / 1e9:.1f} GFLOP/s model, seq {seq}, "
      f"{bench.get('threads', '?')} threads")
print("| family | share of samples |")
print("|---|---|")
for name, pct in sorted(shares.items(), key=lambda kv: -kv[1]):
    if pct >= 0.05:
        print(f"| {name} | {pct:.1f}% |")
if flops:
    share = attention_flops / flops
    print(f"attention: {shares['attention']:.1f}% of the time, {100 * share:.1f}% of the model "
          f"FLOPs (6·{layers}·{seq}·{d} per token): time/FLOP share "
          f"{shares['attention'] / (100 * share):.2f}")
print("largest unclassified:", "; ".join(f"{p:.1f}% {w[:60]}" for p, w in sorted(others)[::-1][:4]))
print(f"perf data and the full report: {out}")
PY

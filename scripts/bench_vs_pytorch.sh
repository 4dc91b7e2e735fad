#!/usr/bin/env bash
# Training throughput of aoetron against a plain PyTorch eager baseline, same model shape
# (configs/bench_<ffn>_small.textproto: vocab 8192, d 256, 4 layers, 4 heads, d_ffn 1024,
# 8 experts top-2, d_low 64, seq 256, batch 8), for dense, router MoE and AoE, one after another.
#
#   scripts/bench_vs_pytorch.sh                 # all three kinds, 2 threads
#   FFNS="aoe moe" THREADS=1 scripts/bench_vs_pytorch.sh
#
# Environment: BUILD_DIR (default build), THREADS (2), FFNS ("dense moe aoe"),
# PT_WARMUP / PT_STEPS (PyTorch warm-up and timed steps: 3 / 10), ISA (default: what the CPU
# has; ISA=avx2 on an AVX-512 machine measures both sides on their AVX2 code: aoetron with
# AOETRON_CPU_ISA=avx2 and ONEDNN_MAX_CPU_ISA=AVX2, the tuned PyTorch with
# OPENBLAS_CORETYPE=Haswell instead of SkylakeX), TUNED_CORETYPE (the tuned run's OpenBLAS core).
#
# PyTorch runs twice per kind: as shipped (every OPENBLAS_* variable removed: what a user gets
# from Debian's python3-torch, whose OpenBLAS may misdetect this CPU, MACHINE.md) and with
# OPENBLAS_CORETYPE=SkylakeX (OpenBLAS's tuned kernels). The kernel family OpenBLAS chose is
# printed per run. aoetron needs no variable (oneDNN detects the CPU itself).
# Timings on a shared 2-core machine are noisy: the 1-minute load average before each run is
# printed with the table; compare runs only at similar load.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
THREADS=${THREADS:-2}
FFNS=${FFNS:-"dense moe aoe"}
PT_WARMUP=${PT_WARMUP:-3}
PT_STEPS=${PT_STEPS:-10}
ISA=${ISA:-}
TUNED_CORETYPE=${TUNED_CORETYPE:-$([[ $ISA == avx2 ]] && echo Haswell || echo SkylakeX)}
OURS_ENV=()
[[ $ISA == avx2 ]] && OURS_ENV=(AOETRON_CPU_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2)
PYTHON=/usr/bin/python3  # the interpreter with python3-torch
TRAIN="$BUILD_DIR/bin/aoetron-train"

if [[ ! -x "$TRAIN" ]]; then
  echo "bench_vs_pytorch: $TRAIN not found; build first (scripts/setup.sh)" >&2
  exit 1
fi
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "bench_vs_pytorch: $PYTHON cannot import torch (apt-get install python3-torch)" >&2
  exit 1
fi

# The last line of stdin that parses as a JSON object, or "{}".
last_json() {
  "$PYTHON" -c '
import json, sys
found = "{}"
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        try:
            json.loads(line)
            found = line
        except ValueError:
            pass
print(found)'
}

# json_field JSON KEY: the value, or "nan" if missing.
json_field() {
  "$PYTHON" -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2], "nan"))' "$1" "$2"
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

# Runs the PyTorch baseline with no OPENBLAS_* variables plus the given assignments.
pytorch_run() {
  local ffn=$1
  shift
  local clean=()
  while IFS='=' read -r name _; do
    [[ $name == OPENBLAS_* ]] && clean+=(-u "$name")
  done < <(env)
  env "${clean[@]}" "$@" "$PYTHON" scripts/pytorch_baseline.py --ffn "$ffn" --threads "$THREADS" \
    --warmup "$PT_WARMUP" --steps "$PT_STEPS" | last_json
}

declare -A ours pt_shipped pt_tuned ours_step load_ours load_pt core_shipped core_tuned
for ffn in $FFNS; do
  config="configs/bench_${ffn}_small.textproto"
  echo "== $ffn: aoetron ($config, --bench)" >&2
  load_ours[$ffn]=$(loadavg)
  line=$(env "${OURS_ENV[@]}" "$TRAIN" --config "$config" --bench | tee /dev/stderr | last_json) ||
    line="{}"
  ours[$ffn]=$(json_field "$line" tokens_per_s)
  ours_step[$ffn]=$(json_field "$line" step_s)

  echo "== $ffn: PyTorch eager, as shipped" >&2
  load_pt[$ffn]=$(loadavg)
  line=$(pytorch_run "$ffn") || line="{}"
  echo "$line" >&2
  pt_shipped[$ffn]=$(json_field "$line" tokens_per_s)
  core_shipped[$ffn]=$(json_field "$line" openblas_corename)

  echo "== $ffn: PyTorch eager, OPENBLAS_CORETYPE=$TUNED_CORETYPE" >&2
  line=$(pytorch_run "$ffn" OPENBLAS_CORETYPE="$TUNED_CORETYPE") || line="{}"
  echo "$line" >&2
  pt_tuned[$ffn]=$(json_field "$line" tokens_per_s)
  core_tuned[$ffn]=$(json_field "$line" openblas_corename)
done

torch_version=$("$PYTHON" -c "import torch; print(torch.__version__)")
echo
echo "Training tokens/s, $THREADS threads (PyTorch $torch_version eager, f32)${ISA:+, ISA $ISA}"
printf "%-6s %12s %16s %18s %10s %10s %12s\n" ffn "aoetron" "PyTorch shipped" \
  "PyTorch $TUNED_CORETYPE" "x shipped" "x $TUNED_CORETYPE" "load (o/pt)"
for ffn in $FFNS; do
  "$PYTHON" - "$ffn" "${ours[$ffn]}" "${pt_shipped[$ffn]}" "${pt_tuned[$ffn]}" \
    "${load_ours[$ffn]}" "${load_pt[$ffn]}" <<'EOF'
import math, sys
ffn, ours, shipped, tuned, lo, lp = sys.argv[1], *map(float, sys.argv[2:5]), *sys.argv[5:]
ratio = lambda a, b: f"{a / b:.2f}" if b > 0 and not math.isnan(a) else "n/a"
print(f"{ffn:6s} {ours:12.0f} {shipped:16.0f} {tuned:18.0f} {ratio(ours, shipped):>10s} "
      f"{ratio(ours, tuned):>10s} {lo + '/' + lp:>12s}")
EOF
done
for ffn in $FFNS; do
  echo "OpenBLAS kernels ($ffn): as shipped ${core_shipped[$ffn]}, with the variable ${core_tuned[$ffn]}"
done
if [[ -n "${ours_step[aoe]:-}" && -n "${ours_step[moe]:-}" ]]; then
  "$PYTHON" -c 'import sys; a, m = map(float, sys.argv[1:]); print(f"aoetron AoE/MoE step time: {a / m:.3f} ({a:.3f} s / {m:.3f} s)")' \
    "${ours_step[aoe]}" "${ours_step[moe]}"
fi

#!/usr/bin/env bash
# The GPU checks of the CUDA backend in one command (docs/cuda.md): build, run the gpu-labelled
# tests (every kernel against the CPU backend, cuBLASLt GEMM, the NCCL communicator), run the GPU
# benchmark, time PyTorch's bf16 GEMM and copy on the same card for reference, print a table.
#
#   scripts/gpu_check.sh                  configure + build (Release) in build-gpu/, then run
#   scripts/gpu_check.sh --pack DIR       build here (no GPU needed) and pack the three binaries
#                                         with the non-CUDA shared libraries they need into DIR
#   scripts/gpu_check.sh --prebuilt DIR   run a packed DIR (for a GPU machine that has CUDA, CMake
#                                         and PyTorch but not the project's C++ dependencies)
# Environment: BUILD (build folder, default build-gpu), BUILD_TYPE (default Release), CUDA_ARCHS
# (default 90), OUT (logs; default $BUILD/gpu_check), JOBS (build parallelism, default nproc).
# Exit status: non-zero when a test failed or a step could not run; the table says which.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${BUILD:-$ROOT/build-gpu}"
MODE=build
DIR=""
case "${1:-}" in
  --pack) MODE=pack; DIR="${2:?--pack needs a folder}" ;;
  --prebuilt) MODE=prebuilt; DIR="$(cd "${2:?--prebuilt needs a folder}" && pwd)" ;;
  "") ;;
  *) echo "usage: $0 [--pack DIR | --prebuilt DIR]" >&2; exit 2 ;;
esac
OUT="${OUT:-$BUILD/gpu_check}"
mkdir -p "$OUT"
TARGETS=(cuda_ops_test nccl_test gpu_bench)

build() {
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" -DAOETRON_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" >"$OUT/configure.log" 2>&1 ||
    { tail -30 "$OUT/configure.log"; echo "configure failed (log: $OUT/configure.log)"; exit 1; }
  local started=$SECONDS
  cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" --target "${TARGETS[@]}" >"$OUT/build.log" 2>&1 ||
    { grep -E "error|Error" "$OUT/build.log" | head -30; echo "build failed (log: $OUT/build.log)"; exit 1; }
  echo "built ${TARGETS[*]} in $((SECONDS - started)) s"
}

if [[ $MODE == pack ]]; then
  build
  mkdir -p "$DIR/bin" "$DIR/lib"
  for t in "${TARGETS[@]}"; do
    [[ -x $BUILD/bin/$t ]] && cp "$BUILD/bin/$t" "$DIR/bin/" && strip --strip-debug "$DIR/bin/$t"
  done
  # Shared libraries outside the CUDA toolkit, libc and MPI (the GPU machine brings its own).
  ldd "$DIR"/bin/* | awk '/=> \// {print $3}' | sort -u |
    grep -vE 'libc\.so|libm\.so|libdl|libpthread|librt|ld-linux|libstdc\+\+|libgcc_s|/cuda|libcu|libnccl|libmpi|libopen-|libpmix|libhwloc|libevent' |
    while read -r lib; do cp -L "$lib" "$DIR/lib/"; done
  du -sh "$DIR"
  echo "packed into $DIR; on the GPU machine: scripts/gpu_check.sh --prebuilt $DIR"
  exit 0
fi

if [[ $MODE == build ]]; then
  build
  BIN="$BUILD/bin"
else
  BIN="$DIR/bin"
  # The packed libraries, then the CUDA libraries of this machine: the toolkit's, and those of the
  # nvidia-* Python wheels next to PyTorch (cuBLAS, the CUDA runtime, NCCL).
  extra="$DIR/lib"
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [[ -d $d ]] && extra="$extra:$d"; done
  wheels=$(python3 -c 'import nvidia, os; p = nvidia.__path__[0]; print(":".join(os.path.join(p, d, "lib") for d in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p, d, "lib"))))' 2>/dev/null || true)
  [[ -n $wheels ]] && extra="$extra:$wheels"
  export LD_LIBRARY_PATH="$extra:${LD_LIBRARY_PATH:-}"
  for t in "${TARGETS[@]}"; do
    missing=$(ldd "$BIN/$t" 2>/dev/null | grep "not found" | awk '{print $1}' | tr '\n' ' ')
    [[ -n $missing ]] && echo "note: $t lacks shared libraries here: $missing"
  done
fi

declare -A STATUS
echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 |
  tee "$OUT/device.txt"

echo "== kernel tests (cuda_ops_test)"
"$BIN/cuda_ops_test" --gtest_output="xml:$OUT/cuda_ops_test.xml" >"$OUT/cuda_ops_test.log" 2>&1
rc=$?
grep -E "^\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ test" "$OUT/cuda_ops_test.log"
STATUS[kernels]=$([[ $rc == 0 ]] && echo "passed" || echo "FAILED (rc $rc)")
if grep -q "no GPU visible" "$OUT/cuda_ops_test.log"; then
  STATUS[kernels]="SKIPPED: $(grep -m1 "no GPU visible" "$OUT/cuda_ops_test.log")"
fi

echo "== NCCL communicator (nccl_test)"
gpus=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU" || true)
np=$(( gpus >= 2 ? 2 : 1 ))
nccl_missing=$(ldd "$BIN/nccl_test" 2>/dev/null | grep "not found" | awk '{print $1}' | tr '\n' ' ')
if [[ ! -x $BIN/nccl_test ]]; then
  STATUS[nccl]="not built (NCCL or MPI missing at configure)"
elif [[ -n $nccl_missing ]]; then
  STATUS[nccl]="not run: shared libraries missing here: $nccl_missing"
elif command -v mpirun >/dev/null; then
  mpirun --oversubscribe --allow-run-as-root -np "$np" "$BIN/nccl_test" --gtest_color=no \
    >"$OUT/nccl_test.log" 2>&1
  rc=$?
  STATUS[nccl]="np $np: $([[ $rc == 0 ]] && echo passed || echo "FAILED (rc $rc)")"
else
  "$BIN/nccl_test" --gtest_color=no >"$OUT/nccl_test.log" 2>&1  # MPI singleton: a group of one
  rc=$?
  STATUS[nccl]="np 1 without mpirun: $([[ $rc == 0 ]] && echo passed || echo "FAILED (rc $rc)")"
fi
if grep -q "needs one GPU per rank" "$OUT/nccl_test.log" 2>/dev/null; then
  STATUS[nccl]="SKIPPED: $(grep -m1 -o "needs one GPU per rank.*" "$OUT/nccl_test.log")"
fi
grep -hE "^\[  (PASSED|FAILED|SKIPPED) +\]" "$OUT/nccl_test.log" 2>/dev/null | head

echo "== benchmark (gpu_bench)"
"$BIN/gpu_bench" >"$OUT/gpu_bench.log" 2>&1
rc=$?
STATUS[bench]=$([[ $rc == 0 ]] && echo "ran" || echo "FAILED (rc $rc)")

echo "== PyTorch on the same card (reference ceilings)"
python3 - >"$OUT/torch.log" 2>&1 <<'PY'
import torch
if not torch.cuda.is_available():
    raise SystemExit("torch sees no GPU")
def median_ms(fn, reps=20):
    for _ in range(3): fn()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(); fn(); stop.record(); stop.synchronize()
        times.append(start.elapsed_time(stop))
    return sorted(times)[len(times) // 2]
n = 8192
a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
ms = median_ms(lambda: a @ b)
print(f"torch {torch.__version__}: bf16 matmul 8192^3 {2 * n**3 / ms / 1e9:.1f} TFLOP/s")
src = torch.randn(1 << 28, device="cuda")
dst = torch.empty_like(src)
ms = median_ms(lambda: dst.copy_(src))
print(f"torch: device-to-device copy {2 * src.numel() * 4 / ms / 1e6:.0f} GB/s (read + write)")
PY
STATUS[torch]=$([[ $? == 0 ]] && echo "ran" || echo "not run: $(tail -1 "$OUT/torch.log")")

# ---- The table (last, so the tail of the output carries it) -------------------------------------
echo
echo "================ aoetron GPU check: $(sed -n 2p "$OUT/device.txt") ================"
echo "logs: $OUT"
echo
echo "| check | result |"
echo "|---|---|"
echo "| kernel tests | ${STATUS[kernels]} |"
echo "| NCCL communicator | ${STATUS[nccl]} |"
echo "| benchmark | ${STATUS[bench]} |"
echo "| PyTorch reference | ${STATUS[torch]} |"
echo
echo "Largest measured errors (‖gpu − cpu_f64‖/‖cpu_f64‖ vs tolerance), worst 15:"
grep -h "^\[ error    \]" "$OUT/cuda_ops_test.log" 2>/dev/null |
  sed -E 's/^\[ error    \] //' |
  awk -F': ' '{split($2, a, " "); print a[1] "\t" $0}' | sort -g -r | head -15 | cut -f2-
echo
grep -hE "^\[  FAILED  \]" "$OUT/cuda_ops_test.log" 2>/dev/null | sort -u | head -20
echo
cat "$OUT/torch.log" 2>/dev/null
echo
grep -E "^(device|measured|shape|\|)" "$OUT/gpu_bench.log" 2>/dev/null || tail -5 "$OUT/gpu_bench.log"
[[ ${STATUS[kernels]} == passed && ${STATUS[nccl]} != *FAILED* && ${STATUS[bench]} == ran ]]

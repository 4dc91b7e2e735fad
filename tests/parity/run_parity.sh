#!/usr/bin/env bash
# Test driver for tests/parity (registered by its CMakeLists.txt).
#
#   run_parity.sh --python PY -- SCRIPT.py [ARGS...]
#       runs a Python test with PY.
#   run_parity.sh --python PY --dump PARITY_DUMP --check CHECK_PARITY.py --work DIR -- DUMP_ARGS...
#       for f32 and then f64: PARITY_DUMP --dtype=<t> --out=DIR/dump_<t>.aoetb DUMP_ARGS, then
#       PY CHECK_PARITY.py DIR/dump_<t>.aoetb. Both precisions run even if the first fails.
#
# Exit status: 0 pass, 1 fail, 77 skip (no PY, or PY cannot import torch — ctest's
# SKIP_RETURN_CODE), so a machine without PyTorch reports the tests skipped, with the reason.
set -u
python="" dump="" check="" work=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) python="$2"; shift 2 ;;
    --dump) dump="$2"; shift 2 ;;
    --check) check="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "run_parity.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [[ ! -x "$python" ]]; then
  echo "SKIP: $python not found (parity tests need Debian's /usr/bin/python3 with python3-torch)"
  exit 77
fi
if ! why=$("$python" -c "import torch, numpy" 2>&1); then
  echo "SKIP: $python cannot import torch and numpy (install python3-torch): ${why##*$'\n'}"
  exit 77
fi

if [[ -z "$dump" ]]; then
  exec "$python" "$@"
fi

mkdir -p "$work"
status=0
for dtype in f32 f64; do
  out="$work/dump_$dtype.aoetb"
  rm -f "$out"
  echo "== $dtype: $dump --dtype=$dtype --out=$out $*"
  if ! "$dump" --dtype="$dtype" --out="$out" "$@"; then
    echo "FAIL: parity_dump exited with an error ($dtype)"
    status=1
    continue
  fi
  echo "== $dtype: $python $check $out"
  "$python" "$check" "$out"
  rc=$?
  if [[ $rc -ne 0 ]]; then
    [[ $rc -eq 77 ]] && exit 77
    status=1
  fi
done
exit $status

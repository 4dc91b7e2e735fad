#!/usr/bin/env bash
# Runs failure_drill under mpirun and checks what docs/parallel.md promises: every rank is gone,
# mpirun exits non-zero (zero for the "healthy" control), within MAX_SECONDS, and the output
# names the rank and the cause (EXPECTED, an extended regex).
#
#   run_failure_drill.sh MPIEXEC DRILL NP SCENARIO MAX_SECONDS EXPECTED [mpirun args...] [-- drill args...]
set -uo pipefail

if [[ $# -lt 6 ]]; then
  echo "usage: $0 MPIEXEC DRILL NP SCENARIO MAX_SECONDS EXPECTED [mpirun args] [-- drill args]" >&2
  exit 2
fi
mpiexec=$1 drill=$2 np=$3 scenario=$4 max_seconds=$5 expected=$6
shift 6
mpirun_args=() drill_args=()
while [[ $# -gt 0 && $1 != "--" ]]; do mpirun_args+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
drill_args=("$@")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/log

start=$(date +%s.%N)
# timeout is a backstop only: a drill that needs it has already failed the test.
timeout --kill-after=5 $((max_seconds + 60)) \
  "$mpiexec" -n "$np" --oversubscribe --allow-run-as-root "${mpirun_args[@]}" \
  "$drill" --scenario="$scenario" --pid-dir="$work" "${drill_args[@]}" >"$log" 2>&1
rc=$?
end=$(date +%s.%N)
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
cat "$log"
echo "----"

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

if [[ $scenario == healthy ]]; then
  [[ $rc -eq 0 ]] || fail "the healthy control exited $rc"
else
  [[ $rc -ne 0 ]] || fail "mpirun exited 0 although a rank failed ($scenario)"
fi
awk -v e="$elapsed" -v m="$max_seconds" 'BEGIN { exit !(e <= m) }' ||
  fail "the job took ${elapsed}s, more than ${max_seconds}s (a hang, ended by the backstop)"
grep -Eq "$expected" "$log" || fail "the output does not match /$expected/"

# Every rank must be gone. A zombie has exited (init reaps it later), so it counts as gone.
running() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}
ranks=0
for pid_file in "$work"/rank.*; do
  [[ -e $pid_file ]] || continue
  ranks=$((ranks + 1))
  pid=$(cat "$pid_file")
  for _ in $(seq 20); do running "$pid" || break; sleep 0.1; done
  running "$pid" && fail "$(basename "$pid_file") (pid $pid) is still running"
done
[[ $ranks -eq $np ]] || fail "only $ranks of $np ranks started"

failed_at=$(grep -Eo 'fails \(.*\) at [0-9.]+' "$log" | head -1 | grep -Eo '[0-9.]+$')
if [[ -n $failed_at ]]; then
  after=$(awk -v a="$failed_at" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
  echo "drill $scenario (np $np ${mpirun_args[*]}): mpirun exited $rc after ${elapsed}s in all," \
       "${after}s after the failure"
else
  echo "drill $scenario (np $np ${mpirun_args[*]}): mpirun exited $rc after ${elapsed}s"
fi
[[ $failures -eq 0 ]] || exit 1
echo "PASS"

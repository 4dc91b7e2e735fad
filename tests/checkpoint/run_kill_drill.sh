#!/bin/bash
# kill -9 during checkpoint saves: a 2-rank job saves back to back (async); after the first
# checkpoint exists, one rank is SIGKILLed at a pseudo-random moment (several rounds, alternating
# the victim between the committing rank 0 and rank 1). After each kill:
#   - aoetron-ckpt verify on the root (newest complete checkpoint) passes,
#   - a new 2-rank job resumes from it, finds every tensor exactly at the checkpoint's step, and
#     saves the next step successfully.
# usage: run_kill_drill.sh MPIEXEC CHECKPOINT_DRILL AOETRON_CKPT [ROUNDS]
set -uo pipefail
mpiexec=$1
drill=$2
ckpt=$3
rounds=${4:-4}
dir=$(mktemp -d "${TMPDIR:-/tmp}/aoetron_ckpt_drill_XXXXXX")
trap 'rm -rf "$dir"' EXIT
flags=(--oversubscribe --allow-run-as-root)
fail() { echo "FAIL: $*"; exit 1; }

for round in $(seq 1 "$rounds"); do
  victim=$(( round % 2 ))
  rm -f "$dir"/pid.*
  "$mpiexec" -n 2 "${flags[@]}" "$drill" save "$dir" > "$dir/save.log" 2>&1 &
  job=$!
  # Wait for the first checkpoint of this round (a new latest) and both pid files.
  before=$(cat "$dir/latest" 2>/dev/null || echo none)
  for _ in $(seq 1 300); do
    now=$(cat "$dir/latest" 2>/dev/null || echo none)
    [[ "$now" != "$before" && -f "$dir/pid.0" && -f "$dir/pid.1" ]] && break
    sleep 0.05
  done
  [[ -f "$dir/pid.$victim" ]] || { cat "$dir/save.log"; fail "round $round: the save job did not start"; }
  # A pseudo-random extra delay (0 to 0.75 s), so kills land in different phases of a save.
  delay=$(( (round * 7919 + RANDOM) % 16 ))
  sleep "0.$(( delay * 5 / 10 ))$(( delay * 5 % 10 ))"
  pid=$(cat "$dir/pid.$victim")
  tmp_dirs=$(ls -d "$dir"/step_*.tmp 2>/dev/null | wc -l)
  kill -9 "$pid"
  wait "$job"
  echo "round $round: killed rank $victim (pid $pid) after +${delay}×0.05 s; saves in progress: $tmp_dirs; latest was $(cat "$dir/latest")"
  ls "$dir"
  "$ckpt" verify "$dir" || fail "round $round: the newest complete checkpoint does not verify"
  "$mpiexec" -n 2 "${flags[@]}" "$drill" resume "$dir" || fail "round $round: resume failed"
done
echo "PASS: $rounds kills, every time the newest complete checkpoint verified and resumed exactly"

#!/usr/bin/env bash
# AllReduce determinism across ranks, runs and transports: runs allreduce_checksum twice under
# mpirun (default shared-memory transport, then --mca btl tcp,self) and requires that every rank
# printed the same hashes and that both runs printed the same.
#
#   check_allreduce_determinism.sh MPIEXEC CHECKSUM NP
set -uo pipefail
mpiexec=$1 checksum=$2 np=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {  # run OUT [mpirun args]
  local out=$1
  shift
  timeout 120 "$mpiexec" -n "$np" --oversubscribe --allow-run-as-root "$@" "$checksum" >"$out" 2>&1
}
run "$work/shm" || { cat "$work/shm"; echo "FAIL: shared-memory run failed"; exit 1; }
run "$work/tcp" --mca btl tcp,self || { cat "$work/tcp"; echo "FAIL: TCP run failed"; exit 1; }
cat "$work/shm"

status=0
for out in shm tcp; do
  lines=$(grep -c '^allreduce' "$work/$out")
  [[ $lines -eq $((3 * np)) ]] || { echo "FAIL: $out run printed $lines result lines"; status=1; }
  distinct=$(grep '^allreduce' "$work/$out" | sort -u | wc -l)
  [[ $distinct -eq 3 ]] || { echo "FAIL: ranks disagree in the $out run:"; sort "$work/$out"; status=1; }
done
if ! diff <(grep '^allreduce' "$work/shm" | sort -u) <(grep '^allreduce' "$work/tcp" | sort -u); then
  echo "FAIL: the shared-memory and TCP runs differ"
  status=1
fi
[[ $status -eq 0 ]] && echo "PASS: identical on all $np ranks, in both runs"
exit $status

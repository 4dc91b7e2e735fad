# Sourced by the Slurm tests (run_slurm_jobs.sh, run_slurm_study.sh): skips (exit 77) where
# Slurm's daemons are not installed; makes $work, a temporary directory; starts a private Slurm
# in $work/slurm (scripts/slurm/local_slurm.sh) and points the clients at it (SLURM_CONF); stops
# it and removes $work on exit. Defines fail MESSAGE (prints the queue and the daemons' last
# log lines, exits 1). Needs $root, the repository; $slurm_test_name names $work.
local_slurm=$root/scripts/slurm/local_slurm.sh
if ! reason=$("$local_slurm" available); then
  echo "SKIP: $reason"
  exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/aoetron_${slurm_test_name:-slurm}_XXXXXX")
cleanup() {
  "$local_slurm" stop "$work/slurm"
  rm -rf "$work"
}
trap cleanup EXIT
export OMP_NUM_THREADS=1
fail() {
  echo "FAIL: $*" >&2
  if [[ -n ${SLURM_CONF:-} ]]; then
    squeue >&2
    tail -n 15 "$work"/slurm/slurmctld.log "$work"/slurm/slurmd.log >&2
  fi
  exit 1
}
setup=$("$local_slurm" start "$work/slurm") || fail "the private Slurm did not start"
eval "$setup"

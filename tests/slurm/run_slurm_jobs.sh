#!/usr/bin/env bash
# aoetron-train as Slurm jobs (docs/multinode.md, "Slurm"): a private Slurm started for the test
# (scripts/slurm/local_slurm.sh: munged, slurmctld, slurmd in a temporary directory, on
# 127.0.0.1) runs scripts/slurm/aoetron.sbatch with 2 ranks (srun --mpi=pmix) on a tiny model,
# and every logged loss must equal, bit for bit, the same run under mpirun -np 2 without Slurm
# (the same layout: same kernels, same reduction order). Skipped (exit 77) where Slurm's daemons
# are not installed (scripts/setup.sh installs them).
#
#   run_slurm_jobs.sh MPIEXEC AOETRON_TRAIN SCENARIO
#
# Scenarios:
#   complete    the job runs to the end: state COMPLETED, "srun exited with status 0"
#   time_limit  once 50 steps are logged, SIGUSR1 goes to the batch script, as
#               `--signal=B:USR1@T` makes Slurm do T seconds before the time limit (sent with
#               `scancel --batch --signal=USR1`: the same signal to the same process, without
#               waiting for a real limit): the ranks save a checkpoint and exit 0, the script
#               requeues the job, and the requeued job resumes from that checkpoint to the end
#   preempt     once 50 steps are logged, `scontrol requeue` (what PreemptMode=REQUEUE does):
#               Slurm SIGTERMs every task and the script; the ranks save within KillWait and
#               exit 0; Slurm requeues the job, which resumes from the checkpoint to the end
# Slurm holds a requeued job for the credential lifetime (AuthInfo cred_expire, 120 s by default)
# before it may start again: until then the node still holds the old run's credential revoked and
# refuses to launch it ("Job credential revoked": the job fails). The private Slurm sets 10 s, so
# the requeued job starts about 11 s later; moving its start time to now races that revocation.
set -uo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: $0 MPIEXEC AOETRON_TRAIN SCENARIO" >&2
  exit 2
fi
mpiexec=$1 train=$(realpath "$2") scenario=$3
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
slurm_test_name=slurm_jobs
losses=$root/tests/lib/step_losses.py
source "$root/tests/slurm/slurm_test_env.sh"


# ~3 ms a step on 2 cores: the stop request at step 50 reaches the ranks (a Slurm RPC, then the
# signals; about 1 s under load) seconds before the run would end by itself.
steps=2000
common=(--set model.vocab_size=64 --set model.d_model=48 --set model.n_layers=2
        --set model.n_heads=2 --set model.seq_len=32 --set model.d_ffn=96 --set model.ffn=aoe
        --set model.n_experts=4 --set model.d_low=8 --set data.source=synthetic
        --set train.micro_batch_size=2 --set train.global_batch_size=8 --set train.steps=$steps
        --set train.eval_interval=0 --set logging.interval=1 --set logging.progress=never
        --set parallel.threads=1 --set checkpoint.interval=500 --set checkpoint.keep_last=3)

# The reference: the same run under mpirun, without Slurm.
"$mpiexec" --oversubscribe --allow-run-as-root -np 2 "$train" "${common[@]}" \
    --set "checkpoint.dir=$work/ref" --set "logging.metrics_file=$work/ref.jsonl" \
    > "$work/ref.log" 2>&1 || { cat "$work/ref.log"; fail "the reference run failed"; }

echo "private Slurm: $SLURM_CONF ($(sinfo -h -o '%D node(s), %c CPUs, %T'))"

# job_field ID FIELD: FIELD=value from scontrol's record of the job.
job_field() {
  scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"
}
# wait_state ID SECONDS STATE...: until the job is in one of the STATEs.
wait_state() {
  local id=$1 seconds=$2 state
  shift 2
  for ((i = 0; i < seconds * 10; ++i)); do
    state=$(job_field "$id" JobState)
    for want in "$@"; do [[ $state == "$want" ]] && return 0; done
    sleep 0.1
  done
  echo "job $id is $state after $seconds s, not $*" >&2
  return 1
}

AOETRON_TRAIN=$train sbatch --parsable --ntasks=2 --output="$work/job.out" \
    --chdir="$work" "$root/scripts/slurm/aoetron.sbatch" "${common[@]}" \
    --set "checkpoint.dir=$work/ckpt" --set "logging.metrics_file=$work/job.jsonl" \
    > "$work/id" 2> "$work/sbatch.err" || { cat "$work/sbatch.err"; fail "sbatch failed"; }
id=$(cut -d';' -f1 < "$work/id")
echo "submitted job $id ($scenario)"

if [[ $scenario != complete ]]; then
  for ((i = 0; i < 1200; ++i)); do
    [[ -s $work/job.jsonl && $(wc -l < "$work/job.jsonl") -ge 50 ]] && break
    [[ $(job_field "$id" JobState) == @(PENDING|RUNNING|CONFIGURING) ]] || break
    sleep 0.05
  done
  [[ -s $work/job.jsonl ]] || { cat "$work/job.out"; fail "the job logged no steps"; }
  case $scenario in
    time_limit) scancel --batch --signal=USR1 "$id" || fail "scancel --batch --signal=USR1" ;;
    preempt) scontrol requeue "$id" || fail "scontrol requeue" ;;
    *) fail "unknown scenario $scenario (complete, time_limit, preempt)" ;;
  esac
  echo "$scenario at step $(tail -1 "$work/job.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])')"
  # Requeued: pending again, held for the credential lifetime (local_slurm.sh: 10 s).
  for ((i = 0; i < 600; ++i)); do
    [[ $(job_field "$id" Restarts) -ge 1 && $(job_field "$id" JobState) == PENDING ]] && break
    sleep 0.1
  done
  [[ $(job_field "$id" Restarts) -ge 1 ]] || { cat "$work/job.out"; fail "the job was not requeued"; }
fi
wait_state "$id" 120 COMPLETED FAILED CANCELLED TIMEOUT NODE_FAIL OUT_OF_MEMORY ||
  { cat "$work/job.out"; fail "the job did not finish"; }
state=$(job_field "$id" JobState)
echo "job $id: $state, $(job_field "$id" Restarts) restart(s), exit $(job_field "$id" ExitCode)"
grep -v '^{' "$work/job.out" | grep -v "^$"
[[ $state == COMPLETED ]] || fail "job $id ended $state"
grep -q "srun exited with status 0" "$work/job.out" || fail "srun did not exit 0"

if [[ $scenario != complete ]]; then
  stopped=$(grep -o "stopped on request after step [0-9]*" "$work/job.out") ||
    fail "the ranks did not stop on request (did the run end before the signal reached them?)"
  step=${stopped##* }
  grep -q "resumed from step $step " "$work/job.out" || fail "not resumed from step $step"
  [[ $scenario == preempt ]] || grep -q "requeueing job $id" "$work/job.out" ||
    fail "the script did not requeue the job"
  echo "$stopped; the requeued job resumed from step $step"
fi
diff <("$losses" "$work/ref.jsonl") <("$losses" "$work/job.jsonl") > "$work/diff" ||
  { head "$work/diff"; fail "the job's losses differ from the run without Slurm"; }
[[ $("$losses" "$work/job.jsonl" | wc -l) -eq $steps ]] || fail "not $steps logged steps"
echo "OK: $steps losses and grad norms identical to mpirun's, bit for bit"

# Sourced by the multi-node tests (run_hosts.sh, run_node_loss_drill.sh), after they set $nodes
# (scripts/cluster/mpirun_nodes.sh) and $node_test_name: makes $work, a temporary directory, and
# on any way out SIGKILLs every simulated node of every cluster under it (a state directory
# $work/NAME; a failed check leaves a job running), the background $job if set, and removes
# $work. Defines $node_ctl, $flags (mpirun's) and fail MESSAGE (exit 1).
node_ctl=$(dirname "$nodes")/node_ctl.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/aoetron_${node_test_name}_XXXXXX")
cleanup() {
  local state
  for state in "$work"/*/; do
    "$node_ctl" "$state" kill > /dev/null 2>&1
  done
  [[ -n ${job:-} ]] && kill "$job" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export OMP_NUM_THREADS=1
flags=(--oversubscribe --allow-run-as-root)
fail() { echo "FAIL: $*" >&2; exit 1; }

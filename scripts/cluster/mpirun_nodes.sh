#!/usr/bin/env bash
# mpirun across N simulated nodes on this machine: a drop-in for mpirun (same arguments), whose
# ranks Open MPI places on hosts node0 .. node<N-1>, each started through node_agent.sh in a UTS
# namespace of its own (docs/multinode.md, "A cluster in a box"). Ranks on one node talk over
# shared memory, ranks on different nodes over TCP; every Open MPI connection is confined to the
# loopback interface (127.0.0.0/8).
#
#   mpirun_nodes.sh [--nodes N] [--state DIR] [--mpirun PATH] MPIRUN_ARGS... -np R PROGRAM ...
#
#   --nodes N      nodes (default $CLUSTER_NODES, else 2); R ranks fill them in order, ceil(R/N)
#                  slots each: ranks 0..s-1 on node0, the next s on node1, ...
#   --state DIR    where the nodes record themselves (node_ctl.sh reads it; default
#                  $CLUSTER_STATE, else a temporary directory removed at the end)
#   --mpirun PATH  the mpirun to run (default $CLUSTER_MPIRUN, else mpirun on PATH)
#
# SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are passed on to mpirun. When mpirun has exited,
# every process of every node must be gone within 10 s; survivors are listed, killed, and turn a
# zero exit status into 1. Otherwise the exit status is mpirun's.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
nodes=${CLUSTER_NODES:-2}
state=${CLUSTER_STATE:-}
mpirun=${CLUSTER_MPIRUN:-mpirun}
while [[ $# -gt 0 ]]; do
  case $1 in
    --nodes) nodes=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    --mpirun) mpirun=$2; shift 2 ;;
    *) break ;;
  esac
done
if [[ ! $nodes =~ ^[1-9][0-9]*$ ]]; then
  echo "mpirun_nodes: --nodes must be a positive integer, not \"$nodes\"" >&2
  exit 2
fi

# The rank count, as mpirun spells it.
ranks=""
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  case ${args[i]} in
    -np|-n|--np) ranks=${args[i + 1]:-none}; break ;;  # the first: mpirun's own
    -np=*|--np=*|-n=*) ranks=${args[i]#*=}; break ;;
  esac
done
if [[ ! $ranks =~ ^[1-9][0-9]*$ ]]; then
  echo "mpirun_nodes: give the number of ranks with -np R (got \"$ranks\")" >&2
  exit 2
fi
slots=$(((ranks + nodes - 1) / nodes))
hosts=""
for ((n = 0; n < nodes; ++n)); do
  hosts+="${hosts:+,}node$n:$slots"
done

own_state=0
if [[ -z $state ]]; then
  state=$(mktemp -d "${TMPDIR:-/tmp}/aoetron_nodes_XXXXXX")
  own_state=1
fi
mkdir -p "$state"
state=$(cd "$state" && pwd)

# The nodes share this machine's cores, but Open MPI judges oversubscription per node from the
# slots declared above: with more ranks than cores it would busy-poll, and ranks waiting for a
# message would take the cores from the ones computing it (measured: the np-4 layout tests on
# 2 nodes × 2 ranks on 2 cores, 14 to 57 times slower per layout). Yield when idle, as it does
# for an oversubscribed host.
yield=()
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
((ranks > cores)) && yield=(--mca mpi_yield_when_idle 1)

"$mpirun" --host "$hosts" \
  --mca plm_rsh_agent "$here/node_agent.sh $state" --mca plm_rsh_no_tree_spawn 1 \
  --mca oob_tcp_if_include lo --mca btl_tcp_if_include lo "${yield[@]}" \
  "$@" &
child=$!
for signal in INT TERM HUP USR1 USR2; do
  trap "kill -s $signal $child 2>/dev/null" "$signal"
done
# `wait` returns early when a trapped signal arrives; wait again until mpirun is really gone.
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break
done

if ! "$here/node_ctl.sh" "$state" gone 10; then
  "$here/node_ctl.sh" "$state" kill >/dev/null 2>&1
  echo "mpirun_nodes: processes outlived mpirun (listed above); killed" >&2
  ((status == 0)) && status=1
fi
((own_state)) && rm -rf "$state"
exit "$status"

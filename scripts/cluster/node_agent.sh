#!/usr/bin/env bash
# Open MPI's launch agent for simulated nodes (scripts/cluster/README in docs/multinode.md): it
# stands where ssh would, `plm_rsh_agent`, and starts the command Open MPI gives it (its orted)
# "on" HOST: in a UTS namespace of its own whose host name is HOST. Every process of that node
# (the orted, the ranks it forks, their helpers) inherits the namespace, so Open MPI sees a host
# of that name: ranks with the same HOST use shared memory, ranks on different HOSTs use TCP
# (over loopback: mpirun_nodes.sh restricts Open MPI to the lo interface).
#
#   node_agent.sh STATE_DIR HOST COMMAND...
#
# Writes STATE_DIR/HOST/uts (the namespace, as /proc/PID/ns/uts names it) and exports
# AOETRON_NODE=STATE_DIR/HOST; node_ctl.sh needs both to find every process of the node. Like ssh,
# the COMMAND words are joined by spaces and run by /bin/sh. Needs root (or CAP_SYS_ADMIN) for
# unshare --uts.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 STATE_DIR HOST COMMAND..." >&2
  exit 2
fi
state=$1 host=$2
shift 2
if [[ ! $host =~ ^[A-Za-z][A-Za-z0-9-]{0,62}$ ]]; then
  echo "node_agent: \"$host\" is not a simulated node's host name (letters, digits, -)" >&2
  exit 2
fi
mkdir -p "$state/$host"
state=$(cd "$state" && pwd)
echo "$(date +%s.%N) $host: $*" >> "$state/agent.log"
# Every process of the node inherits this (the orted passes its environment on to the ranks):
# with the namespace it tells this node's processes from those of a namespace that got the same
# inode number after an earlier one ended (another simulated cluster running beside this one).
export AOETRON_NODE="$state/$host"
# Inside the new namespace: name the host, record the namespace, then run the command as ssh's
# remote shell would.
exec unshare --uts -- /bin/sh -c '
  hostname "$1" && readlink /proc/self/ns/uts > "$2/uts" && shift 2 && exec /bin/sh -c "$*"
' node-agent "$host" "$state/$host" "$@"

#!/usr/bin/env bash
# The processes of simulated nodes (node_agent.sh): a node's processes are exactly those in its
# UTS namespace (recorded in STATE_DIR/HOST/uts when the node started) that carry
# AOETRON_NODE=STATE_DIR/HOST in their environment.
#
#   node_ctl.sh STATE_DIR list [HOST...]           "HOST PID COMMAND" per live process
#   node_ctl.sh STATE_DIR kill [HOST...]           SIGKILL every process of the nodes, again
#                                                  until none is left (5 s at most)
#   node_ctl.sh STATE_DIR gone SECONDS [HOST...]   wait until no process of the nodes is left;
#                                                  exit 1 listing the survivors if some are
#
# Without HOSTs: every node the state directory knows.
set -uo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,12p' "$0" >&2
  exit 2
fi
state=$(cd "$1" 2>/dev/null && pwd) || { echo "node_ctl: no state directory \"$1\"" >&2; exit 2; }
action=$2
shift 2

known_hosts() {
  local dir
  for dir in "$state"/*/; do
    [[ -f $dir/uts ]] && basename "$dir"
  done
}

# processes HOST...: "HOST PID COMMAND" for every live process in those nodes' namespaces.
# One stat(1) over /proc (a namespace is named by its inode) keeps a scan to a few ms, so a
# kill lands where the caller aimed it.
processes() {
  local host spec=""
  for host in "$@"; do
    [[ -f $state/$host/uts ]] || continue
    # "uts:[4026532612]" → 4026532612
    spec+="$(tr -dc '0-9' < "$state/$host/uts")=$host "
  done
  [[ -n $spec ]] || return 0
  stat -L -c '%i %n' /proc/[0-9]*/ns/uts 2>/dev/null |
    awk -v spec="$spec" '
      BEGIN { n = split(spec, pairs, " "); for (i = 1; i <= n; ++i) { split(pairs[i], kv, "="); host[kv[1]] = kv[2] } }
      ($1 in host) { split($2, path, "/"); print host[$1], path[3] }' |
    while read -r host pid; do
      # Namespace inode numbers are reused once a namespace is gone: the node's processes also
      # carry AOETRON_NODE (node_agent.sh).
      tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qxF "AOETRON_NODE=$state/$host" ||
        continue
      echo "$host $pid $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)"
    done
}

case $action in
  list)
    (($#)) || set -- $(known_hosts)
    processes "$@"
    ;;
  kill)
    (($#)) || set -- $(known_hosts)
    for host in "$@"; do
      [[ -f $state/$host/uts ]] || { echo "node_ctl: no node \"$host\" in $state" >&2; exit 1; }
    done
    (($#)) || exit 0
    for ((round = 0; round < 50; ++round)); do
      pids=$(processes "$@" | awk '{print $2}')
      [[ -n $pids ]] || exit 0
      kill -KILL $pids 2>/dev/null
      sleep 0.1
    done
    echo "node_ctl: processes of $* survive SIGKILL:" >&2
    processes "$@" >&2
    exit 1
    ;;
  gone)
    seconds=${1:?node_ctl.sh STATE_DIR gone SECONDS [HOST...]}
    shift
    (($#)) || set -- $(known_hosts)
    deadline=$(($(date +%s) + seconds))
    while :; do
      left=$(processes "$@")
      [[ -z $left ]] && exit 0
      if (($(date +%s) >= deadline)); then
        echo "node_ctl: processes left on the nodes after ${seconds} s:" >&2
        echo "$left" >&2
        exit 1
      fi
      sleep 0.2
    done
    ;;
  *)
    echo "node_ctl: unknown action \"$action\" (list, kill, gone)" >&2
    exit 2
    ;;
esac

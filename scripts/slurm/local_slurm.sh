#!/usr/bin/env bash
# A private Slurm on this machine, for tests (docs/multinode.md, "Slurm"): munged, slurmctld and
# one slurmd from Debian's packages (slurmctld, slurmd, slurm-client, munge), everything (key,
# config, state, spool, logs, sockets) inside DIR, every daemon bound to 127.0.0.1 on ports free
# at start, the node configured with this machine's cores. Nothing under /etc or /run is used.
#
#   local_slurm.sh start DIR   start the three daemons; wait until the node is idle (60 s at
#                              most); print the line that points the clients at this cluster:
#                              export SLURM_CONF=DIR/slurm.conf
#   local_slurm.sh stop DIR    stop them (SIGTERM, then SIGKILL after 10 s) and wait until gone
#   local_slurm.sh available   exit 0 when the daemons are installed, else 1 saying what is missing
#
# Exit status 0, or 1 with the cause (and the daemons' logs) on stderr.
set -uo pipefail
action=${1:-}
fail() { echo "local_slurm: $*" >&2; exit 1; }

daemons=(munged slurmctld slurmd sbatch squeue scontrol sinfo)
missing_tools() {
  local tool missing=()
  for tool in "${daemons[@]}"; do
    command -v "$tool" > /dev/null || [[ -x /usr/sbin/$tool ]] || missing+=("$tool")
  done
  echo "${missing[*]}"
}

# free_ports N: N distinct TCP ports free on 127.0.0.1 now.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
sockets = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    sockets.append(s)
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
}

# stop_pid FILE NAME: SIGTERM the daemon whose pid FILE holds, SIGKILL after 10 s.
stop_pid() {
  local pid
  [[ -s $1 ]] || return 0
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; ++i)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "local_slurm: $2 (pid $pid) ignored SIGTERM for 10 s; killed" >&2
  kill -KILL "$pid" 2>/dev/null
}

case $action in
available)
  missing=$(missing_tools)
  [[ -z $missing ]] || { echo "local_slurm: not installed: $missing (Debian: slurmctld slurmd slurm-client munge)"; exit 1; }
  ;;
start)
  dir=${2:?local_slurm.sh start DIR}
  missing=$(missing_tools)
  [[ -z $missing ]] || fail "not installed: $missing (Debian: slurmctld slurmd slurm-client munge)"
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
  mkdir -p "$dir/munge" "$dir/ctld" "$dir/spool"
  chmod 700 "$dir" "$dir/munge"
  # munge: a fresh key; its socket, pid, seed and log in DIR/munge.
  head -c 1024 /dev/urandom > "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  /usr/sbin/munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
      --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" \
      --log-file="$dir/munge/munged.log" ||
    { cat "$dir/munge/munged.log" >&2; fail "munged did not start"; }

  read -r ctld_port slurmd_port < <(free_ports 2)
  node=$(hostname -s)
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
  memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat > "$dir/slurm.conf" <<CONF
# Written by scripts/slurm/local_slurm.sh: a one-node test cluster; everything lives in $dir.
ClusterName=aoetron-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
CommunicationParameters=NoInAddrAny
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
CredType=cred/munge
SlurmUser=$(id -un)
SlurmdUser=root
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=600
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
PlugStackConfig=$dir/plugstack.conf
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
  : > "$dir/plugstack.conf"
  export SLURM_CONF=$dir/slurm.conf
  /usr/sbin/slurmctld -f "$SLURM_CONF" || { cat "$dir/slurmctld.log" >&2; fail "slurmctld did not start"; }
  /usr/sbin/slurmd -f "$SLURM_CONF" -N "$node" || { cat "$dir/slurmd.log" >&2; fail "slurmd did not start"; }
  for ((i = 0; i < 600; ++i)); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null)
    [[ $state == idle ]] && break
    sleep 0.1
  done
  if [[ $state != idle ]]; then
    echo "local_slurm: node $node is \"$state\", not idle, after 60 s" >&2
    tail -20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2
    exit 1
  fi
  echo "export SLURM_CONF=$dir/slurm.conf"
  ;;
stop)
  dir=${2:?local_slurm.sh stop DIR}
  stop_pid "$dir/slurmd.pid" slurmd
  stop_pid "$dir/slurmctld.pid" slurmctld
  stop_pid "$dir/munge/munged.pid" munged
  ;;
*)
  sed -n '2,14p' "$0" >&2
  exit 2
  ;;
esac

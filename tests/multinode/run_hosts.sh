#!/usr/bin/env bash
# Simulated nodes are separate hosts to Open MPI and talk over loopback only
# (docs/multinode.md, "A cluster in a box"):
#   1. 4 ranks on 2 nodes: ranks 0,1 on node0 and 2,3 on node1, local ranks 0,1 on each (the
#      numbering aoetron-train takes its node-local rank from);
#   2. with only shared memory (btl self,vader) the nodes cannot reach each other: the job fails
#      with Open MPI's "unreachable" (one host would have run it); with TCP, an all-reduce gives
#      the checksum of the same all-reduce on one host;
#   3. while aoetron-train runs on the 2 nodes (ep2 dp2), every TCP socket of every process of
#      the nodes has both ends in 127.0.0.0/8; and aoetron-train says where its ranks run;
#   4. node_ctl.sh tells a cluster's processes from another's whose namespace has the same
#      number (numbers are reused once a namespace is gone).
#
#   run_hosts.sh MPIRUN_NODES MPIEXEC ALLREDUCE_CHECKSUM AOETRON_TRAIN
set -uo pipefail
if [[ $# -ne 4 ]]; then
  echo "usage: $0 MPIRUN_NODES MPIEXEC ALLREDUCE_CHECKSUM AOETRON_TRAIN" >&2
  exit 2
fi
nodes=$1 mpiexec=$2 checksum=$3 train=$4
node_test_name=hosts
source "$(dirname "${BASH_SOURCE[0]}")/node_test_env.sh"

# 1. Placement and node-local numbering.
"$nodes" --nodes 2 --mpirun "$mpiexec" "${flags[@]}" -np 4 /bin/sh -c \
    'echo "$OMPI_COMM_WORLD_RANK $(hostname) $OMPI_COMM_WORLD_LOCAL_RANK $OMPI_COMM_WORLD_LOCAL_SIZE"' \
    > "$work/placement" 2>&1 || { cat "$work/placement"; fail "the placement job failed"; }
sort -n "$work/placement" > "$work/placement.sorted"
cat "$work/placement.sorted"
diff "$work/placement.sorted" - <<'TXT' || fail "ranks are not placed as 2 nodes × 2"
0 node0 0 2
1 node0 1 2
2 node1 0 2
3 node1 1 2
TXT

# 2. Separate hosts: shared memory alone cannot connect them; TCP gives one host's result.
if "$nodes" --nodes 2 --mpirun "$mpiexec" "${flags[@]}" --mca btl self,vader -np 4 "$checksum" \
    > "$work/vader.log" 2>&1; then
  cat "$work/vader.log"
  fail "shared memory alone connected the two nodes: they are one host to Open MPI"
fi
grep -q "unreachable" "$work/vader.log" || { cat "$work/vader.log"; fail "no 'unreachable'"; }
echo "btl self,vader across 2 nodes: refused as unreachable (separate hosts)"
"$mpiexec" "${flags[@]}" -np 4 "$checksum" > "$work/one_host.log" 2>&1 ||
  { cat "$work/one_host.log"; fail "the one-host all-reduce failed"; }
"$nodes" --nodes 2 --mpirun "$mpiexec" "${flags[@]}" -np 4 "$checksum" > "$work/two.log" 2>&1 ||
  { cat "$work/two.log"; fail "the 2-node all-reduce failed"; }
# One line per message size, printed by each rank: the same set on every rank and both ways.
one=$(sort -u "$work/one_host.log") two=$(sort -u "$work/two.log")
echo "one host:"; echo "$one"
echo "2 nodes:"; echo "$two"
[[ -n $one && $one == "$two" && $(wc -l < "$work/two.log") -eq $((4 * $(wc -l <<< "$one"))) ]] ||
  fail "the checksums differ"

# 3. Loopback only, sampled while aoetron-train runs on both nodes.
mkdir -p "$work/state"
"$nodes" --nodes 2 --state "$work/state" --mpirun "$mpiexec" "${flags[@]}" -np 4 "$train" \
    --set model.vocab_size=64 --set model.d_model=32 --set model.n_layers=2 \
    --set model.n_heads=2 --set model.seq_len=32 --set model.d_ffn=64 --set model.ffn=aoe \
    --set model.n_experts=4 --set model.d_low=8 --set data.source=synthetic \
    --set train.micro_batch_size=2 --set train.global_batch_size=8 --set train.steps=100000 \
    --set train.eval_interval=0 --set logging.progress=never --set logging.interval=1 \
    --set parallel.threads=1 --set parallel.ep=2 --set "logging.metrics_file=$work/m.jsonl" \
    > "$work/train.log" 2>&1 &
job=$!
for ((i = 0; i < 600; ++i)); do
  [[ -s $work/m.jsonl && $(wc -l < "$work/m.jsonl") -ge 3 ]] && break
  sleep 0.1
done
pids=$("$node_ctl" "$work/state" list | awk '{print $2}' | paste -sd, -)
ss -tnpH > "$work/sockets.all"
"$node_ctl" "$work/state" kill
wait "$job"
[[ -n $pids ]] || { cat "$work/train.log"; fail "no node processes while training"; }
# aoetron-train's own view of the placement (ep2 on 4 ranks: ep groups {0,1} {2,3}).
want="aoetron-train: 4 ranks on 2 nodes (node0: ranks 0-1; node1: ranks 2-3); inside a node: ep; across nodes: dp, edp"
grep -qxF "$want" "$work/train.log" || { cat "$work/train.log"; fail "no line: $want"; }
echo "$want"
# "ESTAB 0 0 127.0.0.1:41234 127.0.0.1:1024 users:(("aoetron-train",pid=123,fd=9))"
python3 - "$work/sockets.all" "$pids" <<'PY' || fail "a node process used an address outside 127.0.0.0/8"
import re, sys
pids = set(sys.argv[2].split(","))
ours, bad = 0, []
for line in open(sys.argv[1]):
    owners = set(re.findall(r"pid=(\d+)", line))
    if not owners & pids:
        continue
    ours += 1
    fields = line.split()
    for endpoint in fields[3:5]:
        host = endpoint.rsplit(":", 1)[0].strip("[]")
        if not (host.startswith("127.") or host.startswith("::ffff:127.")):
            bad.append(line.strip())
print(f"{ours} TCP sockets of the nodes' processes, {len(bad)} outside 127.0.0.0/8")
for line in bad:
    print("  " + line)
sys.exit(1 if bad or ours == 0 else 0)
PY
# 4. Another simulated cluster whose namespace got the same inode number (as happens once a
#    namespace is gone): node_ctl.sh must not take its processes for this cluster's.
mkdir -p "$work/other" "$work/this/node0"
"$nodes" --nodes 2 --state "$work/other" --mpirun "$mpiexec" "${flags[@]}" -np 2 sleep 30 \
    > "$work/other.log" 2>&1 &
other=$!
for ((i = 0; i < 100; ++i)); do
  [[ $("$node_ctl" "$work/other" list | grep -c sleep) -eq 2 ]] && break
  sleep 0.1
done
cp "$work/other/node0/uts" "$work/this/node0/uts"  # the same namespace number, another cluster
[[ -z $("$node_ctl" "$work/this" list) ]] ||
  fail "node_ctl took another cluster's processes for this one's: $("$node_ctl" "$work/this" list)"
"$node_ctl" "$work/this" kill node0
[[ $("$node_ctl" "$work/other" list node0 | grep -c sleep) -eq 1 ]] ||
  fail "killing this cluster's node0 hit the other cluster's"
"$node_ctl" "$work/other" kill
wait "$other"
echo "a reused namespace number: the other cluster's processes were left alone"
echo "OK"

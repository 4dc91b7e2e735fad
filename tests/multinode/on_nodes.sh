#!/usr/bin/env bash
# Runs a multi-node test (its arguments) where simulated nodes can be started, else skips it
# (exit 77, ctest's SKIP_RETURN_CODE): scripts/cluster/node_agent.sh needs unshare --uts, which
# needs root or CAP_SYS_ADMIN.
if ! unshare --uts true 2>/dev/null; then
  echo "SKIP: unshare --uts is not permitted here (simulated nodes need root or CAP_SYS_ADMIN)"
  exit 77
fi
exec "$@"

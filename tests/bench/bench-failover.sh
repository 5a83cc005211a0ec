#!/bin/bash
# Failover time: from the SIGKILL of the primary's tandemd to the first
# reply the client gets from the backup, over RUNS kills (default 10) with
# the default settings (25 ms epochs, 50 ms heartbeat, 250 ms timeout).
# Prints median and max; never fails on a time.
set -u
here=$(cd "$(dirname "$0")" && pwd)
R=$(mktemp /tmp/tdm-failover-bench.XXXXXX)
trap 'rm -f "$R"' EXIT
RUNS=${RUNS:-10} RESULTS=$R bash "$here/../integration/failover.sh" >/dev/null 2>&1
n=$(wc -l <"$R")
[ "$n" -gt 0 ] || { echo "no runs completed"; exit 0; }
sed -n 's/.*failover_ms=\([0-9]*\).*/\1/p' "$R" | sort -n | awk '
  { v[NR] = $1 }
  END {
    med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%-28s %8s %8s %8s %6s\n", "failover (kill -> reply)", "min ms", "median", "max ms", "runs"
    printf "%-28s %8d %8.0f %8d %6d\n", "heartbeat 50, timeout 250", v[1], med, v[NR], NR
  }'

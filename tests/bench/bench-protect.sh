#!/bin/bash
# Key-value throughput and latency of the micro-VM guest unprotected, then
# protected at several epoch intervals, side by side in one run; and the
# checkpoint rate each interval actually sustains under that load.
# Prints a table; never fails on a time. Needs root (namespaces).
#
#   SECONDS_PER=N   seconds of load per row (default 8)
#   INTERVALS="25 10 5 2 1"
. "$(dirname "$0")/../integration/lib.sh"
need_root_netns
SECONDS_PER=${SECONDS_PER:-8}
INTERVALS=${INTERVALS:-"25 10 5 2 1"}

T=$(mktemp -d /tmp/tdm-bench.XXXXXX)
cleanup() { net_teardown; [ -n "$KEEP" ] || rm -rf "$T"; }
trap cleanup EXIT
net_setup
start_daemon A
start_daemon B
domain_cfg >"$T/kv1.cfg"
"$XLT" -s "$T/A.sock" create "$T/kv1.cfg" || fail "create"
in_c "$KVC" -s $IP_G:7000 wait -T 10000 >/dev/null || fail "guest did not answer"

field() { # field JSON-KEY: first numeric value of that key in status -j
  "$XLT" -s "$T/A.sock" -j status kv1 | grep -o "\"$1\":[0-9.]*" | head -n 1 | cut -d: -f2
}
stat_field() { # stat_field STAT KEY: e.g. pause_ns median
  "$XLT" -s "$T/A.sock" -j status kv1 | grep -o "\"$1\":{[^}]*}" | grep -o "\"$2\":[0-9]*" | cut -d: -f2
}
# WINDOW requests in flight (separate client ids): one at a time, every
# protected reply waits for its epoch's ACK, so throughput is ~1/interval.
WINDOW=${WINDOW:-64}
bench() { in_c "$KVC" -s $IP_G:7000 bench -d "$SECONDS_PER" -k 512 -w "$WINDOW" | tail -n 1; }
kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

echo "key-value bench, $WINDOW requests in flight, $SECONDS_PER s per row"
printf '%-14s %10s %9s %9s %9s %10s %12s %12s\n' mode "req/s" "p50 us" "p99 us" ratio "epochs/s" "pause p50" "pause p99"
line=$(bench)
base=$(kv "$line" throughput_rps)
printf '%-14s %10s %9s %9s %9s %10s %12s %12s\n' unprotected "$base" "$(kv "$line" p50_us)" "$(kv "$line" p99_us)" 1.00 - - -

for iv in $INTERVALS; do
  "$XLT" -s "$T/A.sock" protect -i "$iv" kv1 $IP_B >/dev/null || fail "protect -i $iv"
  wait_for 20 state_is A kv1 protected || fail "not protected at $iv ms"
  e0=$(field epochs); t0=$(now_ns)
  line=$(bench)
  e1=$(field epochs); t1=$(now_ns)
  rate=$(awk -v e=$((e1 - e0)) -v t=$((t1 - t0)) 'BEGIN{printf "%.0f", e / (t / 1e9)}')
  rps=$(kv "$line" throughput_rps)
  printf '%-14s %10s %9s %9s %9s %10s %9s us %9s us\n' "protect ${iv}ms" "$rps" \
    "$(kv "$line" p50_us)" "$(kv "$line" p99_us)" \
    "$(awk -v a="$rps" -v b="$base" 'BEGIN{printf "%.2f", a / b}')" "$rate" \
    "$(( $(stat_field pause_ns median) / 1000 ))" "$(( $(stat_field pause_ns p99) / 1000 ))"
  "$XLT" -s "$T/A.sock" unprotect kv1 >/dev/null
  wait_for 10 state_is A kv1 unprotected
  sleep 0.5
done

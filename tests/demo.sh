#!/bin/bash
# The main job, narrated: protect a micro-VM running a key-value service,
# serve a client, kill the primary host's tandemd (the VM dies with it), and
# show the backup taking over with the client's writes intact.
# Needs root (network namespaces). Run from a built tree (tests/quickstart.sh
# builds first).
. "$(dirname "$0")/integration/lib.sh"
top_builddir=${top_builddir:-$(pwd)}
need_root_netns

T=$(mktemp -d /tmp/tdm-demo.XXXXXX)
cleanup() { net_teardown; rm -rf "$T"; }
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

net_setup
say "network: client $NS_C, primary host A ($NS_A), backup host B ($NS_B), one switch"

echo "client $IP_C   host A $IP_A   host B $IP_B   guest $IP_G ($MAC_G)"
start_daemon A
start_daemon B

say "xl-tandem create: a micro-VM with a key-value service, on host A"
domain_cfg | tee "$T/kv1.cfg"
"$XLT" -s "$T/A.sock" create "$T/kv1.cfg" || fail "create"
in_c "$KVC" -s $IP_G:7000 wait -T 10000 >/dev/null || fail "guest did not answer"
"$XLT" -s "$T/A.sock" list

say "xl-tandem protect kv1 $IP_B  (40 Hz epochs; backup on host B)"
t0=$(now_ns)
"$XLT" -s "$T/A.sock" protect kv1 $IP_B || fail "protect"
wait_for 20 state_is A kv1 protected || fail "not protected"
echo "protected after $(( ($(now_ns) - t0) / 1000000 )) ms (first epoch: every page)"

say "a client writes (PUT + INCR), counting a write only when its reply arrives"
ip netns exec $NS_C "$KVC" -s $IP_G:7000 load -d 60 -k 500 -o "$T/ack.log" >"$T/load.out" 2>&1 &
LOAD=$!
sleep 3
"$XLT" -s "$T/A.sock" status kv1

say "kill -9 the primary's tandemd (the VM dies with it)"
KILL_NS=$(now_ns)
kill -9 $PID_A; wait $PID_A 2>/dev/null
wait_for 10 state_is B kv1 unprotected || fail "backup did not take over"
echo "host B runs kv1 after $(( ($(now_ns) - KILL_NS) / 1000000 )) ms"
sleep 2
kill -TERM $LOAD; wait $LOAD
FIRST=$(first_after_gap "$T/ack.log" $KILL_NS)
echo "first reply served by the backup: $(( (FIRST - KILL_NS) / 1000000 )) ms after the kill"
cat "$T/load.out"

say "host B's view"
"$XLT" -s "$T/B.sock" status kv1

say "read back every acknowledged write from the new primary"
in_c "$KVC" -s $IP_G:7000 verify -i "$T/ack.log" || fail "acknowledged writes lost"
echo
echo "demo complete: no acknowledged write lost"

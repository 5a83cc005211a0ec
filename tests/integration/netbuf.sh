#!/bin/bash
# libs/netbuf on real interfaces: a sender S behind the buffered interface,
# a receiver R on the far side, a host H in between where netbuf-ctl holds
# what arrives from S. Packets of epoch N must reach R only after
# release(N), in order, none lost, none duplicated; a discard drops exactly
# the unreleased epochs; a full queue drops and counts; nothing is left
# behind after close, and a crashed instance's leftovers are removed by the
# next open.
#
# NETBUF_BACKEND=nfqueue (default; CI) or plug (the Xen rig's dom0: this
# build machine's kernel has no sch_plug). Both topologies run: H routes
# between S and R, and H bridges them.
set -u
. "$(dirname "$0")/lib.sh"
KIND=${NETBUF_BACKEND:-nfqueue}
# A command runs iptables (nfqueue) or netlink (plug) synchronously; under
# the Xen rig's software emulation four iptables runs once took over 5 s.
CTL_WAIT=${NETBUF_CTL_WAIT:-30}
NBC=$top_builddir/tests/tools/netbuf-ctl
UDPSEQ=$top_builddir/tests/tools/udpseq

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
for f in "$NBC" "$UDPSEQ"; do [ -x "$f" ] || skip "not built: $f"; done
command -v iptables >/dev/null || [ "$KIND" = plug ] || skip "needs iptables"
ip netns add tdm-probe-$$ 2>/dev/null || skip "cannot create network namespaces here"
ip netns del tdm-probe-$$

S=$$ NS_S=tdm-nbs-$$ NS_H=tdm-nbh-$$ NS_R=tdm-nbr-$$
T=$(mktemp -d /tmp/tdm-netbuf.XXXXXX)
CTL_PID= RCV_PID=
cleanup() {
  exec 7>&- 2>/dev/null
  for ns in $NS_S $NS_H $NS_R; do
    ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del $ns 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT

FAILS=0
check() { # check DESCRIPTION CMD...
  if "${@:2}"; then echo "PASS: [$KIND/$TOPO] $1"; else echo "FAIL: [$KIND/$TOPO] $1"; FAILS=$((FAILS + 1)); fi
}

probe_path() {
  ip netns exec $NS_S "$UDPSEQ" send $DST 9000 0 0
  sleep 0.1
  grep -q '^0 ' "$T/rcv"
}

# topo routed|bridged
setup() {
  TOPO=$1
  for ns in $NS_S $NS_H $NS_R; do
    ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del $ns 2>/dev/null
    ip netns add $ns; ip -n $ns link set lo up
  done
  ip link add hS netns $NS_H type veth peer name eth0 netns $NS_S
  ip link add hR netns $NS_H type veth peer name eth0 netns $NS_R
  for ns in $NS_S $NS_R; do
    ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  done
  ip netns exec $NS_H sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  if [ "$TOPO" = routed ]; then
    ip -n $NS_S addr add 10.88.0.2/24 dev eth0
    ip -n $NS_R addr add 10.88.1.2/24 dev eth0
    ip -n $NS_H addr add 10.88.0.1/24 dev hS
    ip -n $NS_H addr add 10.88.1.1/24 dev hR
    ip netns exec $NS_H sysctl -qw net.ipv4.ip_forward=1
    GW_S=10.88.0.1 GW_R=10.88.1.1 DST=10.88.1.2
  else
    ip -n $NS_H link add br0 type bridge
    ip -n $NS_H link set hS master br0
    ip -n $NS_H link set hR master br0
    ip -n $NS_H link set br0 up
    ip -n $NS_S addr add 10.88.0.2/24 dev eth0
    ip -n $NS_R addr add 10.88.0.3/24 dev eth0
    DST=10.88.0.3
  fi
  for l in "$NS_S eth0" "$NS_R eth0" "$NS_H hS" "$NS_H hR"; do
    set -- $l; ip -n $1 link set $2 up
  done
  # Static neighbours: an ARP request held in a plug would stall the test.
  local mac_r mac_s
  mac_s=$(ip -n $NS_S -br link show eth0 | awk '{print $3}')
  mac_r=$(ip -n $NS_R -br link show eth0 | awk '{print $3}')
  if [ "$TOPO" = routed ]; then
    local mac_hs mac_hr
    mac_hs=$(ip -n $NS_H -br link show hS | awk '{print $3}')
    mac_hr=$(ip -n $NS_H -br link show hR | awk '{print $3}')
    ip -n $NS_S route add default via $GW_S
    ip -n $NS_R route add default via $GW_R
    ip -n $NS_S neigh replace $GW_S lladdr $mac_hs nud permanent dev eth0
    ip -n $NS_H neigh replace 10.88.1.2 lladdr $mac_r nud permanent dev hR
    ip -n $NS_H neigh replace 10.88.0.2 lladdr $mac_s nud permanent dev hS
    ip -n $NS_R neigh replace $GW_R lladdr $mac_hr nud permanent dev eth0
  else
    ip -n $NS_S neigh replace 10.88.0.3 lladdr $mac_r nud permanent dev eth0
    ip -n $NS_R neigh replace 10.88.0.2 lladdr $mac_s nud permanent dev eth0
  fi
  : >"$T/rcv"
  ip netns exec $NS_R "$UDPSEQ" recv 9000 "$T/rcv" &
  RCV_PID=$!
  sleep 0.2
  # A new bridge port may take a moment to forward: probe until it does.
  wait_for 5 probe_path || fail "no path S -> R ($TOPO)"
  : >"$T/rcv"
}

# ctl_start [netbuf-ctl options]: netbuf-ctl on hS in H, commands via fd 7
ctl_start() {
  rm -f "$T/fifo" "$T/ctl.out"; mkfifo "$T/fifo"
  ip netns exec $NS_H "$NBC" --kind "$KIND" "$@" hS <"$T/fifo" >"$T/ctl.out" 2>"$T/ctl.err" &
  CTL_PID=$!
  exec 7>"$T/fifo"
  wait_for $CTL_WAIT grep -q '^ok open' "$T/ctl.out" || { cat "$T/ctl.err"; fail "netbuf-ctl did not open hS"; }
}
lines_gt() { [ "$(wc -l <"$1")" -gt "$2" ]; }
# ctl CMD: send one command and wait for its answer
ctl() {
  local n; n=$(wc -l <"$T/ctl.out")
  echo "$*" >&7
  wait_for $CTL_WAIT lines_gt "$T/ctl.out" "$n" || fail "netbuf-ctl: no answer to '$*'"
  tail -n 1 "$T/ctl.out" | grep -q '^ok' || { cat "$T/ctl.err"; fail "netbuf-ctl: $(tail -n 1 "$T/ctl.out")"; }
}
ctl_stop() { exec 7>&-; wait $CTL_PID 2>/dev/null; CTL_PID=; }

send() { ip netns exec $NS_S "$UDPSEQ" send $DST 9000 $1 $2; }
# received: the sequence numbers R has, in arrival order, one per line
received() { awk '{print $1}' "$T/rcv"; }
# expect_exactly "A-B C-D ...": R has exactly these, in this order
expect_seq() {
  local want; want=$(for r in $1; do seq ${r%-*} ${r#*-}; done)
  [ "$(received)" = "$want" ]
}
# settle: let anything released reach R
settle() { sleep ${1:-0.3}; }
wait_count() { wait_for 3 lines_gt "$T/rcv" $(($1 - 1)); settle 0.2; }
leftovers() {
  if [ "$KIND" = plug ]; then
    ip -n $NS_H link show | grep -q tdmifb && return 0
    tc -n $NS_H qdisc show dev hS 2>/dev/null | grep -q ingress && return 0
    return 1
  fi
  ip netns exec $NS_H iptables -w -t mangle -S PREROUTING | grep -q tandem-netbuf
}

no_leftovers() { ! leftovers; }

run_topology() {
  setup "$1"
  ctl_start
  # -- epochs released in order, nothing early
  ctl hold 1;    send 1 50
  ctl cut 2;     send 51 100
  ctl cut 3;     send 101 150
  settle
  check "nothing leaves before its epoch is released" test "$(wc -l <"$T/rcv")" = 0
  ctl release 1; wait_count 50
  check "release 1 lets out exactly epoch 1, in order" expect_seq "1-50"
  ctl cut 4;     send 151 200
  ctl release 2; ctl release 3; wait_count 150; settle
  if [ "$KIND" = nfqueue ]; then
    check "releases 2, 3 let out exactly epochs 1-3, in order" expect_seq "1-150"
  else
    # sch_plug holds two epochs: 3 was merged into 2's successor, so it may
    # wait for one more cut; never anything of epoch 4.
    check "releases 2, 3 let out no packet of epoch 4" sh -c "! awk '\$1 > 150' '$T/rcv' | grep -q ."
  fi
  ctl cut 5; ctl release 4; wait_count 200
  check "after release 4: epochs 1-4, in order, none lost or duplicated" expect_seq "1-200"
  # -- discard drops exactly what is not released
  send 201 250          # epoch 5
  ctl cut 6; send 251 300
  ctl discard
  send 301 350          # still epoch 6
  ctl cut 7; ctl release 5; ctl release 6
  ctl cut 8; ctl release 7; wait_count 250; settle
  check "discard dropped exactly the unreleased epochs 5-6 (before it)" expect_seq "1-200 301-350"
  ctl stats
  check "stats count the discarded packets" grep -q "discarded=100 " "$T/ctl.out"
  # -- close removes everything; traffic passes
  ctl close; ctl_stop
  check "nothing left after close" no_leftovers
  send 351 360; wait_count 260
  check "after close packets pass unheld" expect_seq "1-200 301-360"
  # -- a crashed instance's leftovers are removed by the next open
  ctl_start; ctl hold 1; send 361 370
  kill -9 $CTL_PID; wait $CTL_PID 2>/dev/null; exec 7>&-
  check "a SIGKILLed instance leaves its objects behind (precondition)" leftovers
  ctl_start
  check "the next open removed them (and said so)" grep -q "earlier run" "$T/ctl.err"
  ctl close; ctl_stop
  check "nothing left after the second close" no_leftovers
  # -- a full queue drops and counts, never releases early
  : >"$T/rcv"
  if [ "$KIND" = nfqueue ]; then ctl_start --limit 20; else ctl_start --limit 3000; fi
  ctl hold 1; send 1001 1100; settle
  check "a full queue releases nothing early" test "$(wc -l <"$T/rcv")" = 0
  ctl stats
  dropped=$(tail -n 1 "$T/ctl.out" | sed -n 's/.* dropped=\([0-9]*\).*/\1/p')
  ctl cut 2; ctl release 1; settle 0.5
  got=$(wc -l <"$T/rcv")
  check "a full queue counts its drops (got $got, dropped $dropped of 100)" \
    test "$dropped" -gt 0 -a $((got + dropped)) -ge 100 -a "$got" -gt 0
  ctl close; ctl_stop
  kill $RCV_PID 2>/dev/null
}

for topo in ${NETBUF_TOPOLOGIES:-routed bridged}; do run_topology $topo; done
[ $FAILS = 0 ] || fail "$FAILS check(s) failed"
echo "netbuf ($KIND): all checks passed"

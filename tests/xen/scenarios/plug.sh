#!/bin/bash
# rig: about dom0's kernel does sch_plug, ifb and mirred (what tandem's netbuf needs)
# A veth pair between dom0 and a network namespace "peer"; traffic arriving
# on dom0's end is redirected (ingress, u32, mirred) to ifbrig0, whose root
# qdisc is a plug. A ping from the peer must be held while the plug is
# plugged and released by "release_indefinite"; and the Remus sequence
# buffer -> release lets one epoch's packets through. iproute2's tc adds
# the plug but cannot send its commands: /rig/bin/plugctl does (netlink).
. /rig/helpers.sh
set -u
cleanup() { ip netns del peer 2>/dev/null; ip link del vrig0 2>/dev/null; ip link del ifbrig0 2>/dev/null; ip link del xenbr-rig 2>/dev/null; }
trap cleanup EXIT

# 1. a plug qdisc on a bridge (like xenbr0 where the guest's vif sits)
ip link add xenbr-rig type bridge && ip link set xenbr-rig up
check "tc qdisc add dev xenbr-rig root plug" tc qdisc add dev xenbr-rig root plug 
tc qdisc show dev xenbr-rig | grep -q plug && pass "plug qdisc listed on the bridge" || fail "plug qdisc listed on the bridge"

# 2. ifb + mirred + plug, functional
ip netns add peer || { fail "ip netns add"; exit 1; }
ip link add vrig0 type veth peer name vrig1 || { fail "veth pair"; exit 1; }
ip link set vrig1 netns peer
ip addr add 10.99.0.1/24 dev vrig0 && ip link set vrig0 up
ip -n peer addr add 10.99.0.2/24 dev vrig1 && ip -n peer link set vrig1 up && ip -n peer link set lo up
check "ip link add ifbrig0 type ifb" ip link add ifbrig0 type ifb
ip link set ifbrig0 up
check "tc qdisc add dev vrig0 ingress" tc qdisc add dev vrig0 ingress
check "tc filter u32 match all action mirred egress redirect dev ifbrig0" \
  tc filter add dev vrig0 parent ffff: protocol ip prio 10 u32 match u32 0 0 \
    action mirred egress redirect dev ifbrig0
check "tc qdisc add dev ifbrig0 root plug" tc qdisc add dev ifbrig0 root plug 
check "ping through ifb while the plug releases (release_indefinite)" \
  sh -c 'plugctl ifbrig0 release_indefinite && ip netns exec peer ping -c 2 -W 3 10.99.0.1 >/dev/null'

# held: block, then a ping from the peer must get no answer
plugctl ifbrig0 buffer   # plug again: hold from now on
if ip netns exec peer ping -c 1 -W 2 10.99.0.1 >/dev/null; then
  fail "plug (buffer) holds packets redirected to ifbrig0"
else
  pass "plug (buffer) holds packets redirected to ifbrig0"
fi
held=$(tc -s qdisc show dev ifbrig0 | awk '/backlog/ { print $3; exit }')
note "ifbrig0 backlog while blocked: $held"

# Remus sequence: packets of epoch N sit behind a buffer marker until "release"
ip netns exec peer ping -c 1 -W 6 10.99.0.1 >/tmp/plug-ping.out 2>&1 &
pp=$!
sleep 2
plugctl ifbrig0 buffer   # close epoch N (marker)
kill -0 "$pp" 2>/dev/null && pass "echo request of epoch N still held before release" ||
  fail "echo request of epoch N still held before release"
plugctl ifbrig0 release  # ack of epoch N: release up to the marker
if wait "$pp"; then
  pass "plug buffer + release lets epoch N's packets out"
else
  fail "plug buffer + release lets epoch N's packets out ($(tail -2 /tmp/plug-ping.out))"
fi
tc -s qdisc show dev ifbrig0 | sed 's/^/# /'
finish

#!/bin/bash
# rig: about netbuf on a real PVH guest's vif: found from xenstore, its output held and released by epoch (plug)
# rig: needs tandem
# The xen side of output commit: a guest with a vif on xenbr0 pings dom0
# five times a second. netbuf-ctl finds the guest's vif from xenstore (as
# the xen driver does), holds what the guest sends with sch_plug, lets one
# epoch out on release, and leaves nothing behind on close.
. /rig/helpers.sh
need_tandem
NBC=/opt/tandem/build/tests/tools/netbuf-ctl
modprobe xen-netback 2>/dev/null; modprobe sch_plug 2>/dev/null
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null
  xl destroy nbvif >/dev/null 2>&1
  ip link del xenbr0 2>/dev/null
}
trap cleanup EXIT
rig_bridge ||
  { fail "xenbr0"; exit 1; }
cfg=$(rig_guest_cfg nbvif 128 "rig.ip=10.90.0.2/24,10.90.0.1")
echo "vif = [ 'bridge=xenbr0,mac=00:16:3e:5a:00:01' ]" >>"$cfg"
t0=$(now)
if ! out=$(xl create "$cfg" 2>&1); then echo "$out" | tail -10; fail "xl create with a vif"; exit 1; fi
wait_guest_counter nbvif 2 120 || { tail -20 "$(guest_log nbvif)"; fail "guest runs"; exit 1; }
grep -q "GUEST NET" "$(guest_log nbvif)" && pass "the guest's netfront is up" || note "no GUEST NET line yet"
domid=$(xl domid nbvif)
vifs=$("$NBC" --xen-vifs nbvif 2>&1)
check "netbuf finds the guest's vif from xenstore (got '$vifs', want vif$domid.0)" test "$vifs" = "vif$domid.0"
check "netbuf accepts the domid too" test "$("$NBC" --xen-vifs "$domid")" = "vif$domid.0"
unknown_is_error() { ! "$NBC" --xen-vifs nosuchdomain >/dev/null 2>/tmp/e && grep -q 'no domain named' /tmp/e; }
check "an unknown domain is a clear error" unknown_is_error
vif=vif$domid.0
# 1 s of pings from the guest must arrive on dom0's bridge before we hold
rx() { cat /sys/class/net/xenbr0/statistics/rx_packets; }
r0=$(rx); sleep 1; r1=$(rx)
check "the guest's pings reach dom0 unheld ($((r1 - r0)) packets in 1 s)" test $((r1 - r0)) -ge 3
rm -f /tmp/nbf /tmp/nb.out; mkfifo /tmp/nbf; : >/tmp/nb.out
"$NBC" --kind plug "$vif" </tmp/nbf >/tmp/nb.out 2>/tmp/nb.err &
pid=$!
exec 7>/tmp/nbf
for _ in $(seq 100); do grep -q '^ok open' /tmp/nb.out 2>/dev/null && break; sleep 0.05; done
# cmd LINE: send a command, wait for its answer (a line of /tmp/nb.out):
# a hold measured before netbuf-ctl applied it would count early packets
cmd() {
  local n; n=$(wc -l </tmp/nb.out)
  echo "$*" >&7
  for _ in $(seq 100); do [ "$(wc -l </tmp/nb.out)" -gt "$n" ] && return 0; sleep 0.05; done
  note "no answer to '$*' within 5 s"
}
cmd hold 1
r0=$(rx); sleep 1; r1=$(rx)
check "while epoch 1 is open, nothing the guest sends reaches dom0 ($((r1 - r0)) packets)" test $((r1 - r0)) -le 1
cmd stats
held=$(grep stats /tmp/nb.out | tail -1 | sed -n 's/.* held=\([0-9]*\).*/\1/p')
check "the plug holds the guest's packets (held=$held)" test "${held:-0}" -ge 3
cmd cut 2
r0=$(rx); cmd release 1; sleep 0.2; r1=$(rx)
check "release 1 lets epoch 1 out ($((r1 - r0)) packets)" test $((r1 - r0)) -ge 3
tc qdisc show dev "$vif" | grep -q ingress && pass "ingress redirect on $vif while open" || fail "no ingress redirect on $vif"
cmd close
exec 7>&-
wait $pid
cat /tmp/nb.out | sed 's/^/# /'
nothing_left() { ! tc qdisc show dev "$vif" | grep -q ingress && ! ip link show | grep -q tdmifb; }
check "nothing left on $vif after close" nothing_left
r0=$(rx); sleep 1; r1=$(rx)
check "after close the guest's packets pass again ($((r1 - r0)) in 1 s)" test $((r1 - r0)) -ge 3
finish

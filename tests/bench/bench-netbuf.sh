#!/bin/bash
# Output commit in the kernel (libs/netbuf), measured two ways, one run,
# side by side. Prints tables; never fails on a time. Needs root.
#
# 1. Added latency per packet with the real engine: the micro-VM's KV
#    service answered one request at a time (so every reply is one held
#    packet), unprotected, then protected at 40 Hz and 100 Hz with the
#    reply held by the device model (devmodel) or by NFQUEUE on the TAP
#    (nfqueue). A client that sends its next request when the last reply
#    arrives is in step with the epochs: its request lands at the start of
#    an epoch and the reply waits the whole epoch, so its floor is one
#    interval plus the ACK time (resume to ACK, median, from the engine's
#    own status).
# 2. Throughput through a buffered interface against the same path
#    unbuffered: TCP bulk (iperf3) and UDP request/response through a veth
#    pair whose ingress netbuf-ctl holds, cutting at 40 / 100 Hz and
#    releasing each epoch ACK_MS after its cut (the engine's timing without
#    a VM); and the one-way delay of packets sent at a steady 1 kHz, not in
#    step with the epochs, against its floor of half an epoch plus ACK_MS.
#
#   SECONDS_PER=N (default 6)   ACK_MS=N (default 2)   KINDS="nfqueue"
. "$(dirname "$0")/../integration/lib.sh"
need_root_netns
SECONDS_PER=${SECONDS_PER:-6}
ACK_MS=${ACK_MS:-2}
KINDS=${KINDS:-nfqueue}
NBC=$top_builddir/tests/tools/netbuf-ctl
UDPSEQ=$top_builddir/tests/tools/udpseq

T=$(mktemp -d /tmp/tdm-bench-nb.XXXXXX)
cleanup() {
  net_teardown
  for ns in $NS_S $NS_H $NS_R; do
    ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del $ns 2>/dev/null
  done
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
NS_S=tdm-bns-$$ NS_H=tdm-bnh-$$ NS_R=tdm-bnr-$$
trap cleanup EXIT

# ---- 1. the engine
net_setup
start_daemon A
start_daemon B
stat_field() { # stat_field STAT KEY
  "$XLT" -s "$T/A.sock" -j status kv1 | grep -o "\"$1\":{[^}]*}" | grep -o "\"$2\":[0-9]*" | cut -d: -f2
}
kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
lat() { in_c "$KVC" -s $IP_G:7000 bench -d "$SECONDS_PER" -k 64 -w 1 | tail -n 1; }

echo "1. added latency per reply packet, one request in flight, $SECONDS_PER s per row"
printf '%-22s %9s %9s %11s %11s %11s %9s\n' mode "p50 us" "p99 us" "added p50" "added p99" "floor us" "ack us"
# floor: one interval + the ACK time (closed loop, see above)
base50= base99=
for mech in devmodel $KINDS; do
  NETBUF=$mech domain_cfg >"$T/kv1.cfg"
  "$XLT" -s "$T/A.sock" create "$T/kv1.cfg" >/dev/null || fail "create ($mech)"
  in_c "$KVC" -s $IP_G:7000 wait -T 10000 >/dev/null || fail "guest did not answer"
  if [ -z "$base50" ]; then
    line=$(lat)
    base50=$(kv "$line" p50_us) base99=$(kv "$line" p99_us)
    printf '%-22s %9s %9s %11s %11s %11s %9s\n' unprotected "$base50" "$base99" - - - -
  fi
  for iv in 25 10; do
    "$XLT" -s "$T/A.sock" protect -i $iv kv1 $IP_B >/dev/null || fail "protect"
    wait_for 20 state_is A kv1 protected || fail "not protected"
    line=$(lat)
    ack=$(( $(stat_field ack_ns median) / 1000 ))
    p50=$(kv "$line" p50_us) p99=$(kv "$line" p99_us)
    printf '%-22s %9s %9s %11s %11s %11s %9s\n' "$mech $((1000 / iv)) Hz (-i $iv)" \
      "$p50" "$p99" $((p50 - base50)) $((p99 - base99)) $((iv * 1000 + ack)) "$ack"
    "$XLT" -s "$T/A.sock" unprotect kv1 >/dev/null
    wait_for 10 state_is A kv1 unprotected
  done
  "$XLT" -s "$T/A.sock" destroy kv1 >/dev/null
  sleep 0.5
done
net_teardown

# ---- 2. an interface, unbuffered and buffered
command -v iperf3 >/dev/null || { echo "2. skipped: iperf3 is not installed"; exit 0; }
for ns in $NS_S $NS_H $NS_R; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add hS netns $NS_H type veth peer name eth0 netns $NS_S
ip link add hR netns $NS_H type veth peer name eth0 netns $NS_R
ip -n $NS_S addr add 10.89.0.2/24 dev eth0
ip -n $NS_R addr add 10.89.1.2/24 dev eth0
ip -n $NS_H addr add 10.89.0.1/24 dev hS
ip -n $NS_H addr add 10.89.1.1/24 dev hR
for l in "$NS_S eth0" "$NS_R eth0" "$NS_H hS" "$NS_H hR"; do set -- $l; ip -n $1 link set $2 up; done
ip netns exec $NS_H sysctl -qw net.ipv4.ip_forward=1
ip -n $NS_S route add default via 10.89.0.1
ip -n $NS_R route add default via 10.89.1.1
ip netns exec $NS_R iperf3 -s -D -1 >/dev/null 2>&1 || true
ip netns exec $NS_R "$UDPSEQ" echo 9100 &
sleep 0.5

tcp() { # Mbit/s of a TCP bulk transfer S -> R
  ip netns exec $NS_R iperf3 -s -D -1 >/dev/null 2>&1
  sleep 0.3
  ip netns exec $NS_S iperf3 -c 10.89.1.2 -t "$SECONDS_PER" -J 2>/dev/null |
    awk -F: '/"bits_per_second"/ { v = $2 } END { gsub(/[ ,]/, "", v); printf "%.0f", v / 1e6 }'
}
oneway() { # one-way delay of a steady 1 kHz stream: "p50 p99" (us)
  : >"$T/ow"
  ip netns exec $NS_R "$UDPSEQ" recv 9200 "$T/ow" &
  local rp=$!
  sleep 0.2
  ip netns exec $NS_S "$UDPSEQ" send 10.89.1.2 9200 1 $(( SECONDS_PER * 1000 )) 997
  sleep 0.5
  kill $rp; wait $rp 2>/dev/null
  sort -n -k2 "$T/ow" | awk '{ d[NR] = $2 } END { if (NR) printf "%d %d", d[int(NR * 0.5) + 1], d[int(NR * 0.99) + 1]; else printf "- -" }'
}
rr() { # request/response: "rr/s p50 p99"
  local n=$(( SECONDS_PER * 200 )) out
  out=$(ip netns exec $NS_S "$UDPSEQ" rr 10.89.1.2 9100 $n 2>&1)
  echo "$out" | awk '{ for (i = 1; i <= NF; i++) { if ($i == "median") m = $(i+1); if ($i == "p99") p = $(i+1) } }
    END { printf "%s %s %.0f", m, p, (m > 0 ? 1e6 / m : 0) }'
}

echo
echo "2. one buffered interface (veth, routed), release ${ACK_MS} ms after each cut, $SECONDS_PER s per row"
printf '%-16s %10s %7s %10s %10s %8s %7s %11s %11s %9s\n' mode "TCP Mbit/s" ratio "RR p50 us" "RR p99 us" "RR/s" ratio "1way p50" "1way p99" "floor us"
b_tcp=$(tcp); set -- $(rr); b_rr=$3; ow=$(oneway)
printf '%-16s %10s %7s %10s %10s %8s %7s %11s %11s %9s\n' unbuffered "$b_tcp" 1.00 "$1" "$2" "$3" 1.00 $ow -
for kind in $KINDS; do
  for hz in 40 100; do
    ip netns exec $NS_H "$NBC" --kind $kind --auto $hz "$ACK_MS" hS </dev/null >/dev/null 2>"$T/nbc.err" &
    NBPID=$!
    sleep 0.5
    t=$(tcp); set -- $(rr); ow=$(oneway)
    printf '%-16s %10s %7s %10s %10s %8s %7s %11s %11s %9s\n' "$kind $hz Hz" "$t" \
      "$(awk -v a="$t" -v b="$b_tcp" 'BEGIN{printf "%.3f", b ? a / b : 0}')" "$1" "$2" "$3" \
      "$(awk -v a="$3" -v b="$b_rr" 'BEGIN{printf "%.3f", b ? a / b : 0}')" $ow \
      $(( 500000 / hz + ACK_MS * 1000 ))
    kill $NBPID; wait $NBPID 2>/dev/null
  done
done

# Shared helpers for the integration tests (sourced).
#
# A test builds its own little network out of namespaces and veths, all
# named with a per-run suffix, and tears it down in a trap. Only addresses
# inside those namespaces are ever used.

: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
TANDEMD=$top_builddir/daemon/tandemd
XLT=$top_builddir/xl-plugin/xl-tandem
KVC=$top_builddir/tests/tools/kvclient
GUEST=$top_builddir/guest/kv-guest.bin

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
note() { echo "# $*"; }

need_root_netns() {
  [ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
  command -v ip >/dev/null || skip "needs ip (iproute2)"
  [ -c /dev/net/tun ] || skip "needs /dev/net/tun"
  ip netns add tdm-probe-$$ 2>/dev/null || skip "cannot create network namespaces here"
  ip netns del tdm-probe-$$
  for f in "$TANDEMD" "$XLT" "$KVC" "$GUEST"; do
    [ -e "$f" ] || skip "not built: $f"
  done
}

now_ns() { date +%s%N; }

# wait_for SECONDS CMD...: poll until CMD succeeds
wait_for() {
  local t=$1; shift
  local end=$(( $(date +%s%N) + t * 1000000000 ))
  while [ "$(date +%s%N)" -lt "$end" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}

# The network: a switch namespace with a bridge; client C and hosts A and B
# each on a veth into it. Hosts get a bridge of their own (brX) holding
# their uplink, where a guest's TAP is attached.
#   C 10.77.$NET.10   A 10.77.$NET.1   B 10.77.$NET.2   guest 10.77.$NET.100
net_setup() {
  S=$$
  NET=$(( (S % 200) + 20 ))
  NS_SW=tdm-sw-$S NS_C=tdm-c-$S NS_A=tdm-a-$S NS_B=tdm-b-$S
  IP_C=10.77.$NET.10 IP_A=10.77.$NET.1 IP_B=10.77.$NET.2 IP_G=10.77.$NET.100
  MAC_G=52:54:00:77:$(printf %02x $((NET % 256))):01
  ip netns add $NS_SW
  ip -n $NS_SW link add br0 type bridge
  ip -n $NS_SW link set br0 up
  ip -n $NS_SW link set lo up
  for h in C A B; do
    eval ns=\$NS_$h
    ip netns add $ns
    ip -n $ns link set lo up
    ip link add v$h-$S type veth peer name u$h-$S
    ip link set v$h-$S netns $NS_SW
    ip link set u$h-$S netns $ns
    ip -n $NS_SW link set v$h-$S master br0 up
  done
  ip -n $NS_C link set uC-$S name eth0
  ip -n $NS_C addr add $IP_C/24 dev eth0
  ip -n $NS_C link set eth0 up
  for h in A B; do
    eval ns=\$NS_$h ip=\$IP_$h
    ip -n $ns link set u$h-$S name eth0
    ip -n $ns link add brx type bridge
    ip -n $ns link set eth0 master brx up
    ip -n $ns addr add $ip/24 dev brx
    ip -n $ns link set brx up
  done
}

net_teardown() {
  for ns in $NS_C $NS_A $NS_B $NS_SW; do
    ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del $ns 2>/dev/null
  done
}

in_c() { ip netns exec $NS_C "$@"; }
in_a() { ip netns exec $NS_A "$@"; }
in_b() { ip netns exec $NS_B "$@"; }

# start_daemon HOST(A|B): tandemd in that namespace, socket in $T
start_daemon() {
  local h=$1 ns ip
  eval ns=\$NS_$h ip=\$IP_$h
  # each host its own disk-dir (DISK=1: the domain's disk is replicated)
  { echo "${TANDEM_CONF:-# defaults}"
    echo "disk-dir = \"$T/d$h\""
    echo "nbdkit-plugin = \"$top_builddir/libs/blkrep/nbdkit-tandem-plugin.so\""
  } >"$T/$h.conf"
  ip netns exec $ns "$TANDEMD" -f -s "$T/$h.sock" -l "$ip:7390" \
    -c "$T/$h.conf" $TANDEMD_OPTS >>"$T/$h.log" 2>&1 &
  eval PID_$h=$!
  wait_for 10 "$XLT" -s "$T/$h.sock" list || { cat "$T/$h.log"; fail "tandemd on $h did not start"; }
}

domain_cfg() {
  cat <<CFG
name = "kv1"
driver = "uvm"
memory = ${GUEST_MEM:-16}
kernel = "$GUEST"
extra = "${GUEST_EXTRA:-port=7000}"
vif = "mac=$MAC_G,ip=$IP_G/24,bridge=brx,tap=tdm-kv1"
CFG
  # NETBUF=nfqueue|plug: hold output in the kernel on the TAP instead of
  # the micro-VM's device-model queue.
  [ -z "${NETBUF:-}" ] || echo "netbuf = \"$NETBUF\""
  # DISK=1: the guest keeps its table on a disk image too, replicated
  # (tandem-domain.cfg(5): disk); disk_image makes a fresh one.
  [ -z "${DISK:-}" ] || echo "disk = \"$T/kv1.img\""
}

disk_image() {
  rm -f "$T/kv1.img" && truncate -s "${DISK_SIZE:-64M}" "$T/kv1.img"
}

need_disk() {
  command -v nbdkit >/dev/null || skip "needs nbdkit (apt-get install nbdkit)"
  [ -e "$top_builddir/libs/blkrep/nbdkit-tandem-plugin.so" ] ||
    skip "not built: the nbdkit plugin"
  [ -x "$top_builddir/tests/tools/kvdisk" ] || skip "not built: tests/tools/kvdisk"
}

# state HOST NAME: the domain's state as status -j reports it
dom_state() {
  "$XLT" -s "$T/$1.sock" -j status "$2" 2>/dev/null |
    sed -n 's/.*"state":"\([a-z]*\)".*/\1/p' | head -n 1
}
dom_role() {
  "$XLT" -s "$T/$1.sock" -j status "$2" 2>/dev/null |
    sed -n 's/.*"role":"\([a-z]*\)".*/\1/p' | head -n 1
}
state_is() { [ "$(dom_state "$1" "$2")" = "$3" ]; }

# first_after_gap ACKLOG KILL_NS: the timestamp that ends the longest gap
# between consecutive acknowledged writes after KILL_NS.
first_after_gap() {
  awk -v k="$2" '$1 == "ack" {
      if (prev && $2 > k && $2 - prev > best) { best = $2 - prev; at = $2 }
      prev = $2
    } END { if (at) print at }' "$1"
}

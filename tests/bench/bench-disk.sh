#!/bin/bash
# Disk replication figures (issue 5), side by side in one run:
#  - write throughput and latency of the same image served by plain nbdkit
#    (its file plugin), by tandem unprotected (nbdkit with our plugin, the
#    write log read by tandemd) and by tandem protected (every change also
#    sent to the backup, tagged with its epoch), from a libnbd client
#    (tests/bench/nbd-load) writing above the guest's own table;
#  - the initial sync of a DISK_SIZE (default 1 GiB) image of random bytes
#    (every chunk sent) and of the same size mostly zeroes (zero chunks are
#    not sent), from protect to the backup's disk in sync.
# Prints tables; never fails on a time. Needs root (namespaces: the
# micro-VM's network), nbdkit and a build.
#
#   SECONDS_PER=N   seconds of load per cell (default 5)
#   DISK_SIZE=1G    image size (truncate's syntax)
#   INTERVAL=25     epoch interval (ms) of the protected rows
. "$(dirname "$0")/../integration/lib.sh"
need_root_netns
need_disk
LOAD=$top_builddir/tests/bench/nbd-load
[ -x "$LOAD" ] || skip "not built: $LOAD"
SECONDS_PER=${SECONDS_PER:-5}
INTERVAL=${INTERVAL:-25}
export DISK_SIZE=${DISK_SIZE:-1G} DISK=1   # domain_cfg: disk = $T/kv1.img
OFF=$((64 << 20))   # the client writes above the guest's table

T=$(mktemp -d /tmp/tdm-bdisk.XXXXXX)
cleanup() {
  [ -n "${NBDKIT_PID:-}" ] && kill "$NBDKIT_PID" 2>/dev/null
  net_teardown; [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
net_setup

kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
status_disk() { # KEY: a number under "disk" in A's status
  "$XLT" -s "$T/A.sock" -j status kv1 | grep -o '"disk":{[^}]*}' |
    grep -o "\"$1\":[0-9]*" | cut -d: -f2
}
random_image() {
  rm -f "$T/kv1.img"
  head -c "$(numfmt --from=iec "$DISK_SIZE")" /dev/urandom >"$T/kv1.img"
}
sparse_image() {
  disk_image
  # a little data at the start, the rest zeroes
  head -c $((16 << 20)) /dev/urandom | dd of="$T/kv1.img" conv=notrunc status=none
}

# load SOCKET: the two workloads, one line each
load() {
  R4=$("$LOAD" -s "$1" -d "$SECONDS_PER" -b 4096 -q 1 -r -o $OFF) || fail "load on $1"
  S64=$("$LOAD" -s "$1" -d "$SECONDS_PER" -b 65536 -q 8 -o $OFF) || fail "load on $1"
}
row() { # MODE
  printf '%-22s %9s %8s %8s %7s | %9s %8s %8s %7s\n' "$1" \
    "$(kv "$R4" iops)" "$(kv "$R4" p50_us)" "$(kv "$R4" p99_us)" \
    "$(awk -v a="$(kv "$R4" iops)" -v b="$BASE4" 'BEGIN { printf "%.2f", a / b }')" \
    "$(kv "$S64" mbps)" "$(kv "$S64" p50_us)" "$(kv "$S64" p99_us)" \
    "$(awk -v a="$(kv "$S64" mbps)" -v b="$BASE64" 'BEGIN { printf "%.2f", a / b }')"
}

echo "disk write load: $DISK_SIZE image, $SECONDS_PER s per cell, protected rows at $INTERVAL ms epochs"
printf '%-22s %9s %8s %8s %7s | %9s %8s %8s %7s\n' mode "4K IOPS" "p50 us" "p99 us" ratio \
  "64K MB/s" "p50 us" "p99 us" ratio
printf '%-22s %36s | %36s\n' "" "random 4 KiB, 1 in flight" "sequential 64 KiB, 8 in flight"

# 1. plain nbdkit over the image
random_image
rm -f "$T/plain.sock"
nbdkit -f -U "$T/plain.sock" file "$T/kv1.img" >"$T/plain.log" 2>&1 &
NBDKIT_PID=$!
wait_for 10 test -S "$T/plain.sock" || fail "plain nbdkit did not start"
sleep 0.5
load "$T/plain.sock"
BASE4=$(kv "$R4" iops) BASE64=$(kv "$S64" mbps)
row "nbdkit file (baseline)"
kill $NBDKIT_PID; wait $NBDKIT_PID 2>/dev/null; NBDKIT_PID=

# 2. tandem, unprotected and protected, over the same image
start_daemon A
start_daemon B
domain_cfg >"$T/kv1.cfg"
"$XLT" -s "$T/A.sock" create "$T/kv1.cfg" || fail "create: $(tail -5 "$T/A.log")"
in_c "$KVC" -s $IP_G:7000 wait -T 10000 >/dev/null || fail "guest did not answer"
load "$T/dA/kv1.nbd"
row "tandem unprotected"
t0=$(now_ns)
"$XLT" -s "$T/A.sock" protect -i "$INTERVAL" kv1 $IP_B >/dev/null || fail "protect"
wait_for 600 state_is A kv1 protected || fail "not protected: $(tail -5 "$T/A.log")"
SYNC_RANDOM_NS=$(status_disk sync_ns) SYNC_RANDOM_SENT=$(status_disk sync_sent)
[ "${SYNC_RANDOM_NS:-0}" -gt 0 ] || fail "no disk sync in A's status: $("$XLT" -s "$T/A.sock" -j status kv1)"
PROTECT_S=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
load "$T/dA/kv1.nbd"
# a row is only what it says if protection held throughout
state_is A kv1 protected || fail "protection did not hold under the load: $(grep -E 'lost|refus' "$T/A.log" | tail -3); B: $(grep -E 'error|warn' "$T/B.log" | tail -3)"
row "tandem protected"
REC=$(status_disk records) THR=$(status_disk throttled)
echo "($REC changes replicated; the guest's writes waited for replication $THR times)"
"$XLT" -s "$T/A.sock" destroy kv1 >/dev/null

# 3. the initial sync of a mostly-zero image of the same size
sparse_image
"$XLT" -s "$T/A.sock" create "$T/kv1.cfg" || fail "create (sparse)"
in_c "$KVC" -s $IP_G:7000 wait -T 10000 >/dev/null || fail "guest did not answer"
"$XLT" -s "$T/A.sock" protect -i "$INTERVAL" kv1 $IP_B >/dev/null || fail "protect"
wait_for 600 state_is A kv1 protected || fail "not protected (sparse)"
SYNC_SPARSE_NS=$(status_disk sync_ns) SYNC_SPARSE_SENT=$(status_disk sync_sent)

echo
echo "initial sync of a $DISK_SIZE image (guest running, backup on the same host)"
printf '%-26s %10s %10s %12s %14s\n' image "seconds" "MB/s" "MiB sent" "to protected"
SIZE_B=$(numfmt --from=iec "$DISK_SIZE")
printf '%-26s %10s %10s %12s %14s\n' "random bytes" \
  "$(awk -v n="$SYNC_RANDOM_NS" 'BEGIN { printf "%.2f", n / 1e9 }')" \
  "$(awk -v n="$SYNC_RANDOM_NS" -v s="$SIZE_B" 'BEGIN { printf "%.0f", s / 1e6 / (n / 1e9) }')" \
  "$((SYNC_RANDOM_SENT >> 20))" "${PROTECT_S} s"
printf '%-26s %10s %10s %12s %14s\n' "16 MiB data, rest zeroes" \
  "$(awk -v n="$SYNC_SPARSE_NS" 'BEGIN { printf "%.2f", n / 1e9 }')" \
  "$(awk -v n="$SYNC_SPARSE_NS" -v s="$SIZE_B" 'BEGIN { printf "%.0f", s / 1e6 / (n / 1e9) }')" \
  "$((SYNC_SPARSE_SENT >> 20))" "-"
echo "(MB/s: image bytes covered per second; the backup's image starts sparse)"

#!/bin/bash
# rig: about the PVH test guest writing to a disk tandem replicates (issue 5): after a failover its ext4 is clean and holds every write it acknowledged
# rig: needs tandem
# Two tandemds in dom0, as in tandem-failover: A the primary, B the
# backup. A is given the guest with `disk = IMAGE` (an ext4 image made
# here): it serves the image with nbdkit and our plugin, connects a
# /dev/nbdN to it (nbd-client) and hot-plugs that into the running guest
# as xvdb. The guest (tests/xen/guest/init, rig.disk=) mounts it and
# writes key after key, each synced and then acknowledged over TCP to
# ackd in dom0 (tests/tools/ackd): an ack is guest output, held by netbuf
# until B has committed the epoch that made the write. A is stopped and
# started again while the guest writes: the guest's disk must stay served
# (nbdkit outlives tandemd) and the new A takes it over. Then A is
# SIGKILLed and the guest destroyed; B activates the replica on its own
# copy of the disk (its own /dev/nbdM, the restore's configuration
# rewritten to it), and the guest goes on writing there. Finally the guest
# is told to unmount (ackd answers STOP); e2fsck must find B's image clean
# and every acknowledged key must be in it, whole. The guest's memory
# workload is paced (rig.pace): this rig's emulated CPU kills guests now
# and then under log-dirty (HACKING.md, Known limits), the more often the
# more pages they dirty.
#   RIG_DISK_SECONDS      protected run before the kill (default 20)
#   RIG_DISK_MIB          the image's size (default 64)
. /rig/helpers.sh
need_tandem
G=tguest
DUR=${RIG_DISK_SECONDS:-20}
MIB=${RIG_DISK_MIB:-64}
MEM=96   # MiB: a shorter first epoch and time under log-dirty than 128
INT=100 HB=500 TMO=10000
T=/tmp/tdm-disk
rm -rf "$T"; mkdir -p "$T/A" "$T/B"
PA=7393 PB=7394 PACK=9000
ACKD=/opt/tandem/build/tests/tools/ackd

st() { timeout 5 xl-tandem -s "$T/$1.sock" -j status "$G" 2>/dev/null; }
# the engine's fields of a status (its "disk" object has a "state" too)
eng() { sed 's/"disk":{[^}]*}//' <<<"$1"; }
disk() { sed -n 's/.*"disk":{\([^}]*\)}.*/\1/p' <<<"$1"; }
num() { sed -n "s/.*\"$2\":\([0-9][0-9]*\).*/\1/p" <<<"$1" | head -1; }
str() { sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" <<<"$1" | head -1; }
logs() { for h in A B; do note "--- tandemd $h (last 30 lines)"; tail -30 "$T/$h.log" | sed 's/^/# /'; done; }
console() { note "--- console of $1 (last 15 lines)"; tail -15 "$(guest_log "$1")" 2>/dev/null | sed 's/^/# /'; }
wait_state() {  # HOST STATE SECONDS: false at once if the domain stopped
  local end=$((SECONDS + $3)) s
  while [ $SECONDS -lt $end ]; do
    s=$(str "$(eng "$(st "$1")")" state)
    [ "$s" = "$2" ] && return 0
    [ "$s" = stopped ] && return 1
    sleep 0.2
  done
  return 1
}
# acked: the keys ackd recorded, one per line, sorted, unique
acked() { sed -n 's/^ACK \([0-9][0-9]*\)$/\1/p' "$T/acks" | sort -n -u; }
last_acked() { acked | tail -1; }
wait_acks_above() {  # KEY SECONDS
  local end=$((SECONDS + $2)) k
  while [ $SECONDS -lt $end ]; do
    k=$(last_acked)
    [ "${k:-0}" -gt "$1" ] && return 0
    sleep 0.5
  done
  return 1
}
cleanup() {
  kill -9 "${PID_A:-}" "${PID_B:-}" "${PID_ACKD:-}" 2>/dev/null
  for d in "$G" "$G--incoming"; do xl destroy "$d" >/dev/null 2>&1; done
  for n in /sys/block/nbd*; do
    [ -e "$n/pid" ] && nbd-client -d "/dev/${n##*/}" >/dev/null 2>&1
  done
  # nbdkit outlives tandemd (its own session): not beyond this scenario
  pkill -f "nbdkit.*$T/" 2>/dev/null
  ip link del xenbr0 2>/dev/null
}
trap cleanup EXIT

for m in sch_plug ifb nbd; do modprobe "$m" 2>/dev/null; done
command -v nbd-client >/dev/null || { fail "nbd-client in dom0"; exit 1; }
[ -x "$ACKD" ] || { fail "ackd in the tandem build ($ACKD)"; exit 1; }
rig_bridge || { fail "xenbr0"; exit 1; }

# the guest's disk: a fresh ext4 image on the primary
truncate -s "${MIB}M" "$T/disk.img"
mkfs.ext4 -q -F "$T/disk.img" || { fail "mkfs.ext4 $T/disk.img"; exit 1; }
"$ACKD" 10.90.0.1 "$PACK" "$T/acks" "$T/stop" 2>>"$T/ackd.err" &
PID_ACKD=$!

cfg=$(rig_guest_cfg "$G" "$MEM" "rig.ip=10.90.0.2/24,10.90.0.1 rig.disk=$PACK rig.files=256 rig.pace=0.02")
echo "vif = [ 'bridge=xenbr0,mac=00:16:3e:5a:00:02' ]" >>"$cfg"
if ! out=$(xl create "$cfg" 2>&1); then
  echo "$out" | tail -10; fail "xl create $G"; exit 1
fi
wait_guest_counter "$G" 2 120 || { console "$G"; fail "guest $G runs"; exit 1; }

for h in A B; do
  printf 'xenstore = no\ndisk-dir = %s/%s\nnbdkit-plugin = %s\n' "$T" "$h" \
    /opt/tandem/build/libs/blkrep/nbdkit-tandem-plugin.so >"$T/$h.conf"
done
start_daemon() { local port; eval port=\$P$1; tandemd_start "$1" "$port" "$T"; }  # HOST
for h in A B; do start_daemon $h; done

# Bad disk settings are refused and change nothing.
printf 'name = %s\ndriver = xen\nmemory = %s\ndisk = %s\ndisk_vdev = hda\n' \
  "$G" "$MEM" "$T/disk.img" >"$T/bad.cfg"
out=$(xl-tandem -s "$T/A.sock" create "$T/bad.cfg" 2>&1); rc=$?
check "disk_vdev = hda is refused (rc $rc: $out)" \
  test $rc != 0 -a -z "$(xl-tandem -s "$T/A.sock" list 2>/dev/null | grep -w "$G")"
check "... and nothing was added to the guest" test -z "$(xl block-list "$G" 2>/dev/null | sed 1d)"

printf 'name = %s\ndriver = xen\nmemory = %s\ndisk = %s\n' "$G" "$MEM" "$T/disk.img" >"$T/$G.cfg"
t0=$(now)
if ! out=$(xl-tandem -s "$T/A.sock" create "$T/$G.cfg" 2>&1); then
  note "$out"; logs; fail "xl-tandem create $G with disk = $T/disk.img"; exit 1
fi
pass "A attached to $G and added its disk ($(grep -o 'on /dev/nbd[0-9]* added to domain [0-9]* as xvd[a-z]*' "$T/A.log" | tail -1))"
xl block-list "$G" | sed 's/^/# /'
if ! wait_acks_above 2 90; then
  console "$G"; logs; fail "the guest mounts its disk and its writes are acknowledged (unprotected)"; exit 1
fi
pass "the guest writes to its disk through tandem's export, unprotected (keys up to $(last_acked) acknowledged, $(since "$t0") s after the attach)"

# tandemd stops (a restart, an upgrade): the guest and its disk run on.
kill -TERM "$PID_A"; wait "$PID_A" 2>/dev/null
note "after A stopped: $(ls "$T/A" | tr '\n' ' '); nbdkit: $(pgrep -d, nbdkit)"
k=$(last_acked)
if wait_acks_above "$k" 60; then
  pass "tandemd A stopped: the guest's disk stays served, its writes go on (keys $k -> $(last_acked))"
else
  console "$G"; logs; fail "the guest's writes go on while tandemd is stopped"; exit 1
fi
start_daemon A
if ! out=$(xl-tandem -s "$T/A.sock" create "$T/$G.cfg" 2>&1); then
  note "$out"; logs; fail "xl-tandem create $G again after the restart"; exit 1
fi
check "the restarted A took over the disk's nbdkit and found the guest's disk in place ($(grep -o 'has its disk xvd[a-z]* on /dev/nbd[0-9]* from before tandemd restarted' "$T/A.log" | tail -1))" \
  grep -q 'took over nbdkit' "$T/A.log"
k=$(last_acked)
check "the guest's writes go on after the restart (keys $k -> $(last_acked))" wait_acks_above "$k" 60

t_protect=$(now)
if ! out=$(xl-tandem -s "$T/A.sock" protect -i "$INT" -H "$HB" -t "$TMO" "$G" "127.0.0.1:$PB" 2>&1); then
  note "$out"; logs; fail "xl-tandem protect $G"; exit 1
fi
if ! wait_state A protected 400; then
  logs; console "$G"; fail "$G protected within 400 s (state $(str "$(eng "$(st A)")" state))"; exit 1
fi
sync_s=$(since "$t_protect")
J=$(st A)
pass "$G protected with its disk ($sync_s s for the disk's sync and the first epoch; $(grep -o 'disk sync pass done: .*' "$T/A.log" | tail -1))"
k_protected=$(last_acked)
sleep "$DUR"
J=$(st A)
check "still protected after ${DUR} s of writes (state $(str "$(eng "$J")" state))" test "$(str "$(eng "$J")" state)" = protected
k_before=$(last_acked)
check "the guest's writes go on while protected (keys $k_protected -> $k_before acknowledged in ${DUR} s)" \
  test "${k_before:-0}" -gt "${k_protected:-0}"
disk_records=$(num "$(disk "$J")" records)
epochs=$(num "$(eng "$J")" epochs)

# The primary host dies.
t_kill=$(now)
kill -9 "$PID_A"; wait "$PID_A" 2>/dev/null
xl destroy "$G"
k_kill=$(last_acked)
note "primary killed; the last key acknowledged: $k_kill"
if wait_state B unprotected $((TMO / 1000 + 90)); then
  pass "B took over ($(since "$t_kill") s after the kill)"
else
  logs; fail "B took over within $((TMO / 1000 + 90)) s (state $(str "$(eng "$(st B)")" state))"; exit 1
fi
xl list | sed 's/^/# /'
rname=$G
xl list "$G--incoming" >/dev/null 2>&1 && rname=$G--incoming
xl block-list "$rname" | sed 's/^/# /'
# xenconsoled names the replica's log after the domain as it first saw it
rlogs="$(guest_log "$G--incoming") $(guest_log "$G")"
if wait_acks_above "$k_kill" 90; then
  pass "the replica writes to its disk on B and its acks reach dom0 (keys up to $(last_acked))"
else
  console "$G--incoming"; logs; fail "the replica's writes are acknowledged after the failover"
fi

# The guest unmounts its disk; the image must be clean and hold every
# acknowledged key.
touch "$T/stop"
end=$((SECONDS + 60)) unmounted=
while [ $SECONDS -lt $end ]; do
  # shellcheck disable=SC2086
  unmounted=$(cat $rlogs 2>/dev/null | grep -a -o 'DISK UNMOUNTED [0-9]*' | tail -1)
  [ -n "$unmounted" ] && break
  sleep 0.5
done
check "the replica unmounted its file system ($unmounted)" test -n "$unmounted"
k_last=$(last_acked)
img=$T/B/$G.img
out=$(e2fsck -f -n "$img" 2>&1); rc=$?
echo "$out" | tail -5 | sed 's/^/# e2fsck: /'
check "e2fsck -f -n finds B's image of the guest's file system clean (rc $rc)" test $rc = 0
rm -rf "$T/dump"; mkdir -p "$T/dump"
debugfs -R "rdump /k $T/dump" "$img" >/dev/null 2>&1
missing=0 bad=0 n=0
for k in $(acked); do
  n=$((n + 1))
  if [ ! -f "$T/dump/k/$k" ]; then
    missing=$((missing + 1)); [ $missing -le 5 ] && note "missing: key $k"
  elif [ "$(yes "key $k" | head -n 512 | cmp - "$T/dump/k/$k" >/dev/null 2>&1; echo $?)" != 0 ]; then
    bad=$((bad + 1)); [ $bad -le 5 ] && note "wrong content: key $k"
  fi
done
check "every acknowledged key is in B's image, whole ($n keys acknowledged, $missing missing, $bad wrong)" \
  test "$n" -gt 0 -a "$missing" = 0 -a "$bad" = 0
JB=$(eng "$(st B)")
check "B reports the failover (failovers=$(num "$JB" failovers))" test "$(num "$JB" failovers)" = 1

result "disk_image_mib=$MIB"
result "disk_protect_to_protected_s=$sync_s"
result "disk_keys_acked_unprotected=$k_protected"
result "disk_keys_acked_before_kill=$k_kill"
result "disk_keys_acked_total=$n"
result "disk_keys_acked_last=$k_last"
result "disk_keys_lost=$missing"
result "disk_records_primary=${disk_records:-}"
result "disk_epochs_primary=${epochs:-}"
result "disk_fsck_rc=$rc"
finish

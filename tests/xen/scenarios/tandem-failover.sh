#!/bin/bash
# rig: about tandemd protecting the PVH test guest with the xen driver, then a failover: the replica continues the guest's counter and network
# rig: needs tandem
# Two tandemds in dom0 replicate to localhost, as xl remus does on this
# rig: A is the primary, B keeps the replica through Xen's stock restore.
# A is told what to protect through xenstore (xl-tandem xs-protect,
# tandem-xenstore(7)): bad entries are refused, a restart of A leaves the
# guest running and attaches again. The guest has a vif on xenbr0 and
# pings dom0 five times a second; A holds its output with netbuf (plug on
# the vif) until B acknowledges. After RIG_TANDEM_SECONDS (30, as
# stock-remus) of epochs at RIG_TANDEM_INTERVAL_MS (100), A is SIGKILLed
# and the guest destroyed, as if the host had died. B must then run the guest, whose counter (printed
# on its console, read from xenconsoled's log) must go on from a value not
# below one the primary had reached before an epoch B acknowledged, and
# whose pings must reach dom0 again through the replica's new vif.
#   RIG_TANDEM_SUSPEND=cooperative|pause   the driver's suspend (default
#                                          cooperative)
#   RIG_TANDEM_MEASURE=1    report whether the replica runs (RESULT) rather
#                           than require it (tandem-pause.sh)
#   RIG_TANDEM_TIMEOUT_MS   the engine's failure timeout (default 10000)
# RESULT lines: checkpoints, pause (median/p99 ms, as the engine measures
# it: suspend to resume), dirty pages per checkpoint, the first (full)
# epoch, failover times, the counters on each side of the failover.
. /rig/helpers.sh
need_tandem
G=tguest
DUR=${RIG_TANDEM_SECONDS:-30}
INT=${RIG_TANDEM_INTERVAL_MS:-100}
SUSPEND=${RIG_TANDEM_SUSPEND:-cooperative}
MEASURE=${RIG_TANDEM_MEASURE:-}
# The first epoch copies the whole guest: A's live copy holds its event
# loop (2-3 s here under qemu's emulation) and no heartbeat leaves it
# meanwhile; B hands the epoch to its writer thread whole (under 1 s). The
# timeout must outlast that: see HACKING.md, "Known limits".
HB=500 TMO=${RIG_TANDEM_TIMEOUT_MS:-10000}
T=/tmp/tdm-$SUSPEND
rm -rf "$T"; mkdir -p "$T"
PA=7391 PB=7392

st() { timeout 5 xl-tandem -s "$T/$1.sock" -j status "$G" 2>/dev/null; }
num() { sed -n "s/.*\"$2\":\([0-9][0-9]*\).*/\1/p" <<<"$1" | head -1; }
str() { sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" <<<"$1" | head -1; }
# stat JSON KEY FIELD: a field of one of status's {count,median,p99,max}
stat() { sed -n "s/.*\"$2\":{[^}]*\"$3\":\([0-9][0-9]*\).*/\1/p" <<<"$1" | head -1; }
ms() { awk -v n="${1:-0}" 'BEGIN { printf "%.1f", n / 1e6 }'; }
rx() { cat /sys/class/net/xenbr0/statistics/rx_packets; }
logs() {
  [ -n "${RIG_TANDEM_QUIET:-}" ] || return 0
  for h in A B; do note "--- tandemd $h (last 25 lines)"; tail -25 "$T/$h.log" | sed 's/^/# /'; done
}
# replica_check WHAT CMD...: a check, or in measure mode a note
replica_check() {
  if [ -n "$MEASURE" ]; then
    local what=$1; shift
    if "$@"; then note "yes: $what"; else note "no: $what"; fi
  else
    check "$@"
  fi
}
wait_state() {  # HOST STATE SECONDS
  local end=$((SECONDS + $3)) s
  while [ $SECONDS -lt $end ]; do
    s=$(str "$(st "$1")" state)
    [ "$s" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
cleanup() {
  kill -9 "${PID_A:-}" "${PID_B:-}" ${TAILS:-} 2>/dev/null
  xenstore-rm /tool/tandem 2>/dev/null
  for d in "$G" "$G--incoming"; do xl destroy "$d" >/dev/null 2>&1; done
  ip link del xenbr0 2>/dev/null
}
trap cleanup EXIT

modprobe sch_plug 2>/dev/null; modprobe ifb 2>/dev/null
rig_bridge || { fail "xenbr0"; exit 1; }
cfg=$(rig_guest_cfg "$G" 128 "rig.ip=10.90.0.2/24,10.90.0.1")
echo "vif = [ 'bridge=xenbr0,mac=00:16:3e:5a:00:02' ]" >>"$cfg"
if ! out=$(xl create "$cfg" 2>&1); then
  echo "$out" | tail -10; fail "xl create $G with a vif"; exit 1
fi
wait_guest_counter "$G" 2 120 || { tail -20 "$(guest_log "$G")"; fail "guest $G runs"; exit 1; }
# Its network comes up after the counter: in a dom0 busy with earlier
# scenarios that took more than 20 s once.
end=$((SECONDS + 90))
while [ $SECONDS -lt $end ]; do
  r0=$(rx); sleep 1; r1=$(rx)
  [ $((r1 - r0)) -ge 3 ] && break
done
check "guest $G runs and pings dom0 ($((r1 - r0)) packets in 1 s)" test $((r1 - r0)) -ge 3
sleep 10
tb1=$(now); before=$(guest_rate "$G" "$(awk -v t="$tb1" 'BEGIN { printf "%.3f", t - 10 }')" "$tb1")

# A reads its domains from xenstore (tandem-xenstore(7)), as a dom0
# daemon does; B, sharing this dom0's xenstore, must not.
xenstore-rm /tool/tandem 2>/dev/null   # nothing from an earlier run
echo "xenstore = yes" >"$T/A.conf"
echo "xenstore = no" >"$T/B.conf"
XS=/tool/tandem
start_daemon() { local port; eval port=\$P$1; tandemd_start "$1" "$port" "$T"; }  # HOST
xs_state() { xenstore-read "$XS/status/$1/state" 2>/dev/null; }
xs_error() { xenstore-read "$XS/status/$1/error" 2>/dev/null; }
wait_xs_state() {  # NAME STATE SECONDS
  local end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do
    [ "$(xs_state "$1")" = "$2" ] && return 0
    sleep 0.2
  done
  return 1
}
wait_xs_error() {  # NAME WORD SECONDS
  local end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do
    xs_error "$1" | grep -q "$2" && return 0
    sleep 0.2
  done
  return 1
}
for h in A B; do start_daemon $h; done
# the daemons' logs as they come (RIG_TANDEM_QUIET=1: their tails on
# failure only)
TAILS=
if [ -z "${RIG_TANDEM_QUIET:-}" ]; then
  for h in A B; do
    tail -n +1 -f "$T/$h.log" | sed -u "s/^/# $h: /" &
    TAILS="$TAILS $!"
  done
fi
# A PV guest is refused, with the cause named (Debian's Xen has no
# shadow paging, so no log-dirty for PV).
pvcfg=$(rig_guest_cfg tpv 64)
sed -i 's/^type = "pvh"/type = "pv"/' "$pvcfg"
if xl create "$pvcfg" >/dev/null 2>&1; then
  printf 'name = "tpv"\ndriver = "xen"\nmemory = 64\n' >"$T/tpv.cfg"
  pv_refused() {
    ! xl-tandem -s "$T/A.sock" create "$T/tpv.cfg" >/dev/null 2>&1 &&
      grep -q "is PV: log-dirty of PV domains needs shadow paging" "$T/A.log"
  }
  pv_refused; rc=$?
  check "a PV guest is refused, the cause named: $(grep -o "domain 'tpv'.*" "$T/A.log" | head -1)" test $rc = 0
  xl destroy tpv
else
  note "no PV guest to try (xl create of a PV guest failed)"
fi

# Bad settings change nothing: refused by xl-tandem before writing, and by
# tandemd when written by hand (the reason published in xenstore).
out=$(xl-tandem xs-protect -i 0 "$G" 127.0.0.1 2>&1); rc=$?
check "xl-tandem xs-protect -i 0 is refused (rc $rc: $out)" \
  test $rc = 2 -a -z "$(xenstore-list $XS/domains 2>/dev/null)"
xenstore-write "$XS/domains/tbad/memory" 8 "$XS/domains/tbad/domain" "$G"
check "a hand-written entry with memory = 8 is refused: $(xs_error tbad)" wait_xs_error tbad "memory" 20
check "... and attaches nothing" test -z "$(xl-tandem -s "$T/A.sock" list 2>/dev/null | grep -w "$G")"
xenstore-rm "$XS/domains/tbad"

# Attach through xenstore, unprotected; a restart of tandemd leaves the
# guest running and attaches to it again from its entry.
if ! out=$(xl-tandem xs-protect -S "$SUSPEND" "$G" 2>&1); then
  note "$out"; logs; fail "xl-tandem xs-protect $G (attach only)"; exit 1
fi
note "$out"
if ! wait_xs_state "$G" unprotected 60; then
  logs; fail "tandemd attached to $G from xenstore (state '$(xs_state "$G")', error '$(xs_error "$G")')"; exit 1
fi
pass "tandemd attached to the running guest $G from its xenstore entry (driver xen, suspend $SUSPEND; memory $(xenstore-read $XS/domains/$G/memory) MiB from the domain)"
kill -TERM "$PID_A"; wait "$PID_A" 2>/dev/null
c1=$(guest_counter "$G"); sleep 2; c2=$(guest_counter "$G")
check "tandemd stopped (SIGTERM): the guest runs on (counter $c1 -> $c2)" test "${c2:-0}" -gt "${c1:-0}"
start_daemon A
check "tandemd restarted: attached to $G again from xenstore" wait_xs_state "$G" unprotected 60
xl-tandem xs-list | sed 's/^/# /'

t_protect=$(now)
if ! out=$(xl-tandem xs-protect -i "$INT" -H "$HB" -t "$TMO" -S "$SUSPEND" "$G" "127.0.0.1:$PB" 2>&1); then
  note "$out"; logs; fail "xl-tandem xs-protect $G 127.0.0.1:$PB"; exit 1
fi
note "$out"
if ! wait_state A protected 400; then
  logs; note "console of $G:"; tail -30 "$(guest_log "$G")" | sed 's/^/# /'
  xl list | sed 's/^/# /'
  fail "$G protected within 400 s (state $(str "$(st A)" state))"; exit 1
fi
sync_s=$(since "$t_protect")
check "xenstore shows $G protected (status/$G/state)" wait_xs_state "$G" protected 10
pass "$G protected by B ($sync_s s for the first, full epoch)"
first=$(grep -o 'full copy of [0-9]* frames while the guest runs: [0-9.]* ms' "$T/A.log" | tail -1)
# the guest stopped in the first epoch: after its live copy (the engine's
# sync_pause_ns spans both)
stopped=$(grep -o 'copied again with the guest stopped ([0-9.]* ms' "$T/A.log" | tail -1 | grep -o '[0-9.]* ms' | cut -d' ' -f1)
result "tandem_initial_sync_s=$sync_s"
result "tandem_first_epoch_frames=$(awk '{ print $4 }' <<<"$first")"
result "tandem_first_epoch_live_copy_ms=$(awk '{ print $(NF - 1) }' <<<"$first")"
result "tandem_first_epoch_pause_ms=$stopped"

J0=$(st A)
t0=$(now)
sleep "$DUR"
t1=$(now)
J=$(st A)
state=$(str "$J" state)
check "still protected after ${DUR}s of epochs (state $state)" test "$state" = protected
epochs=$(( $(num "$J" epochs) - $(num "$J0" epochs) ))
skipped=$(( $(num "$J" skipped_ticks) - $(num "$J0" skipped_ticks) ))
during=$(guest_rate "$G" "$t0" "$t1")
released=$(num "$J" released_frames)
check "A held the guest's output and released it by epoch (netbuf $(str "$J" mechanism): $released frames released)" test "${released:-0}" -gt 0
r0=$(rx); sleep 2; r1=$(rx)
check "the guest's pings reach dom0 while protected, after their epoch's ack ($((r1 - r0)) in 2 s)" test $((r1 - r0)) -ge 2

# A reference the replica must not fall below: the counter the guest had
# printed by t_ref, and an epoch B acknowledged that was taken after it.
t_ref=$(now)
c_ref=$(guest_ticks "$G" | awk -v t="$t_ref" '$1 <= t { c = $2 } END { print c }')
e_ref=$(num "$(st A)" epoch)
acked=0; n=0
while [ $n -lt 100 ]; do
  acked=$(num "$(st A)" acked_epoch)
  [ "${acked:-0}" -gt "${e_ref:-0}" ] && break
  sleep 0.05; n=$((n + 1))
done
c_last=$(guest_counter "$G")
check "B acknowledged epoch $acked, taken after the guest's counter reached $c_ref" test "${acked:-0}" -gt "${e_ref:-0}"

# The primary host dies: its tandemd and its guest vanish at once.
t_kill=$(now)
kill -9 "$PID_A"; wait "$PID_A" 2>/dev/null
xl destroy "$G"
note "primary killed after epoch $acked was acknowledged; guest counter $c_last"
if wait_state B unprotected $((TMO / 1000 + 90)); then
  t_active=$(now)
  pass "B took over ($(since "$t_kill") s after the kill; timeout ${TMO} ms)"
else
  logs; fail "B took over within $((TMO / 1000 + 90)) s (state $(str "$(st B)" state))"
fi
xl list | sed 's/^/# /'

# The replica's console: xenconsoled names its log after the domain as it
# first saw it (NAME--incoming when the name was still taken). Only lines
# stamped after the takeover are the replica's: xenconsoled may stamp the
# dead primary's last ones after the kill (once 0.1 s after it).
rlog= c_new= t_new=
t_from=${t_active:-$t_kill}
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ]; do
  for name in "$G--incoming" "$G"; do
    l=$(guest_ticks "$name" | awk -v t="$t_from" '$1 > t' | head -1)
    [ -n "$l" ] && { rlog=$name; t_new=${l% *}; c_new=${l#* }; break 2; }
  done
  sleep 1
done
replica_runs=0
if [ -n "$c_new" ]; then
  pass "the replica prints its counter ($c_new, $(awk -v a="$t_kill" -v b="$t_new" 'BEGIN { printf "%.1f", b - a }') s after the kill)"
  check "the replica's counter $c_new continues from at least $c_ref (acknowledged); the primary had printed $c_last" test "$c_new" -ge "${c_ref:-0}"
  t_first=$SECONDS
  end=$((SECONDS + 20))
  while [ $SECONDS -lt $end ]; do
    c_later=$(guest_counter "$rlog")
    [ "${c_later:-0}" -gt "$c_new" ] && break
    sleep 1
  done
  replica_check "the replica keeps running (counter $c_new -> $c_later in $((SECONDS - t_first)) s)" test "${c_later:-0}" -gt "$c_new"
  [ "${c_later:-0}" -gt "$c_new" ] && replica_runs=1
else
  logs
  for f in "$RIG_CONSOLE_DIR"/*; do note "$f:"; tail -3 "$f" | sed 's/^/# /'; done
  replica_check "the replica prints its counter within 30 s of the kill" false
fi
n=0 rr=0
while [ $n -lt 20 ]; do
  r0=$(rx); sleep 1; r1=$(rx); rr=$((r1 - r0))
  [ $rr -ge 2 ] && break
  n=$((n + 1))
done
replica_check "the replica's pings reach dom0 through its new vif ($rr in 1 s, $n s after it ran)" test $rr -ge 2
ip -o link show master xenbr0 | awk '{ print "# on xenbr0: " $2 }'
JB=$(st B)
check "B reports the failover (failovers=$(num "$JB" failovers))" test "$(num "$JB" failovers)" = 1

result "tandem_suspend=$SUSPEND"
result "tandem_interval_ms=$INT"
result "tandem_run_s=$DUR"
result "tandem_checkpoints=$epochs"
result "tandem_checkpoints_per_s=$(awk -v n="$epochs" -v a="$t0" -v b="$t1" 'BEGIN { if (b > a) printf "%.2f", n / (b - a) }')"
result "tandem_skipped_ticks=$skipped"
result "tandem_pause_ms_median=$(ms "$(stat "$J" pause_ns median)")"
result "tandem_pause_ms_p99=$(ms "$(stat "$J" pause_ns p99)")"
result "tandem_capture_ms_median=$(ms "$(stat "$J" capture_ns median)")"
result "tandem_capture_ms_p99=$(ms "$(stat "$J" capture_ns p99)")"
result "tandem_dirty_pages_median=$(stat "$J" dirty_pages median)"
result "tandem_dirty_pages_p99=$(stat "$J" dirty_pages p99)"
result "tandem_ack_ms_median=$(ms "$(stat "$J" ack_ns median)")"
result "tandem_apply_ms_median=$(ms "$(stat "$JB" apply_ns median)")"
result "tandem_epoch_bytes_median=$(stat "$J" epoch_bytes median)"
result "tandem_released_frames=$released"
result "guest_counter_per_s_before=$before"
result "guest_counter_per_s_protected=$during"
result "tandem_guest_progress_pct=$(awk -v a="$before" -v b="$during" 'BEGIN { if (a > 0 && b != "") printf "%.1f", 100 * b / a }')"
result "tandem_counter_acked_ref=$c_ref"
result "tandem_counter_primary_last=$c_last"
result "tandem_counter_replica_first=$c_new"
result "tandem_replica_runs=$replica_runs"
[ -n "${t_active:-}" ] && result "tandem_takeover_s=$(awk -v a="$t_kill" -v b="$t_active" 'BEGIN { printf "%.1f", b - a }')"
[ -n "$t_new" ] && result "tandem_failover_to_counter_s=$(awk -v a="$t_kill" -v b="$t_new" 'BEGIN { printf "%.1f", b - a }')"
finish

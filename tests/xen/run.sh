#!/bin/bash
# tests/xen/run.sh: boot a real Xen 4.17 (Debian packages) under
# qemu-system-x86_64 (software emulation, no KVM needed) and run scenarios
# inside its dom0. See tests/xen/README.md.
#
#   run.sh [--scenario NAME]... [--tandem-build DIR] [options]
#
#   --scenario NAME      run tests/xen/scenarios/NAME.sh in dom0 (repeatable;
#                        default: every scenario, except those marked
#                        "# rig: needs tandem" when no tandem build is given
#                        and those marked "# rig: manual")
#   --tandem-build DIR   a configured and built tandem tree (e.g. build/):
#                        every ELF executable under DIR goes to dom0's
#                        /opt/tandem/build, tandemd and xl-tandem on PATH
#   --cache DIR          cache (default $XEN_RIG_CACHE or /var/cache/tandem-xen-rig)
#   --timeout SEC        hard limit of the whole qemu run (default 2700)
#   --scenario-timeout SEC  limit per scenario inside dom0 (default 720)
#   --cpu qemu64|max     qemu CPU model (default qemu64, see README)
#   --tcg-thread single|multi  qemu's TCG threading (default $XEN_RIG_TCG_THREAD
#                        or multi: one host thread per emulated CPU)
#   --pcpus 1|2          emulated physical CPUs, dom0's vCPUs too (default
#                        $XEN_RIG_PCPUS or 2; HACKING.md, Known limits)
#   --no-deps            do not run tests/xen/deps.sh (apt) first
#   --keep               keep the work dir (serial log, images) and say where
#   --list               list the scenarios and exit
#
# Output: PASS:/FAIL:/RESULT lines (each prefixed with the scenario's name),
# the phase times, and a summary. Exit 0 if every scenario ran and no FAIL,
# 1 otherwise (the reason is printed, with the tail of the serial log when
# the boot did not reach the scenarios).
set -u
RIG_DIR=$(cd "$(dirname "$0")" && pwd)
RIG_TOP=$(cd "$RIG_DIR/../.." && pwd)
. "$RIG_DIR/lib.sh"

SCENARIOS=()
TANDEM_BUILD=${TANDEM_BUILD:-}
CACHE=${XEN_RIG_CACHE:-/var/cache/tandem-xen-rig}
TOTAL_TIMEOUT=${XEN_RIG_TIMEOUT:-2700}
SCENARIO_TIMEOUT=${XEN_RIG_SCENARIO_TIMEOUT:-720}
CPU=${XEN_RIG_CPU:-qemu64}
TCG_THREAD=${XEN_RIG_TCG_THREAD:-multi}
PCPUS=${XEN_RIG_PCPUS:-2}
DEPS=1 KEEP=0

needs_tandem() { grep -q '^# rig: needs tandem' "$RIG_DIR/scenarios/$1.sh" 2>/dev/null; }
# "# rig: manual REASON": run only when named with --scenario
manual() { sed -n 's/^# rig: manual //p' "$RIG_DIR/scenarios/$1.sh" 2>/dev/null; }
all_scenarios() { ls "$RIG_DIR"/scenarios/*.sh 2>/dev/null | sed 's|.*/||; s|\.sh$||'; }

while [ $# -gt 0 ]; do
  case $1 in
    --scenario) SCENARIOS+=("$2"); shift 2 ;;
    --scenario=*) SCENARIOS+=("${1#*=}"); shift ;;
    --tandem-build) TANDEM_BUILD=$2; shift 2 ;;
    --tandem-build=*) TANDEM_BUILD=${1#*=}; shift ;;
    --cache) CACHE=$2; shift 2 ;;
    --timeout) TOTAL_TIMEOUT=$2; shift 2 ;;
    --scenario-timeout) SCENARIO_TIMEOUT=$2; shift 2 ;;
    --cpu) CPU=$2; shift 2 ;;
    --tcg-thread) TCG_THREAD=$2; shift 2 ;;
    --pcpus) PCPUS=$2; shift 2 ;;
    --no-deps) DEPS=0; shift ;;
    --keep) KEEP=1; shift ;;
    --list)
      for s in $(all_scenarios); do
        printf '%-14s %s%s%s\n' "$s" "$(sed -n 's/^# rig: about //p' "$RIG_DIR/scenarios/$s.sh")" \
          "$(needs_tandem "$s" && echo ' (needs tandem)')" \
          "$([ -n "$(manual "$s")" ] && echo ' (manual)')"
      done; exit 0 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

[ "$(id -u)" = 0 ] || die "must run as root (apt, debootstrap, device nodes in the image)"
case $CPU in
  qemu64) QEMU_CPU=qemu64,+svm,+npt,+ssse3,+sse4.1,+sse4.2,+popcnt; XEN_CPU_ARGS= ;;
  max) QEMU_CPU=max; XEN_CPU_ARGS="smap=0 smep=0" ;;
  *) die "--cpu: qemu64 or max, not $CPU" ;;
esac
case $TCG_THREAD in
  single|multi) ;;
  *) die "--tcg-thread: single or multi, not $TCG_THREAD" ;;
esac
case $PCPUS in
  1|2) ;;
  *) die "--pcpus: 1 or 2, not $PCPUS" ;;
esac
if [ -n "$TANDEM_BUILD" ]; then
  TANDEM_BUILD=$(cd "$TANDEM_BUILD" 2>/dev/null && pwd) || die "--tandem-build: no directory $TANDEM_BUILD"
  [ -x "$TANDEM_BUILD/daemon/tandemd" ] ||
    say "warning: $TANDEM_BUILD/daemon/tandemd does not exist (not built?)"
fi
if [ ${#SCENARIOS[@]} = 0 ]; then
  for s in $(all_scenarios); do
    if [ -z "$TANDEM_BUILD" ] && needs_tandem "$s"; then
      say "scenario $s not run: it needs a tandem build (--tandem-build DIR)"
    elif [ -n "$(manual "$s")" ]; then
      say "scenario $s not run by default (--scenario $s runs it): $(manual "$s")"
    else
      SCENARIOS+=("$s")
    fi
  done
fi
[ ${#SCENARIOS[@]} -gt 0 ] || die "no scenario to run"
for s in "${SCENARIOS[@]}"; do
  [ -f "$RIG_DIR/scenarios/$s.sh" ] || die "no scenario $s (tests/xen/scenarios/$s.sh); --list shows them"
  if needs_tandem "$s" && [ -z "$TANDEM_BUILD" ]; then
    die "scenario $s needs a tandem build: run.sh --tandem-build DIR"
  fi
done
say "scenarios: ${SCENARIOS[*]}"

T_ALL=$EPOCHREALTIME
# ---- apt
phase_begin apt
if [ "$DEPS" = 1 ]; then
  sh "$RIG_DIR/deps.sh" >"/tmp/tandem-xen-rig-deps.$$" 2>&1 ||
    { tail -20 "/tmp/tandem-xen-rig-deps.$$"; die "tests/xen/deps.sh failed"; }
  rm -f "/tmp/tandem-xen-rig-deps.$$"
fi
for c in qemu-system-x86_64 debootstrap cpio busybox gzip depmod; do
  command -v "$c" >/dev/null || die "$c missing (tests/xen/deps.sh installs it)"
done
XEN_GZ=$(ls /boot/xen-4.17*-amd64.gz 2>/dev/null | head -1)
[ -n "$XEN_GZ" ] || die "no /boot/xen-4.17-amd64.gz (install xen-hypervisor-4.17-amd64)"
rig_kernel
phase_end apt

mkdir -p "$CACHE" || die "cannot create cache dir $CACHE"
WORK=$(mktemp -d /tmp/tandem-xen-rig.XXXXXX)
QPID=
cleanup() {
  [ -n "$QPID" ] && kill "$QPID" 2>/dev/null
  if [ "$KEEP" = 1 ]; then say "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- debootstrap (cached)
phase_begin debootstrap
# one builder at a time per cache
exec 9>"$CACHE/.lock"
flock -w 1800 9 || die "cache $CACHE is locked by another run for 30 min"
build_rootfs "$CACHE"
phase_end debootstrap "$([ "$ROOTFS_CACHED" = 1 ] && echo cached || echo built)"

# ---- image: modules, guest initramfs, overlay, concatenation
phase_begin image
build_modules "$CACHE"
flock -u 9
build_overlay "$WORK/overlay.cpio" "$WORK"
cat "$ROOTFS_CPIO" "$MODULES_CPIO" "$WORK/overlay.cpio" >"$WORK/dom0.cpio" ||
  die "cannot write $WORK/dom0.cpio"
gunzip -c "$XEN_GZ" >"$WORK/xen" || die "cannot unpack $XEN_GZ"
cp "$KERNEL" "$WORK/vmlinuz"
phase_end image "dom0.cpio $(( $(stat -c %s "$WORK/dom0.cpio") / 1048576 )) MiB, kernel $KVER"

# ---- boot and scenarios
XEN_ARGS="console=com1 com1=115200,8n1 conring_size=4m dom0_mem=1536M,max:1536M dom0_max_vcpus=$PCPUS loglvl=all guest_loglvl=all $XEN_CPU_ARGS"
DOM0_ARGS="console=hvc0 earlyprintk=xen panic=-1 rdinit=/init"
SERIAL=$WORK/serial.log
EVENTS=$WORK/events
: >"$EVENTS"
QEMU=(qemu-system-x86_64 -no-reboot -machine q35 -cpu "$QEMU_CPU" -m 3G -smp "$PCPUS"
  -accel "tcg,thread=$TCG_THREAD"
  -nographic -serial stdio -monitor none -display none -nic none
  -device virtio-rng-pci
  -kernel "$WORK/xen" -append "$XEN_ARGS"
  -initrd "$WORK/vmlinuz $DOM0_ARGS,$WORK/dom0.cpio")
say "qemu: ${QEMU[*]}"
say "serial log: $SERIAL (time limit ${TOTAL_TIMEOUT}s)"
T_BOOT=$EPOCHREALTIME
declare -A SC_T0=() SC_S=() SC_RC=() SC_PASS=() SC_FAIL=()
RESULTS=()
READY=0 DONE=0 SETUP_FAIL= WATCHDOG= CUR=
# The host's limit: qemu is killed TOTAL_TIMEOUT+60 s after start (dom0
# reboots itself at TOTAL_TIMEOUT).
{ timeout -k 10 $((TOTAL_TIMEOUT + 60)) "${QEMU[@]}" </dev/null 2>"$WORK/qemu.err"
  echo "@@HOST qemu exit rc=$?"; } |
while IFS= read -r line; do
  line=${line//$'\r'/}
  printf '%s\n' "$line" >>"$SERIAL"
  case $line in
    *@@HOST*|*@@RIG*) ;;
    # A guest that dies of a triple fault is a guest no tandem code runs
    # in; say where it was (Xen dumps the vCPU's registers next).
    "(XEN) "*"Triple fault"*) TF=${line#(XEN) }; TF=${TF%% Triple*}; continue ;;
    "(XEN) RIP:"*)
      if [ -n "${TF:-}" ]; then
        rip=${line#(XEN) RIP:}; rip=${rip//[][<> ]/}
        case $rip in
          e008:*) where="in Xen's own code while in guest mode: the emulated CPU (qemu TCG) lost track of the VM exit" ;;
          *) where="in the guest" ;;
        esac
        echo "xen-rig: Xen: $TF triple fault at $rip, $where"
        echo "$EPOCHREALTIME XEN-FAULT $TF $rip" >>"$EVENTS"
        TF=
      fi
      continue ;;
    *) continue ;;
  esac
  msg=${line#*@@}
  t=$EPOCHREALTIME
  echo "$t $msg" >>"$EVENTS"
  case $msg in
    RIG\ READY*) echo "xen-rig: dom0 up, toolstack running ($(elapsed "$T_BOOT") s after qemu start)" ;;
    RIG\ XEN*|RIG\ WARN*|RIG\ SETUP-FAIL*|RIG\ WATCHDOG*) echo "xen-rig: ${msg#RIG }" ;;
    RIG\ BEGIN*) echo "--- scenario ${msg#RIG BEGIN }" ;;
    RIG\ RETRY*) r=${msg#RIG RETRY }
      echo "--- RETRY of ${r%% *}: it failed while a guest died under it (${r#* }); this rig's emulated CPU kills guests now and then (under stock xl remus too, and while booting), so it runs again and only the last run counts" ;;
    RIG\ END*) echo "--- ${msg#RIG }" ;;
    RIG\[*) s=${msg#RIG[}; n=${s%%]*}; body=${s#*] }
      case $body in
        PASS:*|FAIL:*|SKIP:*|RESULT\ *) echo "$body [$n]" ;;
        *) echo "   $n| $body" ;;
      esac ;;
    HOST*) echo "xen-rig: ${msg#HOST }" ;;
  esac
done
RUN_S=$(elapsed "$T_BOOT")

# ---- evaluate (from the recorded events)
ev() { grep -E "^[0-9.]+ $1" "$EVENTS"; }
evt() { ev "$1" | head -1 | awk '{ print $1 }'; }
fails=0 RETRIED=()
t_ready=$(evt 'RIG READY')
if [ -n "$t_ready" ]; then
  PHASES+=(boot-to-dom0); PHASE_S[boot-to-dom0]=$(awk -v a="$T_BOOT" -v b="$t_ready" 'BEGIN { printf "%.1f", b - a }')
fi
for s in "${SCENARIOS[@]}"; do
  b=$(evt "RIG BEGIN $s\$"); e=$(ev "RIG END $s rc=" | head -1)
  if [ -z "$b" ]; then
    echo "FAIL: $s: not started (the boot or an earlier scenario did not get that far)"
    fails=$((fails + 1)); continue
  fi
  if [ -z "$e" ]; then
    echo "FAIL: $s: did not finish (dom0 or qemu stopped during it)"
    fails=$((fails + 1)); continue
  fi
  rc=$(echo "$e" | sed 's/.* rc=\([0-9]*\).*/\1/')
  PHASES+=("scenario:$s"); PHASE_S[scenario:$s]=$(echo "$e" | awk -v b="$b" '{ printf "%.1f", $1 - b }')
  # a retried scenario: only its last run counts (from the RETRY on)
  rt=$(ev "RIG RETRY $s " | tail -1 | awk '{ print $1 }')
  if [ -n "$rt" ]; then
    RETRIED+=("$s"); b=$rt
  fi
  np=$(awk -v b="$b" -v k="RIG[$s]" '$1 >= b && $2 == k && $3 == "PASS:"' "$EVENTS" | wc -l)
  nf=$(awk -v b="$b" -v k="RIG[$s]" '$1 >= b && $2 == k && $3 == "FAIL:"' "$EVENTS" | wc -l)
  faults=$(echo "$e" | awk -v b="$b" -v ev="$EVENTS" '
    BEGIN { n = 0 } { t = $1 }
    END { while ((getline l < ev) > 0) { split(l, f, " ")
            if (f[2] == "XEN-FAULT" && f[1] >= b && f[1] <= t) n++ }
          print n }')
  why=
  [ "$faults" -gt 0 ] && why="; $faults guest triple fault(s) logged by Xen during it, see the xen-rig lines above"
  if [ "$nf" -gt 0 ] || [ "$rc" != 0 ]; then
    echo "FAIL: scenario $s (exit $rc, $np PASS, $nf FAIL$why)"; fails=$((fails + 1))
  elif [ "$np" = 0 ]; then
    echo "FAIL: scenario $s printed no PASS line"; fails=$((fails + 1))
  else
    echo "PASS: scenario $s ($np checks)"
  fi
done
if [ -z "$t_ready" ]; then
  reason=$(ev 'RIG SETUP-FAIL' | head -1 | cut -d' ' -f2-)
  [ -n "$reason" ] || reason=$(ev 'RIG WATCHDOG' | head -1 | cut -d' ' -f2-)
  [ -n "$reason" ] || reason="no READY from dom0 on the serial console; $(ev 'HOST' | tail -1 | cut -d' ' -f2-)"
  echo "FAIL: xen-rig: the boot did not reach the scenarios: $reason"
  echo "----- qemu stderr:"; tail -5 "$WORK/qemu.err"
  echo "----- serial log, last 40 lines ($SERIAL):"; tail -40 "$SERIAL"
  fails=$((fails + 1))
elif ! ev 'RIG DONE' >/dev/null; then
  echo "FAIL: xen-rig: dom0 did not finish its scenario list ($(ev 'RIG WATCHDOG|HOST' | tail -1 | cut -d' ' -f2-))"
  echo "----- serial log, last 30 lines:"; tail -30 "$SERIAL"
  fails=$((fails + 1))
fi
if [ ${#RETRIED[@]} -gt 0 ]; then
  echo "NOTE: xen-rig: ran again after a guest died under them: ${RETRIED[*]}"
fi
echo "RESULT xen_rig_retries=${#RETRIED[@]}" >>"$WORK/phase-results"
PHASES+=(qemu-total); PHASE_S[qemu-total]=$RUN_S
PHASES+=(total); PHASE_S[total]=$(elapsed "$T_ALL")

echo
echo "phase                      seconds"
for p in "${PHASES[@]}"; do
  printf '%-26s %7s\n' "$p" "${PHASE_S[$p]}"
  echo "RESULT phase_${p//[^a-zA-Z0-9]/_}_s=${PHASE_S[$p]}" >>"$WORK/phase-results"
done
cat "$WORK/phase-results"

# Issue 3's scenario 2, side by side from this boot: stock xl remus and
# tandem on the same guest, interval and duration (never a failure).
res() {  # SCENARIO KEY
  ev "RIG\\[$1\\] RESULT $2=" | head -1 | sed "s/.*RESULT $2=//"
}
if ev 'RIG\[stock-remus\] RESULT stock_checkpoints=' >/dev/null &&
   ev 'RIG\[tandem-[a-z]*\] RESULT tandem_checkpoints=' >/dev/null; then
  cols=(stock-remus)
  for s in tandem-failover tandem-pause; do
    [ -n "$(res $s tandem_checkpoints)" ] && cols+=("$s")
  done
  row() {  # LABEL VALUE...
    local l=$1; shift
    printf '%-34s' "$l"; printf ' %20s' "$@"; echo
  }
  echo
  echo "scenario 2: stock xl remus and tandem on the same PVH guest (128 MiB), this boot"
  hdr=("stock xl remus"); for c in "${cols[@]:1}"; do hdr+=("tandem ($(res "$c" tandem_suspend))"); done
  row "" "${hdr[@]}"
  v=("$(res stock-remus stock_interval_ms) ms, $(res stock-remus stock_run_s) s"); for c in "${cols[@]:1}"; do v+=("$(res "$c" tandem_interval_ms) ms, $(res "$c" tandem_run_s) s"); done
  row "interval, run" "${v[@]}"
  v=("$(res stock-remus stock_checkpoints) ($(res stock-remus stock_checkpoints_per_s)/s)"); for c in "${cols[@]:1}"; do v+=("$(res "$c" tandem_checkpoints) ($(res "$c" tandem_checkpoints_per_s)/s)"); done
  row "checkpoints completed" "${v[@]}"
  v=("$(res stock-remus stock_pause_ms_median) / $(res stock-remus stock_pause_ms_p99)"); for c in "${cols[@]:1}"; do v+=("$(res "$c" tandem_pause_ms_median) / $(res "$c" tandem_pause_ms_p99)"); done
  row "pause ms, median / p99" "${v[@]}"
  v=("$(res stock-remus stock_dirty_pages_median) / $(res stock-remus stock_dirty_pages_p99)"); for c in "${cols[@]:1}"; do v+=("$(res "$c" tandem_dirty_pages_median) / $(res "$c" tandem_dirty_pages_p99)"); done
  row "dirty pages, median / p99" "${v[@]}"
  v=("$(res stock-remus stock_guest_progress_pct)%"); for c in "${cols[@]:1}"; do v+=("$(res "$c" tandem_guest_progress_pct)%"); done
  row "guest progress (% of unprotected)" "${v[@]}"
  v=("$(res stock-remus stock_initial_sync_s) s"); for c in "${cols[@]:1}"; do v+=("$(res "$c" tandem_initial_sync_s) s"); done
  row "initial sync" "${v[@]}"
  v=("-"); for c in "${cols[@]:1}"; do v+=("$(res "$c" tandem_first_epoch_pause_ms) ms"); done
  row "initial sync: guest stopped" "${v[@]}"
  v=("-"); for c in "${cols[@]:1}"; do v+=("$(res "$c" tandem_takeover_s) s"); done
  row "failover: kill -> replica running" "${v[@]}"
  v=("-"); for c in "${cols[@]:1}"; do v+=("$( [ "$(res "$c" tandem_replica_runs)" = 1 ] && echo yes || echo no)"); done
  row "replica runs after failover" "${v[@]}"
fi
if [ "$fails" -gt 0 ]; then
  [ "$KEEP" = 1 ] || { mkdir -p "$CACHE/last-failure"; cp "$SERIAL" "$EVENTS" "$CACHE/last-failure/" 2>/dev/null
    say "serial log of this failed run: $CACHE/last-failure/serial.log"; }
  echo "xen-rig: $fails failure(s)"
  exit 1
fi
echo "xen-rig: all ${#SCENARIOS[@]} scenario(s) passed"
exit 0

#!/bin/bash
# rig: about tandem's pause on the PVH test guest (hypervisor pause, dirty bitmap, copy to staging, unpause), beside stock-remus
# rig: needs tandem
# tandem's primary-side epoch on real Xen (libs/driver/xen/xc-capture.c),
# at the interval stock-remus uses, for as long: the pause (the domain is
# paused by the hypervisor; dirty frames are copied into a local staging
# buffer; nothing goes to the network inside the pause), dirty pages per
# epoch, and the guest's own progress. Not yet the whole driver: nothing is
# streamed or restored here (issue 3).
. /rig/helpers.sh
need_tandem
DUR=${RIG_REMUS_SECONDS:-30}
INT=${RIG_REMUS_INTERVAL_MS:-100}
B=/opt/tandem/build/tests/tools/xen-capture-bench
G=tguest
guest_create "$G" || exit 1
sleep 10
tb1=$(now); tb0=$(awk -v t="$tb1" 'BEGIN { printf "%.3f", t - 10 }')
before=$(guest_rate $G "$tb0" "$tb1")
domid=$(xl domid $G)
t0=$(now)
"$B" -i "$INT" -d "$DUR" "$domid" >/tmp/capture.out 2>/tmp/capture.err
rc=$?
t1=$(now)
check "xen-capture-bench ran for ${DUR}s on domain $domid (rc $rc)" test "$rc" = 0
[ "$rc" = 0 ] || tail -5 /tmp/capture.err
grep '^RESULT' /tmp/capture.out | sed 's/^RESULT //' | tr ' ' '\n' | while read -r kv; do result "$kv"; done
during=$(guest_rate $G "$t0" "$t1")
c0=$(guest_counter $G); sleep 3; c1=$(guest_counter $G)
check "the guest still runs after ${DUR}s of epochs (counter $c0 -> $c1)" test "${c1:-0}" -gt "${c0:-0}"
n=$(sed -n 's/.*tandem_epochs=\([0-9]*\).*/\1/p' /tmp/capture.out)
check "tandem took epochs of the running guest ($n)" test "${n:-0}" -gt 10
pct=$(awk -v a="$before" -v b="$during" 'BEGIN { if (a > 0 && b != "") printf "%.1f", 100 * b / a }')
result "tandem_interval_ms=$INT"
result "guest_counter_per_s_before_t=$before"
result "guest_counter_per_s_during_t=$during"
result "tandem_guest_progress_pct=$pct"
pv_refused() { ! "$B" -d 1 0 >/tmp/pv.out 2>&1 && grep -q "is PV: log-dirty of PV domains needs shadow paging" /tmp/pv.out; }
pv_refused; pv=$?
check "a PV domain (dom0) is refused with the cause named: $(head -1 /tmp/pv.out)" test $pv = 0
xl destroy "$G"
finish

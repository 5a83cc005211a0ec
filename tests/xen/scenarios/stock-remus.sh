#!/bin/bash
# rig: about stock `xl remus` on the PVH test guest: checkpoints, pause, dirty pages, guest progress
# The anchor of issue 3's scenario 2: stock Remus of Xen 4.17 (libxl), to
# localhost, on the rig's PVH guest, for RIG_REMUS_SECONDS (30) after
# its initial sync at an
# interval of RIG_REMUS_INTERVAL_MS (100). Debian's libxl has no libnl, so
# no network buffering (-n) and unsafe mode (-F); no disk (-d).
# Measures (RESULT lines, never a failure on a time):
#   stock_checkpoints, stock_checkpoints_per_s
#   stock_pause_ms_{median,p99}    suspend request -> dirty pages sent
#   stock_suspend_ms_{median,p99}  suspend request -> guest suspended
#   stock_copy_ms_{median,p99}     guest suspended -> dirty pages sent
#   stock_cycle_ms_{median,p99}    checkpoint to checkpoint
#   stock_dirty_pages_{median,p99}
#   guest_counter_per_s_{before,during,steady} and stock_guest_progress_pct
#     (the guest's own counter rate: 10 s before, the whole run, and from
#     the first checkpoint on; pct = steady / before)
# See /rig/bin/remus-stats for what each figure spans in xl's log.
. /rig/helpers.sh
DUR=${RIG_REMUS_SECONDS:-30}
INT=${RIG_REMUS_INTERVAL_MS:-100}
G=guest
guest_create "$G" || exit 1
sleep 10
tb1=$(now); tb0=$(awk -v t="$tb1" 'BEGIN { printf "%.3f", t - 10 }')
before=$(guest_rate $G "$tb0" "$tb1")
log=/tmp/stock-remus.log
note "xl -vvv remus -F -n -d -i $INT -s /rig/bin/fakessh $G localhost, for ${DUR}s"
t0=$(now)
xl -vvv remus -F -n -d -i "$INT" -s /rig/bin/fakessh "$G" localhost > >(tstamp >$log) 2>&1 &
rp=$!
# DUR seconds of checkpoints after the initial sync, as tandem-failover
# measures (its clock starts once the backup holds the first epoch).
# The first checkpoint as remus-stats sees it (its parser, so the two
# agree); bounded by the clock, whatever a poll costs under emulation.
first_ckpt() { remus-stats $log 0 1e12 2>/dev/null | sed -n 's/^first_checkpoint_t=//p'; }
end=$((SECONDS + 240))
until [ -n "$(first_ckpt)" ] || [ $SECONDS -ge $end ]; do sleep 1; done
if [ -z "$(first_ckpt)" ]; then
  note "no checkpoint within 240 s; the log ends:"
  tail -c 2000 $log | tr '\r' '\n' | tail -15 | sed 's/^/#   /'
fi
sleep "$DUR"
t1=$(now)
if kill -0 "$rp" 2>/dev/null; then
  pass "xl remus still running after ${DUR}s"
else
  wait "$rp"; fail "xl remus exited early (rc $?)"; tail -20 $log
fi
xl list | sed 's/^/# /'
# The primary's xl ends; the backup side (xl migrate-receive -r) then
# fails over: it runs guest--incoming (renaming it fails while the
# primary still exists: a same-host artefact).
kill "$rp" 2>/dev/null; sleep 5
grep -q 'Remus Failover' $log && result "stock_failover_seen=1" || result "stock_failover_seen=0"
eval "$(remus-stats $log "$t0" "$t1" | sed 's/^/S_/')"
during=$(guest_rate $G "$t0" "$t1")
steady=$(guest_rate $G "${S_first_checkpoint_t:-$t0}" "$t1")
span=$(awk -v a="${S_first_checkpoint_t:-$t0}" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
if [ "${S_checkpoints:-0}" -gt 0 ]; then
  pass "stock xl remus completed $S_checkpoints checkpoints"
else
  fail "stock xl remus completed no checkpoint"; note "log tail:"; tail -30 $log
fi
cps=$(awk -v n="${S_checkpoints:-0}" -v s="$span" 'BEGIN { if (s > 0) printf "%.2f", n / s }')
pct=$(awk -v a="$before" -v b="$steady" 'BEGIN { if (a > 0 && b != "") printf "%.1f", 100 * b / a }')
result "stock_interval_ms=$INT"
result "stock_run_s=$DUR"
result "stock_initial_sync_s=$(awk -v a="$t0" -v b="${S_first_checkpoint_t:-$t0}" 'BEGIN { printf "%.1f", b - a }')"
result "stock_checkpoints=$S_checkpoints"
result "stock_checkpoints_per_s=$cps"
for k in pause suspend copy cycle; do
  eval "m=\$S_${k}_median p=\$S_${k}_p99"
  result "stock_${k}_ms_median=$m"
  result "stock_${k}_ms_p99=$p"
done
result "stock_dirty_pages_median=$S_dirty_median"
result "stock_dirty_pages_p99=$S_dirty_p99"
result "guest_counter_per_s_before=$before"
result "guest_counter_per_s_during=$during"
result "guest_counter_per_s_steady=$steady"
result "stock_guest_progress_pct=$pct"
echo "#"
echo "# stock xl remus -i $INT, ${DUR}s, PVH guest 128 MiB (checkpoints counted after the initial sync)"
printf '# %-34s %10s %10s\n' "" median p99
printf '# %-34s %10s %10s\n' "pause ms (suspend req -> sent)" "$S_pause_median" "$S_pause_p99"
printf '# %-34s %10s %10s\n' "  suspend ms (req -> suspended)" "$S_suspend_median" "$S_suspend_p99"
printf '# %-34s %10s %10s\n' "  copy ms (suspended -> sent)" "$S_copy_median" "$S_copy_p99"
printf '# %-34s %10s %10s\n' "cycle ms" "$S_cycle_median" "$S_cycle_p99"
printf '# %-34s %10s %10s\n' "dirty pages per checkpoint" "$S_dirty_median" "$S_dirty_p99"
printf '# %-34s %10s\n' "checkpoints" "$S_checkpoints in ${span}s ($cps/s)"
printf '# %-34s %10s\n' "guest counter/s before" "$before"
printf '# %-34s %10s\n' "guest counter/s during (steady)" "$steady ($pct%)"
xl destroy "$G" 2>/dev/null; xl destroy "$G--incoming" 2>/dev/null
finish

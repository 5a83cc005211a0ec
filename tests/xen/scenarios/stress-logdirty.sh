#!/bin/bash
# rig: about how often the rig's emulated CPU kills a guest under log-dirty, with tandem's capture tool and no daemon
# rig: needs tandem
# rig: manual a 9-minute measurement of the rig itself, not of tandem
# How often does the test guest die under log-dirty on this emulated rig?
# xen-capture-bench (pause, CLEAN, copy, unpause) runs in 60 s rounds at a
# 50 ms interval for RIG_STRESS_SECONDS in all; a guest that dies (Xen logs
# "Triple fault") is counted and created again. Prints the rate, for
# comparing qemu settings (run.sh --tcg-thread single|multi).
. /rig/helpers.sh
need_tandem
TOTAL=${RIG_STRESS_SECONDS:-540}
B=/opt/tandem/build/tests/tools/xen-capture-bench
n=0 deaths=0 exposed=0 t_all=$(now)
while awk -v s="$(since "$t_all")" -v t="$TOTAL" 'BEGIN { exit !(s < t) }'; do
  n=$((n + 1)); G=sg$n
  guest_create "$G" || break
  while awk -v s="$(since "$t_all")" -v t="$TOTAL" 'BEGIN { exit !(s < t) }'; do
    domid=$(xl domid "$G") || { note "no domain $G"; break; }
    t0=$(now)
    "$B" -i 50 -d 60 "$domid" >/dev/null 2>/tmp/stress.err
    rc=$?
    exposed=$(awk -v a="$exposed" -v b="$(since "$t0")" 'BEGIN { printf "%.1f", a + b }')
    st=$(xl list "$G" 2>/dev/null | awk 'NR == 2 { print $5 }')
    note "round on $G (domain $domid): rc $rc, state '$st', exposed $exposed s"
    case $st in
      *s*|"") deaths=$((deaths + 1))
        note "guest $G died after $(since "$t0") s of a round (rc $rc, state '${st}'): $(tail -1 /tmp/stress.err)"
        note "its console, last 40 lines:"; tail -40 "$(guest_log "$G")" | tr -d '\r' | sed 's/^/#   /'
        break ;;
    esac
  done
  xl destroy "$G" 2>/dev/null
done
tf=$(xl dmesg | grep -c 'Triple fault')
result "stress_exposed_s=$exposed"
result "stress_guest_deaths=$deaths"
result "stress_triple_faults=$tf"
pass "stress: $deaths guest deaths ($tf triple faults) in $exposed s of 50 ms log-dirty epochs"

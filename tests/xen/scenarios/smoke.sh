#!/bin/bash
# rig: about the hypervisor and toolstack are up; a PVH guest boots and runs its workload
. /rig/helpers.sh
caps=$(xl info | awk -F': ' '/^virt_caps/ { print $2 }')
note "xl info virt_caps: $caps"
case " $caps " in
  *" hap "*) pass "Xen reports HAP (nested paging), needed for PVH log-dirty" ;;
  *) fail "Xen reports no HAP (virt_caps: $caps): qemu needs +svm,+npt or -cpu max" ;;
esac
check "xenstore answers" xenstore-read domid
if guest_create smoke; then
  t0=$(now); sleep 5
  result "smoke_guest_counter_per_s=$(guest_rate smoke "$t0" "$(now)")"
  check "xl destroy smoke" xl destroy smoke
fi
finish

#!/bin/bash
# rig: about the xen driver with suspend = "pause" (the hypervisor pauses the guest each epoch): its pause, and whether a PV guest restored from such a checkpoint runs
# rig: needs tandem
# rig: manual suspend = pause is experimental: whether a replica restored from a paused checkpoint keeps running is reported, not required (HACKING.md, Known limits)
# The design question of issue 3, measured: tandem-failover with the
# guest paused by Xen (xc_domain_pause) instead of suspended through its
# own suspend path. Protection and the figures are checked as there; what
# the replica does after the failover is reported (tandem_replica_runs),
# not required: a PV-aware guest that never ran its suspend path has, in
# the restored domain, no event channels, vcpu_info or xenstore watches.
export RIG_TANDEM_SUSPEND=pause RIG_TANDEM_MEASURE=1
. /rig/scenarios/tandem-failover.sh

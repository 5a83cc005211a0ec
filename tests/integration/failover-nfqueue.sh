#!/bin/bash
# The end-to-end failover test with the guest's output held in the kernel
# (NFQUEUE on its TAP, libs/netbuf) instead of the micro-VM's device model.
RUNS=${RUNS_NFQ:-8} NETBUF=nfqueue exec bash "$(dirname "$0")/failover.sh"

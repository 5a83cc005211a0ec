#!/bin/bash
# The failover test with the guest's disk replicated (tandem-domain.cfg(5):
# disk): the guest keeps its key-value table on its disk as well as in
# memory, and after each failover the activated replica's disk must hold
# exactly the table in its memory, with no acknowledged write lost.
DISK=1 RUNS=${RUNS_DISK:-5} exec bash "$(dirname "$0")/failover.sh"

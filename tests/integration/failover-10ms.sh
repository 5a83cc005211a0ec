#!/bin/bash
# The failover test at 100 Hz epochs (-i 10), fewer kill points.
RUNS=${RUNS_10MS:-5} PROTECT_OPTS="-i 10" exec bash "$(dirname "$0")/failover.sh"

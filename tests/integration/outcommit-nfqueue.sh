#!/bin/bash
# Output commit with the guest's output held in the kernel (NFQUEUE on its
# TAP): no reply before its epoch is acked.
NETBUF=nfqueue exec bash "$(dirname "$0")/outcommit.sh"

#!/usr/bin/env bash
# hack/disruption.sh [--scenarios a,b,...] [--seed N] — the disruption harness (issue 17) in one
# VM boot: a three-node namespace cluster, one ipvsd per node against the API emulator, traffic
# (long-lived TCP, new TCP, UDP) through a ClusterIP and NodePorts (eTP=Cluster and eTP=Local)
# while ipvsd is faulted. The default list, in order: baseline, negative-control, kill9,
# rolling-restart, watch-faults, ready-while-down (ipvsd/testing/disruption_restarts.py),
# drain-across-restart, partial-list, rollout (disruption_workload.py), api-outage,
# kernel-faults, tampering (disruption_outages.py).
# Prints a table and, last, one JSON line {"scenarios": {...}} (ipvsd/testing/disruption.py).
# The VM gets 3G by default (IPVSD_VM_MEMORY): three daemons, their supervisors, the pods'
# servers, two traffic generators and the API emulator.
# Not in the default list, run only when named: `soak` (1,000 Services, ten minutes of churn,
# each daemon's memory, fds and asyncio tasks sampled; about 15 minutes of VM time on its own,
# so give it IPVSD_VM_TIMEOUT=2700 beside other scenarios) and `tampering-ipvsadm`,
# `tampering-vip`, `tampering-nft` (the default `tampering`'s three actions, one window each).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export IPVSD_VM_MEMORY=${IPVSD_VM_MEMORY:-3G}
exec hack/kernel-run.sh python -m ipvsd.testing.disruption "$@"

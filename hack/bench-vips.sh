#!/usr/bin/env bash
# hack/bench-vips.sh [--services N ...]
#
# VIP programming in the VM, before and after routed Service CIDRs, at each N (default 10,000
# and 50,000 ClusterIPs), one VM boot: "bind" is ipvsd's batched rtnetlink binding of N /32s on
# kube-ipvs0 (what every ClusterIP cost before --service-cluster-ip-range), "route" the one
# local route that makes the whole range local instead. Prints a table and, last, one JSON line
# per N: {"vips": N, "bind_s": X, "route_s": X, "ratio": X}. Kept apart from hack/bench.sh,
# whose last line is the cold-start benchmark's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# this checkout's ipvsd, not an editable install's (a git worktree shares the venv)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec hack/kernel-run.sh python hack/bench_vips_vm.py "$@"

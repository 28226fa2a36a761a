#!/usr/bin/env bash
# hack/bench-netlink.sh [--services N] [--dests N] [--rounds N]
#
# One VM boot; inside it the same table (default 100 services x 100 destinations = 10,100
# objects) is programmed three ways, alternating, each after the same clearing, best of
# --rounds: ipvsd's adapter, `ipvsadm -R`, and hack/netlink_floor.py (a minimal hand-packed
# batched sender). Then the full-table dump: the adapter against `ipvsadm -Sn`. Prints the
# times, the ratios and, as its last line, JSON. Timings inside the VM are only comparable as
# ratios taken in the same boot.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec hack/kernel-run.sh python hack/bench_netlink_vm.py "$@"

#!/usr/bin/env bash
# hack/bench.sh [--host-only | --vm-only] [--services N] [--endpoints N]
#
# The proxy at scale (default 10,000 ClusterIP Services x 10 ready endpoints, one EndpointSlice
# each, in the API emulator). Two parts, each printing its figures with the targets:
#
# host: `python -m ipvsd.testing.bench.proxy`: the daemon's own pipeline (informers, change tracker,
#   bounded-frequency runner, syncer) against the fake IPVS kernel and fake addresses; nftables
#   real, in a private network namespace (`unshare -n`, root), else rendered only. Cold start,
#   200 EndpointSlice changes one at a time (API write -> kernel operation applied, p50/p99),
#   peak RSS.
# vm: one hack/kernel-run.sh boot (hack/bench_vm.py): the hand-packed netlink floor for the same
#   objects, and the daemon with real IPVS, addresses and nftables in a fresh namespace: cold
#   start as a ratio to the floor, and 30 changes. In-VM times mean something only as ratios.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"
ensure_venv

parts=(host vm)
args=()
for arg in "$@"; do
  case $arg in
    --host-only) parts=(host) ;;
    --vm-only) parts=(vm) ;;
    *) args+=("$arg") ;;
  esac
done

for part in "${parts[@]}"; do
  echo "== $part =="
  if [ "$part" = vm ]; then
    hack/kernel-run.sh python hack/bench_vm.py "${args[@]}"
  elif [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null && command -v nft >/dev/null; then
    unshare -n sh -c 'ip link set lo up && exec "$0" -m ipvsd.testing.bench.proxy --dataplane netns "$@"' \
      "$venv/bin/python" "${args[@]}"
  else
    "$venv/bin/python" -m ipvsd.testing.bench.proxy --dataplane fake "${args[@]}"
  fi
done

#!/usr/bin/env bash
# hack/bench.sh [--host-only | --vm-only] [--services N] [--endpoints N]
#
# The proxy at scale (default 10,000 ClusterIP Services x 10 ready endpoints, one EndpointSlice
# each, in the API emulator), issue 19's figures. Three parts, each printing its own figures:
#
# host: `python -m ipvsd.testing.bench.proxy`: the daemon's own pipeline (informers, change tracker,
#   bounded-frequency runner, syncer) against the fake IPVS kernel and fake addresses; nftables
#   real, in a private network namespace (`unshare -n`, root), else rendered only. Cold start,
#   400 EndpointSlice changes written at 50/s with a 2 s sync period (API write -> kernel
#   operation applied, p50/p99), peak RSS, idle CPU, a hand-made deletion's correction.
# informer: `python -m ipvsd.testing.bench.informers` (hack/bench-informer.sh): the informers'
#   initial sync alone.
# vm: one hack/kernel-run.sh boot (hack/bench_vm.py): the hand-packed netlink floor for the same
#   objects, and the daemon with real IPVS, addresses and nftables in a fresh namespace: cold
#   start as a ratio to the floor, default/kubernetes and kube-dns reachable on their
#   ClusterIPs, 30 changes at 20/s, the daemon's CPU over 3 idle sync periods (30 s each), and
#   a real server deleted by hand until a sync puts it back. In-VM times mean something only
#   as ratios.
#
# Last, `python -m ipvsd.testing.bench.report` prints the issue's table and one JSON line with
# every key (null for what was not measured: --host-only leaves the VM's figures null, and so on).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"
ensure_venv

parts=(host informer vm)
args=()
services=10000
previous=
for arg in "$@"; do
  case $arg in
    --host-only) parts=(host informer) ;;
    --vm-only) parts=(vm) ;;
    *) args+=("$arg") ;;
  esac
  if [ "$previous" = --services ]; then services=$arg; fi
  case $arg in --services=*) services=${arg#--services=} ;; esac
  previous=$arg
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
report=(--services "$services")
host_args=(--changes 400 --rate 50 --sync-period 2 --idle-periods 3 --drift)
for part in "${parts[@]}"; do
  echo "== $part =="
  if [ "$part" = vm ]; then
    hack/kernel-run.sh python hack/bench_vm.py "${args[@]}" | tee "$out/vm"
  elif [ "$part" = informer ]; then
    "$venv/bin/python" -m ipvsd.testing.bench.informers "${args[@]}" | tee "$out/informer"
  elif [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null && command -v nft >/dev/null; then
    unshare -n sh -c 'ip link set lo up && exec "$0" -m ipvsd.testing.bench.proxy --dataplane netns "$@"' \
      "$venv/bin/python" "${host_args[@]}" "${args[@]}" | tee "$out/host"
  else
    "$venv/bin/python" -m ipvsd.testing.bench.proxy --dataplane fake "${host_args[@]}" "${args[@]}" \
      | tee "$out/host"
  fi
  report+=("--$part" "$out/$part")
done
echo "== issue 19 =="
"$venv/bin/python" -m ipvsd.testing.bench.report "${report[@]}"

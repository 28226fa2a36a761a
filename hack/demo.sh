#!/usr/bin/env bash
# hack/demo.sh — the seed documents' walkthroughs on a real IPVS kernel: boots the VM (the first
# run installs what it needs) and, inside it, a three-node cluster of network namespaces with one
# ipvsd per node and the API emulator; replays default / PreferSameNode / PreferSameZone /
# fallback / ipvsd's topology-mode weight, externalTrafficPolicy: Local and sessionAffinity:
# ClientIP; prints a summary table and exits non-zero if any scenario missed its promise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec hack/kernel-run.sh python hack/demo_cluster.py

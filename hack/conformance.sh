#!/usr/bin/env bash
# hack/conformance.sh [--ci] [--no-owned] — upstream's Service e2e tests re-created for ipvsd
# (issue 18), in one VM boot: layout A (three nodes, one per zone) and layout B (three zones of
# two nodes) namespace clusters, one ipvsd per node against the API emulator, real packets.
# Prints a table (upstream test, upstream file, ipvsd's test, PASS/FAIL/SKIP) and, last, one
# JSON line {"passed": N, "failed": N, "skipped": N, "cases": {...}} (ipvsd/testing/conformance.py).
# --ci runs the CI subset only (every upstream file, both layouts); --no-owned leaves out the
# cases other issues' tests own (conntrack.go's, the health check one).
# The VM gets 4G by default (IPVSD_VM_MEMORY): six daemons and their supervisors, the pods'
# servers and the API emulator; IPVSD_VM_TIMEOUT 3600 s (the full run includes two disruption
# clusters for the restart cases).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export IPVSD_VM_MEMORY=${IPVSD_VM_MEMORY:-4G}
export IPVSD_VM_TIMEOUT=${IPVSD_VM_TIMEOUT:-3600}
exec hack/kernel-run.sh python -m ipvsd.testing.conformance "$@"

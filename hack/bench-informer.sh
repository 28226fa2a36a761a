#!/usr/bin/env bash
# hack/bench-informer.sh [--services N] [--endpoints N] [--events N] [--mode auto|list|stream]
#
# Host only, no VM. Starts the API emulator, bulk-loads 10,000 Services and 10,000
# EndpointSlices of 10 endpoints (100,000 endpoints over 500 nodes and 3 zones), then, each in a
# process of its own: ipvsd's informers sync (time to `synced`, VmRSS after it) and time single
# watch events (slice patches, from the event's last byte read to the handler's return,
# median of --events); and the official client lists the same objects as typed models.
# Prints the figures and, as its last line, JSON.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"
ensure_venv
exec "$venv/bin/python" -m ipvsd.testing.bench.informers "$@"

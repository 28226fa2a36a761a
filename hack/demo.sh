#!/usr/bin/env bash
# hack/demo.sh — boots a real IPVS kernel (first use installs what it needs) and shows ipvsd's
# IPVS adapter balancing real HTTP requests between two backend namespaces.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec hack/kernel-run.sh python hack/demo_dataplane.py

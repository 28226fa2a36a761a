#!/usr/bin/env bash
# hack/bench-bound.sh [--services N] [--endpoints N]
#
# One VM boot (about 2 min): the hand-packed floor for 10,000 Services x 10 endpoints, and the
# Python steps every cold start must run before its last virtual server can be sent (parse the
# two lists, convert 20,000 objects, plan 10,000 Services), each timed alone. Their sum over the
# floor is a lower bound on hack/bench.sh's cold-start ratio. Prints the figures and, as its
# last line, JSON.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec hack/kernel-run.sh python hack/bench_bound_vm.py "$@"

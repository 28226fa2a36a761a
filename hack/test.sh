#!/usr/bin/env bash
# The project's test command (README; CI runs it through .ci/run).
#
#   hack/test.sh              tiers lint, host (unit + component), image, kernel (core and
#                             clusters, one VM boot each)
#   hack/test.sh --host-only  skip the kernel tier
#
# PYTEST_ARGS adds arguments to both pytest runs, with shell quoting: PYTEST_ARGS='-x -k "a or b"'.
# Every tier runs even after a failure, so one run shows everything; exits 1 if any step failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

case "${1:-}" in
  "") kernel=1 ;;
  --host-only) kernel=0 ;;
  *) echo "usage: hack/test.sh [--host-only]" >&2; exit 2 ;;
esac
eval "pytest_args=(${PYTEST_ARGS:-})"  # the developer's own variable, split as the shell would

ensure_venv
# The host tier checks rendered tables with the real `nft` (check mode needs no IPVS), and
# the API emulator makes its certificates with `openssl`.
ensure_packages nftables openssl
export PATH=$venv/bin:$PATH

recap=()
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# step TIER LABEL CMD...: run CMD with its output shown; the recap keeps its last line (for
# pytest -q, the summary line such as "12 passed in 3.40s"; for ruff, "Found 2 errors." rather
# than the fix hints printed after it).
step() {
  local tier=$1 label=$2 rc=0 start=$SECONDS verdict=PASS last
  shift 2
  "$@" 2>&1 | tee "$log" || rc=$?
  last=$(grep -v -E '^([[:space:]]*$|\[\*\] |No fixes available)' "$log" | tail -n 1 || true)
  if [ "$rc" -ne 0 ]; then verdict=FAIL failed=1; fi
  recap+=("$(printf '%s  %-6s  %s: %s (exit %s, %ss)' \
    "$verdict" "$tier" "$label" "$last" "$rc" "$((SECONDS - start))")")
}

echo "== tier: lint =="
step lint "ruff check" ruff check .
step lint "ruff format" ruff format --check .
step lint mypy mypy --strict ipvsd
step lint "import layers" lint-imports  # pyproject [tool.importlinter]: the layers

echo "== tier: host =="
# Git keeps no empty folders: a tier folder may not exist yet in a fresh clone.
host_dirs=()
for dir in tests/unit tests/component; do [ ! -d "$dir" ] || host_dirs+=("$dir"); done
step host pytest pytest "${host_dirs[@]:-tests/unit}" -q -p no:cacheprovider "${pytest_args[@]}"

# The image: hack/image.sh builds it (podman, no registry), podman runs it on the host, and the
# DaemonSet's container runs from it with runc in one VM boot (tests/image). Skipped by --host-only.
if [ "$kernel" = 1 ]; then
  echo "== tier: image (build, host, one VM boot) =="
  export IPVSD_IMAGE_REQUIRED=1  # the image tests fail rather than skip without a build
  step image build hack/image.sh
  step image "pytest on the host" pytest tests/image -q -p no:cacheprovider \
    -m "image and not kernel" "${pytest_args[@]}"
  # One test of a few minutes: a hang dumps every thread's stack at 12 minutes (faulthandler),
  # the test fails at 15 (its timeout) and the VM goes at 20, not at the default 30.
  IPVSD_VM_TIMEOUT=1200 step image "pytest in the VM" hack/kernel-run.sh \
    python -m pytest tests/image -q -p no:cacheprovider -m "image and kernel" \
    -o faulthandler_timeout=720 "${pytest_args[@]}"
fi

# The kernel tests in four VM boots, each within kernel-run.sh's timeout: the core (adapters,
# firewall, one daemon against the emulator) and the clusters (several daemons and traffic
# processes: the demo, the takeover from kube-proxy, the two-node local-traffic test).
cluster_tests=(tests/kernel/test_demo.py tests/kernel/test_takeover.py
  tests/kernel/test_cluster_local_traffic.py)
# The disruption harness's CI subset and the conformance CI subset each take a boot of their own
# (a three-node cluster, 3G; two clusters of three and six nodes, 4G).
disruption_tests=(tests/kernel/test_disruption.py)
if [ "$kernel" = 1 ]; then
  echo "== tier: kernel (core, one VM boot) =="
  ignores=()
  for file in "${cluster_tests[@]}" "${disruption_tests[@]}"; do ignores+=("--ignore=$file"); done
  step kernel "pytest in the VM (core)" hack/kernel-run.sh \
    python -m pytest tests/kernel "${ignores[@]}" -q -p no:cacheprovider -m kernel \
    "${pytest_args[@]}"
  echo "== tier: kernel (clusters, one VM boot) =="
  step kernel "pytest in the VM (clusters)" hack/kernel-run.sh \
    python -m pytest "${cluster_tests[@]}" -q -p no:cacheprovider -m kernel "${pytest_args[@]}"
  echo "== tier: kernel (disruption, one VM boot) =="
  step kernel "pytest in the VM (disruption)" env IPVSD_VM_MEMORY=3G hack/kernel-run.sh \
    python -m pytest "${disruption_tests[@]}" -q -p no:cacheprovider -m kernel "${pytest_args[@]}"
  echo "== tier: kernel (conformance subset, one VM boot) =="
  step kernel "conformance in the VM (CI subset)" env IPVSD_VM_MEMORY=4G hack/kernel-run.sh \
    python -m ipvsd.testing.conformance --ci
fi

echo "== recap =="
printf '%s\n' "${recap[@]}"
exit "$failed"

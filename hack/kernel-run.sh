#!/usr/bin/env bash
# hack/kernel-run.sh CMD [ARGS...]
#
# Boots a stock Debian kernel that has IPVS (this machine's own kernel has none) under QEMU with
# virtme-ng and runs CMD as root inside, in the caller's working directory, with .venv/bin first on
# PATH. The host's root file system is shared read-only, so the guest runs this very checkout.
# Prints only CMD's stdout and stderr (live) and exits with CMD's status; 124 if it runs longer
# than IPVSD_VM_TIMEOUT seconds. README.md ("Running the tests") explains the choices.
#
# Environment: IPVSD_VM_MEMORY (2G), IPVSD_VM_CPUS (2), IPVSD_VM_TIMEOUT (1800),
# IPVSD_VM_SLOTS (unset: no limit; N: wait until fewer than N VMs of this checkout run, so that
# several developers or agents sharing a small machine do not starve each other's VMs),
# IPVSD_CACHE (where the unpacked kernel lives, default .cache/kernel; delete it to refresh),
# IPVSD_VM_BOOT_WAIT (300: a boot that has not reached CMD by then is killed and tried again,
# once; exit 125 if the second one hangs too).
# Passed into the guest: CI, PYTHONPATH, PYTEST_ADDOPTS and every IPVSD_* variable; the guest
# also gets IPVSD_IN_VM=1, a fresh writable HOME and TMPDIR, PYTHONDONTWRITEBYTECODE=1 and
# PYTHONUNBUFFERED=1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -gt 0 ] || { echo "usage: hack/kernel-run.sh CMD [ARGS...]" >&2; exit 2; }
cache=$(realpath -m "${IPVSD_CACHE:-$root/.cache/kernel}")
vm_timeout=${IPVSD_VM_TIMEOUT:-1800}

# The kernel is unpacked once into $cache and then reused as is (no network on later runs).
ensure_kernel() {
  [ -f "$cache/version" ] && return 0
  # Never delete or fill a folder that is not ours (a mistyped IPVSD_CACHE, say).
  if [ -e "$cache" ]; then
    say "$cache exists but holds no kernel: remove it or fix IPVSD_CACHE"
    exit 1
  fi
  say "downloading the Debian kernel into $cache"
  mkdir -p "$(dirname "$cache")"
  local pkg
  tmp=$(mktemp -d "$cache.partial.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # apt-get download runs in the target folder; as root it warns that the _apt sandbox user
  # cannot write there, which is harmless. Fresh machines may have no package lists yet.
  (cd "$tmp" && quietly apt-get download linux-image-amd64) ||
    { quietly as_root apt-get update && (cd "$tmp" && quietly apt-get download linux-image-amd64); }
  # The metapackage only depends on the real image, e.g. linux-image-6.1.0-56-amd64.
  pkg=$(dpkg-deb -f "$tmp"/linux-image-amd64_*.deb Depends | grep -o 'linux-image-[0-9][^ ,]*')
  (cd "$tmp" && quietly apt-get download "$pkg")
  dpkg -x "$tmp/${pkg}_"*.deb "$tmp/root"
  rm -f "$tmp"/*.deb
  # virtme-ng finds the modules next to the image (root/lib/modules/<ver>); index them here so
  # nothing has to be written under the host's /lib/modules.
  depmod -b "$tmp/root" "${pkg#linux-image-}"
  echo "${pkg#linux-image-}" >"$tmp/version"
  # Publish the complete folder in one step (a concurrent first run may have won: keep its copy).
  mv -T "$tmp" "$cache" 2>/dev/null || rm -rf "$tmp"
  trap - EXIT
}

# openssl: the API emulator makes its CA and serving certificate with it (tests in the VM too).
ensure_packages qemu-system-x86 kmod cpio busybox-static ipvsadm iproute2 nftables conntrack openssl
ensure_venv
ensure_kernel
ver=$(cat "$cache/version")

mkdir -p "$root/.cache"
# IPVSD_VM_SLOTS: hold one of N lock files for as long as this script runs (the VM included).
if [ -n "${IPVSD_VM_SLOTS:-}" ]; then
  waited=0
  until
    for ((slot = 1; slot <= IPVSD_VM_SLOTS; slot++)); do
      exec {slot_fd}>"$root/.cache/vm-slot-$slot.lock"
      if flock -n "$slot_fd"; then break; fi
      exec {slot_fd}>&-
    done
    [ "$slot" -le "$IPVSD_VM_SLOTS" ]
  do
    [ "$waited" = 1 ] || say "waiting for one of $IPVSD_VM_SLOTS VM slots (IPVSD_VM_SLOTS)"
    waited=1
    sleep 3
  done
fi

# A fresh folder shared read-write with the guest: the guest script, CMD's output, its status.
run=$(mktemp -d "$root/.cache/vm-run.XXXXXX")
vm_pid=
cleanup() {
  [ -z "$vm_pid" ] || kill "$vm_pid" 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# virtme-ng makes /tmp a writable overlay over the host's /tmp. The guest gets a clean tmpfs there
# instead, unless something it needs from the host lives under /tmp and would be hidden by it.
fresh_tmp=1
for dir in "$root" "$PWD" "$cache"; do [[ $dir/ != /tmp/* ]] || fresh_tmp=0; done

# The guest script: environment, then CMD (quoted with %q, so any argument survives).
{
  echo ": >$(printf %q "$run/started")"  # the boot reached CMD (see boot_wait below)
  echo "exec </dev/null >>$(printf %q "$run/stdout") 2>>$(printf %q "$run/stderr")"
  for name in CI PYTHONPATH PYTEST_ADDOPTS $(compgen -e | grep '^IPVSD_' || true); do
    [ -z "${!name+set}" ] || printf 'export %s=%q\n' "$name" "${!name}"
  done
  printf 'export PATH=%q\n' "$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  printf 'export VIRTUAL_ENV=%q\n' "$venv"
  [ "$fresh_tmp" = 0 ] || echo 'mount -t tmpfs -o mode=1777 tmpfs /tmp'
  cat <<'EOF'
# Unbuffered, so that Python's output (pytest's progress) streams out as it is written.
export IPVSD_IN_VM=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8
export TMPDIR=/tmp HOME=/tmp/home HYPOTHESIS_STORAGE_DIRECTORY=/tmp/hypothesis
mkdir -p "$HOME"
# The checkout is read-only here: pytest's cache would fail to write (an error under
# filterwarnings=error). Repeating -p no:cacheprovider is harmless.
export PYTEST_ADDOPTS="-p no:cacheprovider${PYTEST_ADDOPTS:+ $PYTEST_ADDOPTS}"
EOF
  printf 'cd %q || exit 126\n' "$PWD"
  printf '%q ' "$@"
  echo
} >"$run/guest.sh"
: >"$run/stdout"
: >"$run/stderr"

# vng's own exit status is not CMD's (it was 255 on success), and without --verbose the guest's
# console output is lost anyway: CMD's status comes from the rc file. timeout kills its whole
# process group (vng and QEMU) when the time is up.
boot() {
  PATH=$venv/bin:$PATH timeout -k 10 "$vm_timeout" \
    vng --run "$cache/root/boot/vmlinuz-$ver" --disable-kvm --user root \
    --cpus "${IPVSD_VM_CPUS:-2}" --memory "${IPVSD_VM_MEMORY:-2G}" --rwdir "$run" \
    --exec "bash $(printf %q "$run/guest.sh"); echo \$? >$(printf %q "$run/rc")" \
    </dev/null >"$run/vng.log" 2>&1 &
  vm_pid=$!
}
# A boot reaches CMD in 10-30 s here. One that has not in boot_wait seconds is taken as hung
# (not seen here; CI's one unexplained 30-minute silence may have been one): it is killed and
# the VM boots again, once. CMD itself never runs twice.
boot_wait=${IPVSD_VM_BOOT_WAIT:-300}
for attempt in 1 2; do
  boot
  for ((waited = 0; waited < boot_wait; waited++)); do
    [ ! -e "$run/started" ] && kill -0 "$vm_pid" 2>/dev/null || break
    sleep 1
  done
  if [ -e "$run/started" ] || ! kill -0 "$vm_pid" 2>/dev/null; then break; fi
  kill "$vm_pid" 2>/dev/null || true
  wait "$vm_pid" || true
  vm_pid=
  say "the VM did not reach the command in ${boot_wait}s (boot $attempt of 2); its log:"
  tail -n 20 "$run/vng.log" >&2
  [ "$attempt" -lt 2 ] || exit 125
done
# Stream the output live: tail follows the files the guest appends to over 9p and, once the VM
# process is gone, reads what is left and exits.
tail -n +1 -s 0.2 -f --pid="$vm_pid" "$run/stdout" &
out_pid=$!
tail -n +1 -s 0.2 -f --pid="$vm_pid" "$run/stderr" >&2 &
err_pid=$!
vm_rc=0
wait "$vm_pid" || vm_rc=$?
vm_pid=
wait "$out_pid" "$err_pid" || true

if [ -s "$run/rc" ]; then
  exit "$(cat "$run/rc")"
elif [ "$vm_rc" -eq 124 ] || [ "$vm_rc" -eq 137 ]; then  # timeout's codes: TERM, then KILL
  # The guest's last lines say where it stood (a summary keeps no more than this message).
  out=$(grep -v '^[[:space:]]*$' "$run/stdout" | tail -n 1 || true)
  err=$(grep -v '^[[:space:]]*$' "$run/stderr" | tail -n 1 || true)
  say "timed out after ${vm_timeout}s (IPVSD_VM_TIMEOUT); the VM was killed;" \
    "the guest's last output: ${out:-none}; its last error output: ${err:-none}"
  exit 124
fi
say "the VM ended before the command finished (vng exit $vm_rc); its log:"
cat "$run/vng.log" >&2
exit 125

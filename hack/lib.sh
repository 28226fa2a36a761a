# Shared by the hack/ scripts (source it; it is not run on its own).
# Sets $root (the checkout) and provides small helpers plus ensure_venv.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/.venv

say() { echo "${0##*/}: $*" >&2; }

# quietly CMD...: run a noisy setup command; show its output only if it fails.
quietly() {
  local log rc=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { cat "$log" >&2; say "failed ($rc): $*"; }
  rm -f "$log"
  return "$rc"
}

# as_root CMD...: run CMD as root (sudo only when we are not root already).
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The first Python >= 3.11 that can create venvs: $PYTHON, python3, then pyenv's (CI machines
# ship Python under ~/.pyenv, which a non-login shell may not have on PATH).
find_python() {
  local py
  for py in ${PYTHON:-} python3 "${PYENV_ROOT:-${HOME:-}/.pyenv}/shims/python3"; do
    if "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
    then echo "$py"; return 0; fi
  done
  say "no Python >= 3.11 with venv/ensurepip found (set PYTHON=...)"
  return 1
}

# ensure_venv: .venv with the package and its dev extra. pip runs only when the venv is new or
# pyproject.toml changed since the last successful install (the stamp holds its checksum).
ensure_venv() {
  local stamp=$venv/.ipvsd-dev-installed sum python
  sum=$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)
  if [ -x "$venv/bin/vng" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then return 0; fi
  if [ ! -x "$venv/bin/python" ]; then
    python=$(find_python)
    say "creating $venv with $python"
    quietly "$python" -m venv "$venv"
  fi
  say "installing ipvsd with its dev extra into .venv (pip)"
  quietly "$venv/bin/pip" install --disable-pip-version-check -e "$root[dev]"
  echo "$sum" >"$stamp"
}

# ensure_packages PKG...: install Debian packages that are missing (one apt-get for all of them).
ensure_packages() {
  dpkg -s "$@" >/dev/null 2>&1 && return 0
  say "installing $* (apt-get)"
  quietly as_root apt-get update
  quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

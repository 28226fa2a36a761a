#!/usr/bin/env bash
# hack/image.sh: build the repository's Dockerfile with podman, without any container registry.
#
# When the Dockerfile's default base (ARG BASE, the public python:3.11-slim-bookworm) is not in
# podman's local storage, a stand-in is made from Debian's packages with mmdebstrap (bookworm:
# python3 3.11 with venv and pip, as the python image has) and passed as --build-arg BASE; the
# Dockerfile's default stays the public image. The stand-in's tarball is kept under .cache/image,
# so only the first run pays for it. The image is also exported as a root file system
# (.cache/image/rootfs, its configuration in rootfs.config.json: for the image tier's run in
# the VM, which sees the host's files).
#
# Podman runs with runc and cgroupfs (crun fails on these machines' cgroup layout) and keeps its
# storage under .cache/podman; its configuration files are written there too, and nothing
# machine-wide is changed (see podman_env below; tests/image uses the same files).
#
# Installs what it needs: podman, runc, mmdebstrap (apt) and .venv (lib.sh's ensure_venv, whose
# dev extra has the kubectl the image tests render the manifests with). The last line printed,
# its only output on stdout, is JSON:
#   {"image": ID, "tag": ..., "size_bytes": N, "build_seconds": S, "base": ..., ...}
# and the same object is written to .cache/image/build.json.
#
# Environment: IPVSD_IMAGE_TAG (localhost/ipvsd:dev).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

tag=${IPVSD_IMAGE_TAG:-localhost/ipvsd:dev}
state=$root/.cache/image
podman_dir=$root/.cache/podman
mkdir -p "$state" "$podman_dir"

# podman's configuration for this checkout only: storage under .cache/podman, runc, cgroupfs,
# events to a file (no journald here), and rlimits the container can take without
# CAP_SYS_RESOURCE (podman's default NOFILE of 1048576 is above this machine's hard limit, and
# runc then fails with "error setting rlimit type 7").
podman_env() {
  local nofile nproc
  nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] || [ "$nofile" -le 1048576 ] || nofile=1048576
  [ "$nofile" != unlimited ] || nofile=1048576
  nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -le 32768 ] || nproc=32768
  [ "$nproc" != unlimited ] || nproc=32768
  cat >"$podman_dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$podman_dir/storage"
runroot = "$podman_dir/run"
EOF
  cat >"$podman_dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  export CONTAINERS_STORAGE_CONF=$podman_dir/storage.conf
  export CONTAINERS_CONF=$podman_dir/containers.conf
}

# The stand-in base: Debian bookworm with python3 (3.11), venv and pip. Its name carries a hash
# of what it is made of, so a change here makes a new one.
standin_spec="bookworm minbase python3,python3-venv,python3-pip,ca-certificates"
standin_hash=$(echo "$standin_spec" | sha256sum | cut -c1-12)
standin=localhost/ipvsd-base:bookworm-$standin_hash
standin_tar=$state/base-bookworm-$standin_hash.tar

ensure_standin() {
  podman image exists "$standin" && return 0
  if [ ! -f "$standin_tar" ]; then
    say "making the stand-in base from Debian's packages (mmdebstrap) into $standin_tar"
    local partial
    partial=$(mktemp "$standin_tar.partial.XXXXXX")
    # shellcheck disable=SC2064  # expand now: the trap must remove this very file
    trap "rm -f '$partial'" EXIT
    quietly mmdebstrap --variant=minbase --format=tar \
      --include=python3,python3-venv,python3-pip,ca-certificates \
      bookworm "$partial" \
      "deb http://deb.debian.org/debian bookworm main" \
      "deb http://deb.debian.org/debian bookworm-updates main" \
      "deb http://deb.debian.org/debian-security bookworm-security main"
    mv "$partial" "$standin_tar"
    trap - EXIT
  fi
  say "importing $standin_tar as $standin"
  # What the python image sets that a Dockerfile may rely on: UTF-8 and python3 as the command.
  quietly podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$standin_tar" "$standin"
}

ensure_packages podman runc mmdebstrap
ensure_venv
podman_env

default_base=$(sed -n 's/^ARG BASE=//p' Dockerfile)
start=$SECONDS
if podman image exists "$default_base"; then
  base=$default_base
  build_args=()
else
  say "$default_base is not in local storage: using a stand-in made from Debian's packages"
  ensure_standin
  base=$standin
  build_args=(--build-arg "BASE=$base")
fi
base_seconds=$((SECONDS - start))

# pip in the build stage: when the host's pip trusts a CA bundle of its own (a TLS-inspecting
# proxy), the build stage gets it too, mounted for the build only (it is not in any layer).
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
  build_args+=(--volume "$(realpath "$PIP_CERT"):/run/ipvsd-build/pip-ca.crt:ro"
    --build-arg PIP_CERT=/run/ipvsd-build/pip-ca.crt)
fi

say "building $tag from Dockerfile on $base"
start=$EPOCHREALTIME
# Host network for the build's apt-get and pip: no bridge or firewall set up on this host.
podman build --network host "${build_args[@]}" -t "$tag" -f Dockerfile . >&2
build_seconds=$(awk "BEGIN {print $EPOCHREALTIME - $start}")
id=$(podman image inspect --format '{{.Id}}' "$tag")
size=$(podman image inspect --format '{{.Size}}' "$tag")

# The image's files as a plain folder, refreshed when the image changed. Its own folder per
# image, published in one step, so a half-written export is never taken for a whole one.
rootfs=$state/rootfs
if [ "$(cat "$state/rootfs.id" 2>/dev/null)" != "$id" ]; then
  say "exporting the image's files into $rootfs"
  rm -rf "$rootfs.partial"
  mkdir "$rootfs.partial"
  cid=$(podman create "$id")
  podman export "$cid" | tar -x -C "$rootfs.partial"
  podman rm "$cid" >/dev/null
  rm -rf "$rootfs" "$state/rootfs.id"
  mv -T "$rootfs.partial" "$rootfs"
  # What a runtime takes from the image besides its files (entry point, environment, ...).
  podman image inspect --format '{{json .Config}}' "$id" >"$state/rootfs.config.json"
  echo "$id" >"$state/rootfs.id"
fi

printf '%s  %s  %s bytes  base %s (%ss)  build %.1fs\n' \
  "$tag" "${id:0:12}" "$size" "$base" "$base_seconds" "$build_seconds" >&2
json=$(printf '{"image": "%s", "tag": "%s", "size_bytes": %s, "build_seconds": %.1f, "base": "%s", "base_seconds": %s, "rootfs": "%s"}' \
  "$id" "$tag" "$size" "$build_seconds" "$base" "$base_seconds" "$rootfs")
echo "$json" >"$state/build.json"
echo "$json"

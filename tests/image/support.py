"""What the image tests share: the last build's record and podman as hack/image.sh runs it.

hack/image.sh writes `.cache/image/build.json` (image id, tag, size, the exported root file
system) and podman's configuration under `.cache/podman` (runc, cgroupfs, storage in the
checkout). Without a build the image tests skip, naming the command; with
IPVSD_IMAGE_REQUIRED=1 (the tier sets it) they fail instead, so CI cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# IPVSD_IMAGE_BUILD names another build's record (a checkout elsewhere testing this image).
BUILD_JSON = Path(os.environ.get("IPVSD_IMAGE_BUILD") or ROOT / ".cache" / "image" / "build.json")
PODMAN_DIR = ROOT / ".cache" / "podman"


def load_build() -> dict[str, Any]:
    if not BUILD_JSON.exists():
        message = f"no image: {BUILD_JSON} is missing (run hack/image.sh)"
        if os.environ.get("IPVSD_IMAGE_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    build: dict[str, Any] = json.loads(BUILD_JSON.read_text())
    return build


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """podman with hack/image.sh's configuration (no machine-wide setting is relied on)."""
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(PODMAN_DIR / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(PODMAN_DIR / "storage.conf"),
    }
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return done


def run_in_image(image: str, *args: str, entrypoint: str | None = None) -> str:
    """Run the image once without network (stdout and stderr together, as a user sees them).
    Killed after 90 s (the podman client's own timeout would leave the container running)."""
    flags = ["--rm", "--network", "none", "--timeout", "90"]
    if entrypoint is not None:
        flags += ["--entrypoint", entrypoint]
    done = podman("run", *flags, image, *args)
    return done.stdout + done.stderr

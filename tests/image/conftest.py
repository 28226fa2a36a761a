"""The image tier: tests of the image hack/image.sh builds (hack/test.sh runs them as the tier
`image`: the host part with podman, the part marked kernel in the VM)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.image.support import load_build


def pytest_configure(config: pytest.Config) -> None:
    # Registered here rather than in pyproject.toml, next to the only tests that use it.
    config.addinivalue_line(
        "markers", "image: needs the image built by hack/image.sh (tier `image` of hack/test.sh)"
    )


@pytest.fixture(scope="session")
def build() -> dict[str, Any]:
    """hack/image.sh's record of the last build (image id, tag, exported root file system)."""
    return load_build()

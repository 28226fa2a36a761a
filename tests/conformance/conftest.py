"""The conformance cases' fixtures: one namespace cluster per layout, shared by the session.

Every case carries `@pytest.mark.upstream(name, file)`: the upstream e2e test it re-creates
(`ipvsd.testing.conformance` prints the table from these marks). The cases run in the session's
event loop (`loop_scope="session"`), because the API emulator lives in it across cases; the
files are ordered so that the layout A cases come first and layout B is built once, last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ipvsd.testing.conformance_cluster import ConformanceCluster, Layouts, layouts


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "upstream(name, file): the upstream e2e test this case re-creates"
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def clusters() -> AsyncIterator[Layouts]:
    async with layouts() as built:
        yield built


@pytest_asyncio.fixture(loop_scope="session")
async def layout_a(clusters: Layouts) -> AsyncIterator[ConformanceCluster]:
    """Three nodes, one per zone; what the case made is removed afterwards."""
    cluster = await clusters.get("A")
    yield cluster
    cluster.forget()


@pytest_asyncio.fixture(loop_scope="session")
async def layout_b(clusters: Layouts) -> AsyncIterator[ConformanceCluster]:
    """Three zones of two nodes each; what the case made is removed afterwards."""
    cluster = await clusters.get("B")
    yield cluster
    cluster.forget()

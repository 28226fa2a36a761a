"""The informers against a slow API (the emulator's paced lists, the disruption harness's
partial-list fault, Cilium #26912): `synced`, which gates ipvsd's first sync, is set only once
the whole EndpointSlice list has arrived, whether it is paged (`limit`/`continue`, one slice per
response) or streamed (a watch with `sendInitialEvents`, one slice per delay)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ipvsd.kube.watch import ListMode
from tests.component.informer_support import emulator, endpoint_slice, running, service

pytestmark = pytest.mark.timeout(30)

SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
DELAY = 0.4


@pytest.mark.parametrize("mode", [ListMode.LIST, ListMode.STREAM], ids=["paged", "streamed"])
async def test_synced_waits_for_the_last_page_of_a_slow_endpointslice_list(
    mode: ListMode,
) -> None:
    async with emulator() as server:
        server.store.load([service("a"), service("b"), service("c"),
                           endpoint_slice("a-1", "a", "10.0.0.1"),
                           endpoint_slice("b-1", "b", "10.0.0.2"),
                           endpoint_slice("c-1", "c", "10.0.0.3")])  # fmt: skip
        pacing = server.faults.pace_lists(DELAY, page_size=1, path_prefix=SLICES)
        async with running(server, mode=mode, synced=False) as informers:
            async with asyncio.timeout(20):
                await informers.synced.wait()
            synced = time.monotonic()
            assert {"default/a-1", "default/b-1", "default/c-1"} <= set(
                informers.endpoint_slices.store
            )
            longest = max(pacing.done, key=lambda done: done.pages)
            assert longest.mode == ("list" if mode is ListMode.LIST else "stream")
            assert longest.pages >= 4  # the three slices and the API's own `kubernetes`
            assert synced >= max(done.ended for done in pacing.done)

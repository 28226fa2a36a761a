"""How fast the API emulator serves a large cluster: N Services, N EndpointSlices of E endpoints.

    .venv/bin/python hack/bench_apiserver.py [--services 10000] [--endpoints 10]

The emulator runs in a child process (bulk-loaded through `store.load`, no HTTP); this process
times plain GETs of the whole lists over HTTP, as an informer's initial list would make them,
and prints one JSON line: load time, server memory, bytes and seconds per list.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import multiprocessing
import resource
import ssl
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import uvloop

from ipvsd.testing.apiserver import ApiServer


def objects(count: int, per_slice: int) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for index in range(count):
        name = f"svc-{index}"
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
                "spec": {
                    "selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            }
        )
        endpoints = [
            {
                "addresses": [f"10.{(index >> 8) & 255}.{index & 255}.{e + 1}"],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": f"node-{e}",
                "zone": f"zone-{e % 3}",
                "targetRef": {"kind": "Pod", "namespace": "default", "name": f"{name}-pod-{e}"},
            }
            for e in range(per_slice)
        ]
        documents.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-abcde",
                    "namespace": "default",
                    "labels": {
                        "kubernetes.io/service-name": name,
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    },
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
        )
    return documents


def _rss_mib() -> float:
    """Resident memory now (the peak includes the fixtures built before loading)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(count: int, per_slice: int, pipe: Connection) -> None:
    async def run() -> None:
        server = ApiServer(service_cidr="10.96.0.0/12")
        documents = objects(count, per_slice)
        started = time.perf_counter()
        server.store.load(documents)
        loaded = time.perf_counter() - started
        del documents
        gc.collect()
        await server.start()
        pipe.send(
            {
                "port": server.port,
                "token": server.token,
                "ca": str(server.ca_path),
                "load_s": loaded,
                "server_rss_mib": _rss_mib(),
                "server_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        await server.stop()

    uvloop.run(run())


def timed_streaming_list(
    port: int, token: str, path: str, context: ssl.SSLContext
) -> tuple[int, float]:
    """(ADDED events, seconds until the initial-events-end BOOKMARK, parsing each line)."""
    query = "?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
    started = time.perf_counter()
    connection.request(
        "GET",
        f"{path}{query}&allowWatchBookmarks=true",
        headers={"Authorization": f"Bearer {token}"},
    )
    added = 0
    for line in connection.getresponse():
        if orjson.loads(line)["type"] == "BOOKMARK":
            break
        added += 1
    elapsed = time.perf_counter() - started
    connection.close()
    return added, elapsed


def timed_get(
    port: int, token: str, path: str, context: ssl.SSLContext
) -> tuple[int, float, float]:
    """(bytes, seconds to receive, seconds to receive and parse with orjson)."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
    started = time.perf_counter()
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    body = connection.getresponse().read()
    received = time.perf_counter() - started
    items = orjson.loads(body)["items"]
    parsed = time.perf_counter() - started
    connection.close()
    assert items
    return len(body), received, parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints per slice")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many GETs")
    arguments = parser.parse_args()
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.Process(
        target=serve, args=(arguments.services, arguments.endpoints, theirs)
    )
    child.start()
    report: dict[str, Any] = dict(ours.recv())
    port, token = report.pop("port"), report.pop("token")
    context = ssl.create_default_context(cafile=report.pop("ca"))  # the emulator serves HTTPS
    for name, path in (
        ("services", "/api/v1/services"),
        ("endpointslices", "/apis/discovery.k8s.io/v1/endpointslices"),
    ):
        runs = [timed_get(port, token, path, context) for _ in range(arguments.rounds)]
        size, received, parsed = min(runs, key=lambda run: run[1])
        added, streamed = min(
            (timed_streaming_list(port, token, path, context) for _ in range(arguments.rounds)),
            key=lambda run: run[1],
        )
        report[name] = {
            "bytes": size,
            "get_s": round(received, 4),
            "get_and_parse_s": round(parsed, 4),
            "streaming_list_events": added,
            "streaming_list_and_parse_s": round(streamed, 4),
        }
    ours.send("stop")
    child.join()
    report["load_s"] = round(report["load_s"], 3)
    report["server_rss_mib"] = round(report["server_rss_mib"])
    report["server_peak_rss_mib"] = round(report["server_peak_rss_mib"])
    report["objects"] = 2 * arguments.services
    report["endpoints"] = arguments.services * arguments.endpoints
    print(json.dumps(report))


if __name__ == "__main__":
    main()

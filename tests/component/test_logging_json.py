"""`--logging-format=json` end to end: the real `python -m ipvsd`, every stderr line parsed.

kube-proxy's JSON lines are component-base's (`k8s.io/component-base/logs/json`): `ts`
(milliseconds since the epoch, a float), `caller` (`dir/file:line`), `msg`, `v` on info
lines, then key/value pairs, and `err` last on error lines. Log collectors parse them with
one rule, so each line must be one such object: a stray text line would break the stream.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import endpoint, endpoint_slice, node, service

CALLER = re.compile(r"[a-z_]+/[a-z_]+\.py:[0-9]+")


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer() as running:
        running.store.create(node("node-a", zone="zone-a"))
        document = service("echo", clusterIP="10.96.0.10", ports=[{"port": 80}])
        document["metadata"]["annotations"] = {"ipvsd.io/topology-mode": "bogus"}
        running.store.create(document)
        running.store.create(
            endpoint_slice("echo-1", "echo", [endpoint("10.244.1.5", node="node-a")])
        )
        yield running


async def ipvsd(*argv: str) -> tuple[int, str, list[dict[str, Any]]]:
    """Exit code, stdout, and stderr as JSON objects (failing on any line that is not one)."""
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
    lines = err.decode().splitlines()
    assert lines, "expected log lines on stderr"
    return process.returncode, out.decode(), [json.loads(line) for line in lines]


def assert_component_base_shape(line: dict[str, Any], *, error: bool) -> None:
    """The keys in kube-proxy's order: ts, caller, msg, v (info only), pairs, err (error)."""
    keys = list(line)
    assert keys[:3] == ["ts", "caller", "msg"], line
    assert isinstance(line["ts"], float)
    assert abs(line["ts"] - time.time() * 1000) < 600_000, "milliseconds since the epoch"
    assert CALLER.fullmatch(line["caller"]), line["caller"]
    assert isinstance(line["msg"], str)
    assert line["msg"]
    if error:
        assert "v" not in line
        assert keys[-1] == "err"
        assert isinstance(line["err"], str)
    else:
        assert keys[3] == "v"
        assert line["v"] == 0


async def test_dry_run_logs_warnings_notes_and_messages_as_json(server: ApiServer) -> None:
    code, out, lines = await ipvsd(
        f"--kubeconfig={server.kubeconfig_path}",
        "--hostname-override=node-a",
        "--dry-run",
        "--logging-format=json",
        "--profiling",  # an ignored flag: a warning
        "--proxy-mode=ipvs",  # an ignored flag ipvsd follows: a note
    )
    assert code == 0
    assert "-A -t 10.96.0.10:80 -s rr" in out.splitlines()  # the table stays on stdout
    for line in lines:
        assert_component_base_shape(line, error=False)
    assert [line["msg"] for line in lines] == [
        "--profiling=true: ignored (ipvsd serves no pprof handlers)",
        "--proxy-mode=ipvs: accepted; ipvsd does this anyway",
        "warning: Service default/echo: annotation ipvsd.io/topology-mode='bogus': not "
        "'exclude' or 'weight'; using 'exclude'",
    ]


async def test_an_operators_mistake_is_one_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "kubeconfig"
    code, out, lines = await ipvsd(
        f"--kubeconfig={missing}", "--hostname-override=node-a", "--logging-format=json"
    )
    assert (code, out) == (4, "")
    (line,) = lines
    assert_component_base_shape(line, error=True)
    assert line["msg"] == (
        f"kubeconfig {missing} not found (check --kubeconfig, or $KUBECONFIG, and the "
        "file's content)"
    )
    assert line["err"] == f"kubeconfig {missing} not found"
    assert line["caller"].startswith("ipvsd/__main__.py:")


async def test_the_config_files_logging_format(server: ApiServer, tmp_path: Path) -> None:
    config = tmp_path / "config.conf"
    config.write_text(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        f"clientConnection:\n  kubeconfig: {server.kubeconfig_path}\n"
        "logging:\n  format: json\n  verbosity: 2\n"
    )
    code, _, lines = await ipvsd(f"--config={config}", "--hostname-override=node-a", "--dry-run")
    assert code == 0
    assert [line["msg"][:8] for line in lines] == ["warning:"]
    assert_component_base_shape(lines[0], error=False)


async def test_text_stays_the_default(server: ApiServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ipvsd",
        f"--kubeconfig={server.kubeconfig_path}",
        "--hostname-override=node-a",
        "--dry-run",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert err.decode().startswith("warning: Service default/echo: annotation")

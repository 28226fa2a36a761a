"""What an operator's common mistakes end in: the real `python -m ipvsd`, one line on stderr
(`ipvsd: <what> (<what to do>)`), an exit code per kind, and nothing changed on the node.

Runs on the host as root: the daemon gets as far as it can before it fails, and each case
checks that it failed before touching the node (no sysctl written, no module loaded).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from ipvsd.__main__ import KUBECONFIG, NO_API_SERVER, NO_IPVS, PORT_IN_USE, USAGE

HAS_IPVS = Path("/proc/net/ip_vs").exists()
QUIET = ("--healthz-bind-address=", "--metrics-bind-address=")  # no ports unless asked


def ipvsd(*argv: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "ipvsd", *argv],
        capture_output=True,
        text=True,
        env=dict(os.environ if env is None else env),
        check=False,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def one_line(err: str) -> str:
    """The error line, after checking that it is the only one and no traceback was printed."""
    assert "Traceback" not in err
    (line,) = err.splitlines()
    return line


def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "kubeconfig"
    for argv in [("--dry-run",), QUIET, ("explain", "web")]:
        code, out, err = ipvsd("--kubeconfig", str(missing), "--hostname-override=n", *argv)
        assert (code, out) == (KUBECONFIG, "")
        assert one_line(err) == (
            f"ipvsd: kubeconfig {missing} not found (check --kubeconfig, or $KUBECONFIG, and the "
            "file's content)"
        )


def test_no_api_server_configured(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")
    }
    env["HOME"] = str(tmp_path)
    code, out, err = ipvsd("--hostname-override=n", *QUIET, env=env)
    assert (code, out) == (NO_API_SERVER, "")
    assert one_line(err) == (
        "ipvsd: no API server configured: not in a pod (KUBERNETES_SERVICE_HOST unset), no "
        f"--kubeconfig, no --master and no {tmp_path}/.kube/config (give --kubeconfig FILE or "
        "--master URL, or run in a pod)"
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("flag", ["--healthz-bind-address", "--metrics-bind-address"])
def test_a_port_in_use_fails_before_the_node_is_changed(flag: str, taken_port: int) -> None:
    code, out, err = ipvsd(
        "--master=http://127.0.0.1:1",
        "--hostname-override=n",
        *QUIET,
        f"{flag}=127.0.0.1:{taken_port}",
    )
    assert (code, out) == (PORT_IN_USE, "")
    line = one_line(err)  # so neither modprobe nor a sysctl ran
    assert line.startswith("ipvsd: ")
    assert f"cannot listen on 127.0.0.1:{taken_port}" in line
    assert line.endswith(
        "(stop what listens there, kube-proxy perhaps, or choose another address with "
        "--healthz-bind-address or --metrics-bind-address)"
    )


NO_IPVS_SAID = "ipvsd: the kernel has no IPVS"
WHAT_TO_DO = "(load it with `modprobe ip_vs` on the node, or use a kernel built with CONFIG_IP_VS)"


# Safety, not a skip of convenience: on a kernel with IPVS these commands would program or
# clean this machine's table. The host of the test tier has none.
@pytest.mark.skipif(HAS_IPVS, reason="this kernel has IPVS; the daemon would change it")
def test_no_ipvs_in_the_kernel() -> None:
    code, out, err = ipvsd("--master=http://127.0.0.1:1", "--hostname-override=n", *QUIET)
    assert (code, out) == (NO_IPVS, "")
    line = one_line(err)  # so no sysctl was written: they come after IPVS is found
    assert line.startswith(f"{NO_IPVS_SAID}; modprobe")  # what modprobe said of ip_vs
    assert line.endswith(WHAT_TO_DO)


@pytest.mark.skipif(HAS_IPVS, reason="this kernel has IPVS; cleanup would change it")
def test_no_ipvs_for_cleanup() -> None:
    code, out, err = ipvsd("--cleanup")
    assert (code, out) == (NO_IPVS, "")
    assert one_line(err) == f"{NO_IPVS_SAID} {WHAT_TO_DO}"


@pytest.mark.skipif(HAS_IPVS, reason="this kernel has IPVS; the daemon would change it")
def test_verbosity_4_keeps_the_traceback() -> None:
    code, _, err = ipvsd("--master=http://127.0.0.1:1", "--hostname-override=n", *QUIET, "-v=4")
    assert code == NO_IPVS
    assert "Traceback (most recent call last)" in err
    assert "IpvsUnavailable" in err
    assert err.splitlines()[-1].startswith(NO_IPVS_SAID)


def test_every_exit_code_is_distinct_and_in_the_help() -> None:
    code, out, _ = ipvsd("--help")
    assert code == 0
    _, _, codes = out.partition("exit codes:\n")
    numbers = [int(line.split()[0]) for line in codes.splitlines() if line.strip()]
    assert numbers == sorted(set(numbers))
    assert {USAGE, NO_API_SERVER, KUBECONFIG, NO_IPVS, PORT_IN_USE} <= set(numbers)


def test_an_unknown_flag_is_named_with_the_closest_known_one() -> None:
    code, out, err = ipvsd("--ipvs-schedular", "wrr")
    assert (code, out) == (USAGE, "")
    assert one_line(err) == (
        "ipvsd: unknown flag --ipvs-schedular (did you mean --ipvs-scheduler? ipvsd --help "
        "lists every flag)"
    )

"""`python -m ipvsd.testing.apiserver`: run the emulator until SIGTERM or SIGINT.

Prints one line, `serving <url> kubeconfig <path>`, once the socket listens and the kubeconfig
is written, so a parent process can wait for it instead of polling.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import uvloop

from ipvsd.testing.apiserver.server import ApiServer


def _listen_address(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ipvsd.testing.apiserver",
        description="Kubernetes API server emulator for ipvsd's tests (HTTPS, bearer token).",
    )
    parser.add_argument(
        "--listen",
        type=_listen_address,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="address to listen on (port 0: any free port)",
    )
    parser.add_argument(
        "--kubeconfig-out",
        type=Path,
        required=True,
        metavar="PATH",
        help="where to write a kubeconfig for kubectl and client libraries (and the CA it"
        " trusts, as PATH.ca.crt)",
    )
    parser.add_argument(
        "--service-account-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write a pod's service-account directory there (token, ca.crt, namespace)",
    )
    parser.add_argument(
        "--service-cidr", default="10.96.0.0/12", help="primary Service IP range (either family)"
    )
    parser.add_argument(
        "--service-cidr-v6",
        default=None,
        metavar="CIDR",
        help="secondary (IPv6) Service IP range: makes the cluster dual-stack",
    )
    parser.add_argument("--node-port-range", default="30000-32767", metavar="FIRST-LAST")
    parser.add_argument(
        "--hint-controller",
        action="store_true",
        help="write EndpointSlice hints as the EndpointSlice controller does",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="load objects from PATH at start if it exists, save them on stop",
    )
    parser.add_argument(
        "--advertise-address",
        default=None,
        metavar="IP",
        help="the address in the default/kubernetes EndpointSlice (default: the listening one)",
    )
    parser.add_argument("--token", default=None, help="bearer token (default: saved or random)")
    parser.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="serve requests without credentials; a wrong token is still refused with 401",
    )
    parser.add_argument(
        "--history-size",
        type=int,
        default=10_000,
        help="events kept for watches from a resource version",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="BOOKMARK period for watches that allow them",
    )
    parser.add_argument(
        "--watch-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="how long a watch without timeoutSeconds lasts",
    )
    return parser.parse_args(argv)


async def serve(arguments: argparse.Namespace) -> None:
    host, port = arguments.listen
    server = ApiServer(
        host=host,
        port=port,
        kubeconfig_path=arguments.kubeconfig_out,
        service_cidr=arguments.service_cidr,
        service_cidr_v6=arguments.service_cidr_v6,
        node_port_range=arguments.node_port_range,
        hint_controller=arguments.hint_controller,
        state_file=arguments.state_file,
        advertise_address=arguments.advertise_address,
        service_account_dir=arguments.service_account_dir,
        token=arguments.token,
        allow_anonymous=arguments.allow_anonymous,
        history_size=arguments.history_size,
        bookmark_interval=arguments.bookmark_interval,
        watch_timeout=arguments.watch_timeout,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await server.start()
    print(f"serving {server.url} kubeconfig {server.kubeconfig_path}", flush=True)
    try:
        await stopping.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        uvloop.run(serve(arguments))
    except (OSError, ValueError) as error:
        print(f"ipvsd API emulator: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`ipvsd` / `python -m ipvsd`: parse kube-proxy's flags, set up logging, run on uvloop.

An operator's mistake ends in one line on stderr, `ipvsd: <what> (<what to do>)`, and an exit
code per kind (`EXIT_CODES`, also printed by `--help`); `-v=4` or more adds the traceback.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Sequence

import uvloop

from ipvsd import __version__
from ipvsd.app import IpvsModuleMissing, run, until_signalled
from ipvsd.config.command_line import parse_args
from ipvsd.config.settings import ConfigError, ProxyConfig
from ipvsd.dataplane.errors import IpvsUnavailable
from ipvsd.explain import ExplainError, explain, node_table
from ipvsd.kube.auth import CredentialsError, NoApiServer
from ipvsd.log_format import JsonFormatter
from ipvsd.reconcile.takeover import KubeProxyRunning
from ipvsd.server.http import ListenFailed

log = logging.getLogger("ipvsd")

# Exit codes, one per kind of failure an operator can fix (the first matching class wins).
FAILED = 1  # explain or --dry-run could not answer (API unreachable, refused, not found)
USAGE = 2
NO_API_SERVER = 3
KUBECONFIG = 4
NO_IPVS = 5
PORT_IN_USE = 6
KUBE_PROXY_RUNNING = 7
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "done (the daemon: stopped by SIGTERM or SIGINT)"),
    (FAILED, "explain or --dry-run could not answer; --cleanup could not remove everything"),
    (USAGE, "a flag or the --config file is wrong"),
    (NO_API_SERVER, "no API server configured (no kubeconfig, not in a pod)"),
    (KUBECONFIG, "the kubeconfig file is missing or unusable"),
    (NO_IPVS, "the kernel has no IPVS"),
    (PORT_IN_USE, "the health or metrics port cannot be bound (in use)"),
    (KUBE_PROXY_RUNNING, "kube-proxy runs on this node in IPVS mode"),
)


def _failure(error: BaseException) -> tuple[int, str] | None:
    """(exit code, the one line) for an error an operator can act on; None for a bug."""
    if isinstance(error, NoApiServer):
        return NO_API_SERVER, f"{error} (give --kubeconfig FILE or --master URL, or run in a pod)"
    if isinstance(error, CredentialsError):
        return KUBECONFIG, f"{error} (check --kubeconfig, or $KUBECONFIG, and the file's content)"
    if isinstance(error, IpvsUnavailable):
        said = f"; {error.what}" if isinstance(error, IpvsModuleMissing) else ""
        return NO_IPVS, (
            f"the kernel has no IPVS{said} (load it with `modprobe ip_vs` on the node, or use a "
            "kernel built with CONFIG_IP_VS)"
        )
    if isinstance(error, ListenFailed):
        return PORT_IN_USE, (
            f"{error} (stop what listens there, kube-proxy perhaps, or choose another address "
            "with --healthz-bind-address or --metrics-bind-address)"
        )
    if isinstance(error, KubeProxyRunning):
        return KUBE_PROXY_RUNNING, str(error)
    if isinstance(error, ExplainError):
        return FAILED, str(error)
    return None


def version_text(*, raw: bool) -> str:
    """`--version`: one line; `--version=raw` as kube-proxy's, every field, Go-struct style."""
    if not raw:
        return f"ipvsd {__version__}"
    major, minor, *_ = [*__version__.split("."), "", ""]
    fields = {
        "Major": major,
        "Minor": minor,
        "GitVersion": f"v{__version__}",
        "Compiler": platform.python_implementation(),
        "PythonVersion": platform.python_version(),
        "Platform": f"{sys.platform}/{platform.machine()}",
    }
    return "version.Info{" + ", ".join(f'{k}:"{v}"' for k, v in fields.items()) + "}"


def exit_codes_help() -> str:
    return "exit codes:\n" + "".join(f"  {code:<3} {meaning}\n" for code, meaning in EXIT_CODES)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parsed = parse_args(sys.argv[1:] if argv is None else argv, environ=os.environ)
    except ConfigError as exc:
        print(f"ipvsd: {exc}", file=sys.stderr)
        return USAGE
    if parsed.command == "help":
        print(parsed.help_text)
        print(exit_codes_help(), end="")
        return 0
    if parsed.command == "version":
        print(version_text(raw=parsed.version_raw))
        return 0
    set_up_logging(parsed.config)
    for warning in parsed.warnings:
        log.warning("%s", warning)
    for note in parsed.notes:
        log.info("%s", note)
    try:
        if parsed.command == "explain" and parsed.explain is not None:
            try:
                print(uvloop.run(explain(parsed.config, parsed.explain)), end="")
            except ExplainError as error:
                _complain(parsed.config, str(error), error, prefix="ipvsd explain")
                return FAILED
            return 0
        if parsed.config.dry_run:
            return uvloop.run(_dry_run(parsed.config))
        return uvloop.run(until_signalled(run(parsed.config)))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        failure = _failure(error)
        if failure is None:
            if parsed.config.logging_format != "json":
                raise
            log.error("stopped by an unexpected error (a bug: please report it)", exc_info=error)
            return FAILED
        if parsed.config.verbosity >= 4:
            log.exception("%s", type(error).__name__)
        code, line = failure
        _complain(parsed.config, line, error)
        return code


def set_up_logging(config: ProxyConfig) -> None:
    """Log to stderr at -v's level, as text or, with --logging-format=json, as kube-proxy's
    JSON lines (Python's own warnings included, so that every stderr line parses)."""
    handler = logging.StreamHandler(sys.stderr)
    if config.logging_format == "json":
        handler.setFormatter(JsonFormatter())
        logging.captureWarnings(True)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=config.log_level, handlers=[handler])


def _complain(
    config: ProxyConfig, line: str, error: BaseException, *, prefix: str = "ipvsd"
) -> None:
    """The one line an operator's mistake ends in: `ipvsd: ...` on stderr, or with JSON
    logging an error line whose `msg` is that text and `err` the error's."""
    if config.logging_format == "json":
        log.error("%s", line, extra={"kv": {"err": str(error)}})
    else:
        print(f"{prefix}: {line}", file=sys.stderr)


async def _dry_run(config: ProxyConfig) -> int:
    """Print the table the node would get; the invalid annotations (and notes) the daemon
    would report go to stderr, one line each."""
    table = await node_table(config)
    for message in table.messages:
        if config.logging_format == "json":
            log.warning("%s", message)
        else:
            print(message, file=sys.stderr)
    print(table.rules, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

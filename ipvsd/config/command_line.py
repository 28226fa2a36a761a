"""The command line: argv in, the command and its validated configuration out.

Values follow pflag, as kube-proxy's did: `--flag=value` and `--flag value`; booleans are
`--flag`, `--flag=true` or `--flag=false` (`--flag false` is refused, as pflag would take
`false` for a stray argument); list flags take commas and may repeat; `-v=N`/`--v=N` is
klog's verbosity. Which flags exist, and what each does, is `ipvsd.config.flags`'s table.

Precedence: a flag given explicitly wins over `--config`, which wins over the defaults.
kube-proxy instead ignored most flags once `--config` was given (all but
`--hostname-override` and the logging flags); ipvsd warns when a flag overrides the file, so
a migrated DaemonSet whose flags were silently dead shows it.

`parse_args` only parses: it returns the command, the validated `ProxyConfig`, the
`explain` target and the messages to log; running is `ipvsd.app`'s job.
"""

from __future__ import annotations

import argparse
import difflib
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn

from ipvsd.config.flags import (
    BOOLEAN_FLAGS,
    FEATURE_GATES_FLAG,
    FLAGS,
    IGNORED_FLAGS,
    PORT_FLAGS,
    REFUSED_FLAGS,
    flag_layer,
)
from ipvsd.config.kube_proxy_configuration import load_config_file
from ipvsd.config.settings import (
    ConfigError,
    Layer,
    ProxyConfig,
    build_config,
    file_field_of,
    flag_of,
)
from ipvsd.config.values import GO_BOOL_SPELLINGS, parse_go_bool

Command = Literal["run", "explain", "help", "version"]


class UsageError(ConfigError):
    """The command line itself is wrong (unknown flag, missing value, bad SERVICE)."""


@dataclass(frozen=True, slots=True)
class ExplainRequest:
    """`ipvsd explain SERVICE [--node NODE]`: which Service, seen from which node."""

    namespace: str
    name: str
    node: str


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """What to do, with what configuration, and what to log once logging is set up.

    For `help` and `version`, `config` is `ProxyConfig()` (nothing was validated) and
    `help_text` holds the text to print for `help`; `version_raw` asks `version` for every
    field (kube-proxy's `--version=raw`).
    """

    command: Command
    config: ProxyConfig
    explain: ExplainRequest | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    help_text: str = ""
    version_raw: bool = False


def parse_args(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str],
    gethostname: Callable[[], str] = socket.gethostname,
) -> ParsedCommand:
    """Parse `argv` (without the program name); ConfigError (UsageError) names what is wrong."""
    root, explain = _parsers()
    tokens = _go_style(argv)
    _refuse_unknown_flags(tokens, [root, explain])
    given = vars(root.parse_args(tokens))
    command: Command = "explain" if given.pop("command", None) == "explain" else "run"
    if given.pop("help", False):
        text = (explain if command == "explain" else root).format_help()
        return ParsedCommand("help", ProxyConfig(), help_text=text)
    version = str(given.pop("version", "false"))
    if version != "raw" and version not in GO_BOOL_SPELLINGS:
        raise UsageError(f"--version: {version!r} is not true, false or raw")
    if version == "raw" or parse_go_bool(version, "--version"):
        return ParsedCommand("version", ProxyConfig(), version_raw=version == "raw")
    service, node = given.pop("service", None), given.pop("node", None)

    layers: list[Layer] = []
    config_file = str(given.pop("config", ""))
    if config_file:
        layers.append(load_config_file(config_file))
    flags = flag_layer(given)
    layers.append(flags)
    config, doubts = build_config(layers, environ=environ, gethostname=gethostname)

    warnings = [w for layer in layers for w in layer.warnings]
    if config_file:
        warnings += _flags_over_file(flags)
    target = _explain_request(service, node, config) if command == "explain" else None
    return ParsedCommand(
        command,
        config,
        explain=target,
        warnings=(*warnings, *doubts),
        notes=tuple(n for layer in layers for n in layer.notes),
    )


def _go_style(argv: Sequence[str]) -> list[str]:
    """pflag's booleans for argparse: a bare `--flag` becomes `--flag=true`.

    argparse would otherwise either refuse `--flag=false` or let a bare boolean swallow the
    next argument (`--dry-run explain`).
    """
    tokens = list(argv)
    out: list[str] = []
    for index, token in enumerate(tokens):
        if token == "--":
            return out + tokens[index:]
        name = token[2:] if token.startswith("--") else ""
        bare = name.partition("=")[0]
        if bare in REFUSED_FLAGS:
            raise UsageError(f"--{bare}: {REFUSED_FLAGS[bare]}")
        if name not in BOOLEAN_FLAGS:
            out.append(token)
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if following in GO_BOOL_SPELLINGS:
            raise UsageError(
                f"--{name}: write --{name}={following}; a boolean flag takes its value "
                "after '=' (kube-proxy refuses the spaced form too)"
            )
        out.append(f"--{name}=true")
    return out


def _refuse_unknown_flags(
    tokens: Sequence[str], parsers: Sequence[argparse.ArgumentParser]
) -> None:
    """Name an unknown flag, with the closest known one. argparse would let it through to the
    positional arguments, where `--ipvs-schedular wrr` reads as an unknown command `wrr`.
    `tokens` come from `_go_style`: booleans carry their value after `=`."""
    known: dict[str, bool] = {}  # spelling -> takes a value
    for parser in parsers:
        for action in parser._actions:
            for spelling in action.option_strings:
                known[spelling] = action.nargs != 0
    expect_value = False
    for token in tokens:
        if token == "--":
            return
        if expect_value or not token.startswith("-") or token == "-":
            expect_value = False
            continue
        name, equals, _ = token.partition("=")
        if name not in known and not token.startswith("--") and token[:2] in known:
            name, equals = token[:2], "attached"  # -v5: a short flag with its value attached
        if name in known:
            expect_value = known[name] and not equals
            continue
        close = difflib.get_close_matches(name, [k for k in known if k.startswith("--")], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UsageError(f"unknown flag {name} ({hint}ipvsd --help lists every flag)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parsers() -> tuple[_Parser, _Parser]:
    """The root parser (run) and its `explain` subparser, both taking every flag."""
    flags = _Parser(add_help=False, allow_abbrev=False, argument_default=argparse.SUPPRESS)
    used = flags.add_argument_group("flags (kube-proxy's, then ipvsd's own)")
    used.add_argument("-h", "--help", action="store_true", help="Show this help")
    used.add_argument(
        "--version",
        metavar="BOOL|raw",
        help="Print the version and exit; raw prints every field (as kube-proxy's)",
    )
    used.add_argument("--config", metavar="FILE", help="A KubeProxyConfiguration (v1alpha1)")
    for flag in FLAGS:
        used.add_argument(
            *flag.spellings,
            dest=flag.name.lstrip("-"),
            metavar="BOOL" if flag.boolean else flag.metavar,
            help=flag.help,
            action="append" if flag.repeatable else "store",
        )
    for name, field_name in PORT_FLAGS.items():
        used.add_argument(
            f"--{name}", dest=name, metavar="PORT", help=f"Deprecated: {flag_of(field_name)}"
        )
    used.add_argument(
        f"--{FEATURE_GATES_FLAG}",
        dest=FEATURE_GATES_FLAG,
        metavar="GATE=BOOL,...",
        action="append",
        help="kube-proxy's feature gates: ipvsd follows AllowServiceExternalIPs (default true) "
        "and warns about the others",
    )
    ignored = flags.add_argument_group("kube-proxy flags accepted and not used")
    for name, spec in IGNORED_FLAGS.items():
        ignored.add_argument(
            f"--{name}", dest=name, metavar="BOOL" if spec.boolean else "VALUE", help=spec.reason
        )
    refused = flags.add_argument_group("kube-proxy flags refused (ipvsd stops with this reason)")
    for name, reason in REFUSED_FLAGS.items():
        metavar = "BOOL" if name == "init-only" else "FILE"
        refused.add_argument(f"--{name}", dest=name, metavar=metavar, help=reason)

    root = _Parser(
        prog="ipvsd",
        usage="ipvsd [FLAGS]  |  ipvsd explain SERVICE [--node NODE] [FLAGS]",
        description="A Kubernetes service proxy that programs kernel IPVS; takes kube-proxy's "
        "flags and config file.",
        parents=[flags],
        add_help=False,
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,
    )
    commands = root.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    explain = commands.add_parser(
        "explain",
        parents=[flags],
        usage="ipvsd explain SERVICE [--node NODE] [FLAGS]",
        help="Show how a Service is programmed on a node, and why",
        description="Show how a Service is programmed on a node, and why.",
        add_help=False,
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,
    )
    # Optional to argparse so that `explain -h` works; _explain_request insists on it.
    explain.add_argument(
        "service", nargs="?", metavar="SERVICE", help="NAMESPACE/NAME, or NAME in default"
    )
    explain.add_argument("--node", metavar="NODE", help="The node to look from (default: this one)")
    return root, explain


def _flags_over_file(flags: Layer) -> list[str]:
    """kube-proxy ignored flags (but --hostname-override and -v) once --config was given."""
    overriding = [
        origin
        for name, origin in flags.origins.items()
        if file_field_of(name) and name not in ("hostname_override", "verbosity")
    ]
    if not overriding:
        return []
    return [
        f"flags applied over the --config file: {', '.join(overriding)}; kube-proxy ignored "
        "them when --config was given, so remove them to keep kube-proxy's behaviour"
    ]


def _explain_request(service: object, node: object, config: ProxyConfig) -> ExplainRequest:
    if service is None:
        raise UsageError("SERVICE: explain needs a Service, as NAMESPACE/NAME or NAME")
    text = str(service)
    namespace, slash, name = text.rpartition("/")
    namespace = namespace if slash else "default"
    if not namespace or not name or "/" in namespace:
        raise UsageError(f"SERVICE: {text!r} is not NAMESPACE/NAME or NAME")
    node_name = str(node).strip().lower() if node is not None else config.node_name
    if not node_name:
        raise UsageError("--node: give a node name")
    return ExplainRequest(namespace, name, node_name)

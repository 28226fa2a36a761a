"""`ipvsd` / `python -m ipvsd`: parse kube-proxy's flags, set up logging, run on uvloop."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import uvloop

from ipvsd import __version__
from ipvsd.app import run
from ipvsd.config.command_line import parse_args
from ipvsd.config.settings import ConfigError
from ipvsd.explain import ExplainError, explain

log = logging.getLogger("ipvsd")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parsed = parse_args(sys.argv[1:] if argv is None else argv, environ=os.environ)
    except ConfigError as exc:
        print(f"ipvsd: {exc}", file=sys.stderr)
        return 2
    if parsed.command == "help":
        print(parsed.help_text)
        return 0
    if parsed.command == "version":
        print(f"ipvsd {__version__}")
        return 0
    logging.basicConfig(
        level=parsed.config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for warning in parsed.warnings:
        log.warning("%s", warning)
    for note in parsed.notes:
        log.info("%s", note)
    if parsed.command == "explain" and parsed.explain is not None:
        try:
            print(uvloop.run(explain(parsed.config, parsed.explain)), end="")
        except ExplainError as error:
            print(f"ipvsd explain: {error}", file=sys.stderr)
            return 1
        return 0
    try:
        return uvloop.run(run(parsed.config))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

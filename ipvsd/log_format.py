"""kube-proxy's `--logging-format=json` lines, from Python's logging records.

kube-proxy's JSON format is component-base's (`k8s.io/component-base/logs/json`): zap's JSON
encoder through zapr, one object per line on stderr, keys in this order:

- `ts`: the time as milliseconds since the epoch, a float (`epochMillisTimeEncoder`);
- `caller`: the source file's directory and name with the line (`dataplane/sysctl.py:59`),
  zap's short caller;
- `msg`: the message;
- `v`: the verbosity, on info lines only (error lines have none): 0 for INFO and WARNING
  (klog writes warnings as info lines), 4 for DEBUG (ipvsd's debugging starts at -v=4);
- then the record's key/value pairs, if it has any (`extra={"kv": {...}}`);
- `err` last on error lines: the exception's text (`exc_info`), or a `kv` pair named `err`.

Written compactly, as zap writes them (`{"ts":1764882000123.456,"caller":...}`).

ipvsd's messages are sentences rather than klog's short constant messages with pairs, so the
lines parse the same way and carry the same keys, but `msg` says more. A record logged with a
traceback also carries it as `stacktrace` (zap's production key), so a crash is not lost.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import PurePath

DEBUG_VERBOSITY = 4  # the -v level from which ipvsd logs DEBUG (ProxyConfig.log_level)


class JsonFormatter(logging.Formatter):
    """Formats each record as one line of component-base's JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": record.created * 1000.0,
            "caller": caller_of(record),
            "msg": record.getMessage(),
        }
        is_error = record.levelno >= logging.ERROR
        if not is_error:
            line["v"] = DEBUG_VERBOSITY if record.levelno < logging.INFO else 0
        pairs = getattr(record, "kv", None)
        err: object = None
        if isinstance(pairs, dict):
            for key, value in pairs.items():
                if key == "err":
                    err = value
                else:
                    line[str(key)] = value
        exception = record.exc_info[1] if record.exc_info else None
        if exception is not None:
            err = str(exception) or type(exception).__name__
            line["stacktrace"] = "".join(traceback.format_exception(exception)).rstrip()
        if err is not None:
            line["err"] = str(err)
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


def caller_of(record: logging.LogRecord) -> str:
    """zap's short caller: the file's parent directory, its name and the line number."""
    path = PurePath(record.pathname)
    return f"{path.parent.name}/{path.name}:{record.lineno}"

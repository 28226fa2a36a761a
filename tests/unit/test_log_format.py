"""component-base's JSON lines from logging records: key order, `v`, pairs and `err`."""

from __future__ import annotations

import json
import logging

import pytest

from ipvsd.log_format import JsonFormatter


def record(level: int, msg: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(
        "ipvsd.dataplane.sysctl", level, "/src/ipvsd/dataplane/sysctl.py", 59, msg, args, None
    )
    made.created = 1764882000.123456
    made.__dict__.update(extra)
    return made


def formatted(made: logging.LogRecord) -> str:
    return JsonFormatter().format(made)


@pytest.mark.parametrize(
    ("level", "v"), [(logging.DEBUG, 4), (logging.INFO, 0), (logging.WARNING, 0)]
)
def test_info_lines(level: int, v: int) -> None:
    line = formatted(record(level, "set %s=%d", "nf_conntrack_max", 131072))
    assert line == (
        '{"ts":1764882000123.456,"caller":"dataplane/sysctl.py:59",'
        f'"msg":"set nf_conntrack_max=131072","v":{v}}}'
    )


def test_pairs_follow_v_and_err_comes_last_on_error_lines() -> None:
    info = json.loads(formatted(record(logging.INFO, "Set sysctl", kv={"entry": "a", "n": 1})))
    assert list(info.items())[3:] == [("v", 0), ("entry", "a"), ("n", 1)]
    error = json.loads(
        formatted(record(logging.ERROR, "failed", kv={"err": "EPERM", "entry": "a"}))
    )
    assert list(error) == ["ts", "caller", "msg", "entry", "err"]
    assert error["err"] == "EPERM"


def test_an_exception_is_the_err_and_keeps_its_stacktrace() -> None:
    try:
        raise PermissionError("read-only file system")
    except PermissionError as error:
        made = record(logging.ERROR, "cannot write")
        made.exc_info = (type(error), error, error.__traceback__)
    line = json.loads(formatted(made))
    assert list(line) == ["ts", "caller", "msg", "stacktrace", "err"]
    assert line["err"] == "read-only file system"
    assert line["stacktrace"].startswith("Traceback (most recent call last):")


def test_one_line_whatever_the_message_holds() -> None:
    line = formatted(record(logging.WARNING, "two\nlines and ünïcode"))
    assert "\n" not in line
    assert json.loads(line)["msg"] == "two\nlines and ünïcode"

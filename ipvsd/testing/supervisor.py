"""A per-node supervisor that starts ipvsd by forking an already-imported interpreter.

Importing ipvsd (aiohttp, uvloop, orjson, the whole package) takes seconds under the VM's
software emulation; a harness that restarts a daemon twenty times would mostly measure
imports. So `NodeProxies` runs one supervisor per node, inside the node's namespace
(`ip netns exec <node> python -m ipvsd.testing.supervisor`): it imports `ipvsd.__main__` once
and then, per `start`, forks a child that runs `ipvsd.__main__.main(argv)` with its output
appended to a log file. A restart then costs what ipvsd's own start costs (list, first sync).

The protocol is one JSON object per line on stdin, one JSON answer per line on stdout:

    {"start": {"argv": [...], "env": {"NAME": "value"}, "log": "/path"}}  -> {"pid": 123}
    {"signal": 9}                 the child, if running                   -> {"sent": true}
    {"wait": 10.0}                until it exits, at most that long       -> {"exit": 0 | null}
    {"poll": null}                                                        -> {"exit": 0 | null}

`exit` is the child's exit status, negative for a signal, null while it runs. When stdin
closes (the harness went away) the child gets SIGTERM and the supervisor exits.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from typing import Any

import ipvsd.__main__ as ipvsd_main


def _child(argv: list[str], env: dict[str, str], log: str) -> None:
    """In the forked child: become ipvsd (never returns)."""
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        for name, value in env.items():
            os.environ[name] = value
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        code = ipvsd_main.main(argv)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Supervisor:
    def __init__(self) -> None:
        self.pid: int | None = None
        self.status: int | None = None

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        if "start" in command:
            if self.pid is not None and self.poll() is None:
                return {"error": "already running", "pid": self.pid}
            spec = command["start"]
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(list(spec["argv"]), dict(spec.get("env", {})), str(spec["log"]))
            self.pid, self.status = pid, None
            return {"pid": pid}
        if "signal" in command:
            if self.pid is None or self.poll() is not None:
                return {"sent": False}
            os.kill(self.pid, int(command["signal"]))
            return {"sent": True}
        if "wait" in command:
            deadline = time.monotonic() + float(command["wait"])
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            return {"exit": self.poll()}
        if "poll" in command:
            return {"exit": self.poll()}
        return {"error": f"unknown command {command}"}

    def poll(self) -> int | None:
        """The child's exit status (negative: killed by that signal), or None while it runs."""
        if self.pid is None:
            return self.status
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status


def main() -> int:
    supervisor = Supervisor()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = supervisor.handle(json.loads(line))
        except Exception as error:  # a bad command is answered, not fatal
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)
    if supervisor.pid is not None and supervisor.poll() is None:
        os.kill(supervisor.pid, signal.SIGTERM)
        supervisor.handle({"wait": 10})
        if supervisor.poll() is None:
            os.kill(supervisor.pid, signal.SIGKILL)
            supervisor.handle({"wait": 5})
    return 0


if __name__ == "__main__":
    sys.exit(main())

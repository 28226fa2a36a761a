"""`nft.check_support` turns nft's refusal, or its absence, into one line for the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipvsd.dataplane.nft import check_support
from ipvsd.model.firewall import Firewall


def test_nft_refusing_the_table_is_named_with_nft_s_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "nft"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1 $2 $3" = "--check -f -" ] || exit 9\n'
        'grep -q "table inet ipvsd" || exit 8\n'
        "echo 'Error: Could not process rule: No such file or directory' >&2\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")  # the fake first; grep after it
    assert check_support(Firewall()) == ("Error: Could not process rule: No such file or directory")


def test_a_missing_nft_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    complaint = check_support(Firewall())
    assert complaint is not None
    assert complaint.startswith("cannot run nft:")


def test_an_accepting_nft_means_no_complaint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "nft"
    fake.write_text("#!/bin/sh\ncat >/dev/null\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert check_support(Firewall()) is None

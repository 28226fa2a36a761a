"""--healthz-bind-address / --metrics-bind-address as kube-proxy reads them."""

from __future__ import annotations

import pytest

from ipvsd.server.http import BindAddress, parse_bind_address

pytestmark = pytest.mark.timeout(5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:10256", BindAddress(None, 10256)),
        ("[::]:10256", BindAddress(None, 10256)),
        ("127.0.0.1:10249", BindAddress("127.0.0.1", 10249)),
        ("[fd00::1]:9000", BindAddress("fd00::1", 9000)),
        ("10.0.0.5", BindAddress("10.0.0.5", 7)),
        ("fd00::5", BindAddress("fd00::5", 7)),
        ("[fd00::5]", BindAddress("fd00::5", 7)),
        ("", None),
        ("   ", None),
        ("0.0.0.0:0", None),
        ("127.0.0.1:0", None),
    ],
    ids=[
        "ipv4-wildcard-means-both-families",
        "ipv6-wildcard",
        "loopback",
        "ipv6-with-port",
        "bare-ipv4-gets-default-port",
        "bare-ipv6-gets-default-port",
        "bracketed-ipv6-without-port",
        "empty-disables",
        "blank-disables",
        "port-0-disables",
        "port-0-on-an-address-disables",
    ],
)
def test_parse(text: str, expected: BindAddress | None) -> None:
    assert parse_bind_address(text, default_port=7) == expected


@pytest.mark.parametrize(
    "text",
    ["localhost:10256", "1.2.3.4:http", "1.2.3.4:70000", "[fd00::1:80", "[fd00::1]x80", ":10256"],
    ids=[
        "hostname",
        "named-port",
        "port-too-big",
        "unclosed-bracket",
        "junk-after-bracket",
        "no-ip",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bind address"):
        parse_bind_address(text, default_port=7)


def test_str_for_logs() -> None:
    assert str(BindAddress(None, 10256)) == "*:10256"
    assert str(BindAddress("fd00::1", 80)) == "[fd00::1]:80"
    assert str(BindAddress("127.0.0.1", 80)) == "127.0.0.1:80"

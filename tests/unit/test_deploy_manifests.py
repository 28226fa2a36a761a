"""The shipped DaemonSet and config file are accepted by ipvsd as they are."""

from __future__ import annotations

from pathlib import Path

import yaml

from ipvsd.config.command_line import parse_args

CONFIG = Path(__file__).parents[2] / "config"


def test_daemonset_args_with_the_example_config_parse_cleanly() -> None:
    daemonset = yaml.safe_load((CONFIG / "daemonset.yaml").read_text())
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    args = [
        arg.replace(
            "/etc/ipvsd/config.yaml", str(CONFIG / "kube-proxy-config.example.yaml")
        ).replace("$(NODE_NAME)", "node-a")
        for arg in container["args"]
    ]
    parsed = parse_args(args, environ={})
    assert parsed.command == "run"
    assert parsed.warnings == ()
    assert parsed.config.node_name == "node-a"


def test_probes_use_the_health_endpoints_ipvsd_serves() -> None:
    daemonset = yaml.safe_load((CONFIG / "daemonset.yaml").read_text())
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["port"] == 10256

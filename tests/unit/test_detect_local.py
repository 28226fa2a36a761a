"""NodeCIDR detect-local: the pod CIDRs come from the own Node's `spec.podCIDRs`."""

from __future__ import annotations

from ipaddress import ip_network

from ipvsd.kube.convert import node_from_dict
from ipvsd.model.firewall import FirewallConfig
from ipvsd.model.node import Node
from ipvsd.reconcile.syncer import firewall_config


def node(spec: dict[str, object]) -> Node:
    return node_from_dict({"metadata": {"name": "node-a"}, "spec": spec})


def test_the_node_pod_cidrs_are_read_from_spec() -> None:
    assert node({"podCIDRs": ["10.244.1.0/24", "fd00:244:1::/64"]}).pod_cidrs == (
        ip_network("10.244.1.0/24"), ip_network("fd00:244:1::/64"),
    )  # fmt: skip
    assert node({"podCIDR": "10.244.2.0/24"}).pod_cidrs == (ip_network("10.244.2.0/24"),)
    assert node({}).pod_cidrs == ()


def test_a_garbled_pod_cidr_costs_only_itself() -> None:
    got = node({"podCIDRs": ["not-a-cidr", 7, "10.244.3.0/24"], "taints": []})
    assert got.pod_cidrs == (ip_network("10.244.3.0/24"),)
    assert node({"podCIDRs": "10.244.3.0/24"}).pod_cidrs == ()  # not a list: none


def test_node_cidr_mode_takes_the_first_pod_cidr_of_each_family_as_kube_proxy() -> None:
    template = FirewallConfig(pod_cidrs_from_node=True, masquerade_all=True)
    own = node({"podCIDRs": ["fd00:244:1::/64", "10.244.1.0/24", "10.244.9.0/24"]})
    resolved = firewall_config(template, own)
    assert resolved.pod_cidrs == (ip_network("10.244.1.0/24"), ip_network("fd00:244:1::/64"))
    assert resolved.masquerade_all
    assert firewall_config(template, None).pod_cidrs == ()  # no Node (yet): no pods told
    assert not firewall_config(template, None).detects_pods(4)


def test_other_modes_ignore_the_node() -> None:
    config = FirewallConfig(pod_cidrs=(ip_network("10.0.0.0/8"),))
    assert firewall_config(config, node({"podCIDRs": ["10.244.1.0/24"]})) is config

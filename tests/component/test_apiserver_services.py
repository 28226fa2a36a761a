"""Service admission as the real API server does it: defaults, cluster IP and node port
allocation, health-check node ports, dual-stack policies, headless and ExternalName Services,
type changes and release on delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from ipvsd.testing.apiserver import ApiError, ApiServer
from tests.component.apiserver_support import SERVICES, Api, api_for, service

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def dual() -> AsyncIterator[ApiServer]:
    """A dual-stack cluster (IPv4 primary) with a small node port range."""
    async with ApiServer(
        service_cidr="10.96.0.0/24",
        service_cidr_v6="fd00:10:96::/112",
        node_port_range="30000-30009",
    ) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def single() -> AsyncIterator[ApiServer]:
    async with ApiServer() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def api(dual: ApiServer) -> AsyncIterator[Api]:
    async with api_for(dual) as client:
        yield client


def create(server: ApiServer, name: str, **spec: Any) -> dict[str, Any]:
    return server.store.create(service(name, **spec))["spec"]  # type: ignore[no-any-return]


def causes(error: pytest.ExceptionInfo[ApiError]) -> dict[str, str]:
    assert error.value.code == 422
    return {c["field"]: c["message"] for c in error.value.details["causes"]}


async def test_defaults_match_the_real_api_server(api: Api) -> None:
    status, created = await api.post(
        SERVICES,
        service(
            "defaults",
            ports=[{"port": 53, "protocol": "UDP", "name": "dns"}, {"port": 80, "name": "web"}],
        ),
    )
    assert status == 201
    spec = created["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec
    assert spec["ports"] == [
        {"port": 53, "protocol": "UDP", "name": "dns", "targetPort": 53},
        {"port": 80, "name": "web", "protocol": "TCP", "targetPort": 80},
    ]
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["clusterIPs"] == [spec["clusterIP"]]


async def test_cluster_ips_are_sequential_from_the_range_and_released_on_delete(
    single: ApiServer,
) -> None:
    first = create(single, "seq-1")["clusterIP"]
    second = create(single, "seq-2")["clusterIP"]
    assert first.startswith("10.9")
    assert second != first
    single.store.delete("services", "seq-1")
    assert create(single, "seq-3", clusterIP=first)["clusterIP"] == first  # free again


async def test_requested_cluster_ip_must_be_free_and_in_range(single: ApiServer) -> None:
    taken = create(single, "taken")["clusterIP"]
    with pytest.raises(ApiError) as error:
        create(single, "clash", clusterIP=taken)
    assert "provided IP is already allocated" in causes(error)["spec.clusterIPs"]
    with pytest.raises(ApiError) as error:
        create(single, "outside", clusterIP="192.0.2.1")
    assert "The range of valid IPs is 10.96.0.0/12" in causes(error)["spec.clusterIPs"]


async def test_a_full_range_is_500_and_a_failed_create_leaks_nothing() -> None:
    tiny = ApiServer(service_cidr="10.96.0.0/29", node_port_range="30000-30001")  # 6 addresses
    # .1 is the kubernetes Service's, made with the server: five are left.
    used = [create(tiny, f"fill-{i}")["clusterIP"] for i in range(5)]
    assert used == [f"10.96.0.{i}" for i in range(2, 7)]
    with pytest.raises(ApiError) as error:
        create(tiny, "one-too-many")
    assert error.value.code == 500
    assert "range" in error.value.message
    tiny.store.delete("services", "fill-0")
    with pytest.raises(ApiError):  # one node port twice: the cluster IP taken first is given back
        create(
            tiny,
            "half",
            type="NodePort",
            ports=[
                {"port": 1, "name": "a", "nodePort": 30001},
                {"port": 2, "name": "b", "nodePort": 30001},
            ],
        )
    after = create(tiny, "after", type="NodePort", ports=[{"port": 1, "nodePort": 30001}])
    assert after["clusterIP"] == "10.96.0.2"
    assert after["ports"][0]["nodePort"] == 30001


async def test_headless_and_external_name_services(dual: ApiServer) -> None:
    headless = create(dual, "headless", clusterIP="None", selector={"app": "x"})
    assert headless["clusterIPs"] == ["None"]
    assert headless["ipFamilyPolicy"] == "SingleStack"
    selectorless = create(dual, "headless-manual", clusterIP="None", ports=[])
    assert selectorless["ipFamilyPolicy"] == "RequireDualStack"
    assert selectorless["ipFamilies"] == ["IPv4", "IPv6"]
    external = create(dual, "external", type="ExternalName", externalName="example.com", ports=[])
    assert "clusterIP" not in external
    assert "ipFamilies" not in external
    assert "internalTrafficPolicy" not in external
    with pytest.raises(ApiError) as error:
        create(dual, "no-name", type="ExternalName", ports=[])
    assert "spec.externalName" in causes(error)


@pytest.mark.parametrize(
    ("policy", "families", "expected"),
    [
        ("SingleStack", None, ["IPv4"]),
        ("SingleStack", ["IPv6"], ["IPv6"]),
        ("PreferDualStack", None, ["IPv4", "IPv6"]),
        ("PreferDualStack", ["IPv6"], ["IPv6", "IPv4"]),
        ("RequireDualStack", None, ["IPv4", "IPv6"]),
    ],
)
async def test_dual_stack_policies(
    dual: ApiServer, policy: str, families: list[str] | None, expected: list[str]
) -> None:
    spec: dict[str, Any] = {"ipFamilyPolicy": policy}
    if families:
        spec["ipFamilies"] = families
    created = create(
        dual, f"fam-{policy.lower()}-{len(families or [])}-{(families or ['x'])[0].lower()}", **spec
    )
    assert created["ipFamilies"] == expected
    assert [":" in ip for ip in created["clusterIPs"]] == [f == "IPv6" for f in expected]
    assert created["clusterIP"] == created["clusterIPs"][0]


async def test_single_stack_cluster_refuses_require_dual_stack_and_ipv6(single: ApiServer) -> None:
    with pytest.raises(ApiError) as error:
        create(single, "require", ipFamilyPolicy="RequireDualStack")
    assert "not configured for dual-stack" in causes(error)["spec.ipFamilyPolicy"]
    prefer = create(single, "prefer", ipFamilyPolicy="PreferDualStack")
    assert prefer["ipFamilies"] == ["IPv4"]
    with pytest.raises(ApiError):
        create(single, "v6", ipFamilies=["IPv6"])
    with pytest.raises(ApiError) as error:
        create(single, "two-families", ipFamilies=["IPv4", "IPv6"])
    assert "spec.ipFamilyPolicy" in causes(error)


async def test_upgrading_and_downgrading_dual_stack(dual: ApiServer, api: Api) -> None:
    single = create(dual, "grow")
    status, grown = await api.patch(
        f"{SERVICES}/grow", {"spec": {"ipFamilyPolicy": "PreferDualStack"}}
    )
    assert status == 200
    assert grown["spec"]["clusterIPs"][0] == single["clusterIP"]
    assert len(grown["spec"]["clusterIPs"]) == 2
    secondary = grown["spec"]["clusterIPs"][1]
    status, body = await api.patch(
        f"{SERVICES}/grow", {"spec": {"clusterIPs": [single["clusterIP"]]}}
    )
    assert status == 422
    assert "SingleStack" in body["message"]
    status, shrunk = await api.patch(
        f"{SERVICES}/grow", {"spec": {"ipFamilyPolicy": "SingleStack"}}
    )
    assert status == 200
    assert shrunk["spec"]["clusterIPs"] == [single["clusterIP"]]
    assert shrunk["spec"]["ipFamilies"] == ["IPv4"]
    reused = create(dual, "reuse-v6", ipFamilies=["IPv6"], clusterIP=secondary)
    assert reused["clusterIP"] == secondary  # the secondary was released


async def test_cluster_ip_is_immutable_but_kept_when_omitted(dual: ApiServer, api: Api) -> None:
    created = dual.store.create(service("keep"))
    status, body = await api.patch(
        f"{SERVICES}/keep", {"spec": {"clusterIP": "10.96.0.200", "clusterIPs": ["10.96.0.200"]}}
    )
    assert status == 422
    assert "may not change once set" in body["message"]
    replacement = {k: v for k, v in created.items() if k != "status"}
    replacement["spec"] = {"ports": [{"port": 81}]}
    status, replaced = await api.put(f"{SERVICES}/keep", replacement)
    assert status == 200
    assert replaced["spec"]["clusterIP"] == created["spec"]["clusterIP"]
    assert replaced["spec"]["ports"] == [{"port": 81, "protocol": "TCP", "targetPort": 81}]


async def test_node_ports_are_allocated_kept_and_released(dual: ApiServer, api: Api) -> None:
    created = create(
        dual,
        "nodeport",
        type="NodePort",
        ports=[{"port": 80, "name": "http"}, {"port": 443, "name": "https", "nodePort": 30005}],
    )
    assert created["externalTrafficPolicy"] == "Cluster"
    first, second = (p["nodePort"] for p in created["ports"])
    assert 30000 <= first <= 30009
    assert second == 30005
    with pytest.raises(ApiError) as error:
        create(dual, "nodeport-clash", type="NodePort", ports=[{"port": 80, "nodePort": 30005}])
    assert "provided port is already allocated" in causes(error)["spec.ports[0].nodePort"]
    with pytest.raises(ApiError) as error:
        create(dual, "nodeport-range", type="NodePort", ports=[{"port": 80, "nodePort": 31000}])
    assert "30000-30009" in causes(error)["spec.ports[0].nodePort"]
    status, back = await api.patch(f"{SERVICES}/nodeport", {"spec": {"type": "ClusterIP"}})
    assert status == 200
    assert all("nodePort" not in p for p in back["spec"]["ports"])
    assert "externalTrafficPolicy" not in back["spec"]
    again = create(dual, "nodeport-again", type="NodePort", ports=[{"port": 80, "nodePort": 30005}])
    assert again["ports"][0]["nodePort"] == 30005
    with pytest.raises(ApiError) as error:
        create(dual, "cluster-with-nodeport", ports=[{"port": 80, "nodePort": 30001}])
    assert "may not be used when `type` is 'ClusterIP'" in causes(error)["spec.ports[0].nodePort"]
    dual.store.delete("services", "nodeport-again")


async def test_health_check_node_port_for_load_balancers_with_local_traffic(
    dual: ApiServer, api: Api
) -> None:
    local = create(dual, "lb-local", type="LoadBalancer", externalTrafficPolicy="Local")
    assert local["allocateLoadBalancerNodePorts"] is True
    health = local["healthCheckNodePort"]
    assert 30000 <= health <= 30009
    assert health != local["ports"][0]["nodePort"]
    cluster = create(dual, "lb-cluster", type="LoadBalancer")
    assert "healthCheckNodePort" not in cluster
    assert cluster["externalTrafficPolicy"] == "Cluster"
    status, switched = await api.patch(
        f"{SERVICES}/lb-local", {"spec": {"externalTrafficPolicy": "Cluster"}}
    )
    assert status == 200
    assert "healthCheckNodePort" not in switched["spec"]
    status, switched = await api.patch(
        f"{SERVICES}/lb-cluster", {"spec": {"externalTrafficPolicy": "Local"}}
    )
    assert switched["spec"]["healthCheckNodePort"] >= 30000
    with pytest.raises(ApiError) as error:
        create(
            dual,
            "hc-on-nodeport",
            type="NodePort",
            externalTrafficPolicy="Local",
            healthCheckNodePort=30001,
        )
    assert "spec.healthCheckNodePort" in causes(error)
    for name in ("lb-local", "lb-cluster"):
        dual.store.delete("services", name)


async def test_load_balancer_may_skip_node_ports(dual: ApiServer) -> None:
    created = create(dual, "lb-bare", type="LoadBalancer", allocateLoadBalancerNodePorts=False)
    assert "nodePort" not in created["ports"][0]
    dual.store.delete("services", "lb-bare")


async def test_traffic_policies_and_distribution_are_validated(dual: ApiServer) -> None:
    with pytest.raises(ApiError) as error:
        create(dual, "bad-td", trafficDistribution="PreferFarAway")
    assert "supported values" in causes(error)["spec.trafficDistribution"]
    with pytest.raises(ApiError) as error:
        create(dual, "bad-etp", externalTrafficPolicy="Local")
    assert "externally-accessible" in causes(error)["spec.externalTrafficPolicy"]
    for value in ("PreferClose", "PreferSameZone", "PreferSameNode"):
        assert (
            create(dual, f"td-{value.lower()}", trafficDistribution=value)["trafficDistribution"]
            == value
        )
    for value in ("PreferClose", "PreferSameZone", "PreferSameNode"):
        dual.store.delete("services", f"td-{value.lower()}")
    local = create(dual, "itp-local", internalTrafficPolicy="Local")
    assert local["internalTrafficPolicy"] == "Local"
    dual.store.delete("services", "itp-local")

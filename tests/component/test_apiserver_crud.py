"""The emulator's verbs over real HTTP: create/get/list/update/patch/delete, Status bodies for
every error, server-owned metadata, the status subresource, finalizers, namespaces, and auth."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import (
    SERVICES,
    SLICES,
    Api,
    api_for,
    endpoint,
    endpoint_slice,
    service,
    status_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def api(server: ApiServer) -> AsyncIterator[Api]:
    async with api_for(server) as client:
        yield client


async def test_create_returns_201_with_server_filled_metadata(api: Api) -> None:
    status, created = await api.post(SERVICES, service("created"))
    assert status == 201
    metadata = created["metadata"]
    assert created["kind"] == "Service"
    assert created["apiVersion"] == "v1"
    assert metadata["namespace"] == "default"
    assert metadata["uid"]
    assert metadata["creationTimestamp"].endswith("Z")
    assert int(metadata["resourceVersion"]) > 0
    status, fetched = await api.get(f"{SERVICES}/created")
    assert status == 200
    assert fetched == created


async def test_duplicate_create_is_409_already_exists(api: Api) -> None:
    await api.post(SERVICES, service("twice"))
    status, body = await api.post(SERVICES, service("twice"))
    assert status_of(body) == (409, "AlreadyExists")
    assert status == 409
    assert body["message"] == 'services "twice" already exists'
    assert body["details"] == {"name": "twice", "kind": "services"}


async def test_missing_object_is_404_not_found_with_details(api: Api) -> None:
    status, body = await api.get(f"{SERVICES}/nowhere")
    assert status == 404
    assert status_of(body) == (404, "NotFound")
    assert body["details"] == {"name": "nowhere", "kind": "services"}
    status, body = await api.get(f"{SLICES}/nowhere")
    assert body["details"] == {
        "name": "nowhere",
        "group": "discovery.k8s.io",
        "kind": "endpointslices",
    }
    assert body["message"] == 'endpointslices.discovery.k8s.io "nowhere" not found'


async def test_unknown_paths_and_resources_are_404_status(api: Api) -> None:
    for path in ("/nothing/here", "/api/v1/widgets", "/apis/apps/v1/deployments", "/openapi/v2"):
        status, body = await api.get(path)
        assert status == 404, path
        assert status_of(body) == (404, "NotFound")


async def test_verbs_a_path_does_not_take_are_405(api: Api) -> None:
    status, body = await api.post(f"{SERVICES}/created", service("created"))
    assert status == 405
    assert status_of(body) == (405, "MethodNotAllowed")
    status, body = await api.put(SERVICES, service("x"))
    assert status == 405


async def test_update_with_stale_resource_version_is_409_conflict(api: Api) -> None:
    _, created = await api.post(SERVICES, service("guarded"))
    created["metadata"]["labels"] = {"step": "one"}
    status, updated = await api.put(f"{SERVICES}/guarded", created)
    assert status == 200
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    created["metadata"]["labels"] = {"step": "two"}  # still carries the old resourceVersion
    status, body = await api.put(f"{SERVICES}/guarded", created)
    assert status == 409
    assert status_of(body) == (409, "Conflict")
    assert "the object has been modified" in body["message"]


async def test_update_without_resource_version_is_unconditional(api: Api) -> None:
    _, created = await api.post(SERVICES, service("unconditional"))
    del created["metadata"]["resourceVersion"]
    created["metadata"]["labels"] = {"changed": "yes"}
    status, updated = await api.put(f"{SERVICES}/unconditional", created)
    assert status == 200
    assert updated["metadata"]["labels"] == {"changed": "yes"}


async def test_noop_update_keeps_the_resource_version(api: Api) -> None:
    _, created = await api.post(SERVICES, service("steady"))
    status, same = await api.put(f"{SERVICES}/steady", created)
    assert status == 200
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    status, patched = await api.patch(f"{SERVICES}/steady", {"spec": {"type": "ClusterIP"}})
    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_clients_cannot_change_server_owned_metadata(api: Api) -> None:
    _, created = await api.post(SERVICES, service("owned"))
    changed = dict(
        created, metadata={**created["metadata"], "creationTimestamp": "2000-01-01T00:00:00Z"}
    )
    _, updated = await api.put(f"{SERVICES}/owned", changed)
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    wrong_uid = dict(created, metadata={**created["metadata"], "uid": "not-the-uid"})
    del wrong_uid["metadata"]["resourceVersion"]
    status, body = await api.put(f"{SERVICES}/owned", wrong_uid)
    assert status == 409
    assert "UID in precondition" in body["message"]


async def test_name_and_namespace_mismatches_are_400(api: Api) -> None:
    _, created = await api.post(SERVICES, service("named"))
    status, body = await api.put(f"{SERVICES}/other-name", created)
    assert status == 404  # nothing to update there
    created["metadata"]["name"] = "renamed"
    status, body = await api.put(f"{SERVICES}/named", created)
    assert status == 400
    assert status_of(body) == (400, "BadRequest")
    status, body = await api.post(SERVICES, service("elsewhere", namespace="kube-system"))
    assert status == 400
    assert "namespace" in body["message"]


async def test_bad_bodies_are_400_and_never_break_the_server(api: Api) -> None:
    status, body, _ = await api.request("POST", SERVICES, b"{not json")
    assert status == 400
    assert status_of(body) == (400, "BadRequest")
    status, body, _ = await api.request("POST", SERVICES, b"[1, 2]")
    assert status == 400
    status, body = await api.post(
        SERVICES, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}
    )
    assert status == 400
    assert "do not match" in body["message"]
    status, body = await api.post(SERVICES, {**service("typed"), "spec": {"externalIPs": 5}})
    assert status == 400
    assert body["message"] == (
        'Service in version "v1" cannot be handled as a Service: json: cannot unmarshal number'
        " into Go struct field ServiceSpec.spec.externalIPs of type []string"
    )
    status, body = await api.get(SERVICES, limit="many")
    assert status == 400
    status, body = await api.get(SERVICES, watch="maybe")
    assert status == 400
    status, body = await api.get(SERVICES, resourceVersion="abc")
    assert status == 400
    status, _ = await api.get(f"{SERVICES}/created")
    assert status == 200


async def test_invalid_objects_are_422_with_every_cause(api: Api) -> None:
    bad = service("Bad_Name", ports=[{"port": 0}, {"port": 70000, "name": "x"}])
    status, body = await api.post(SERVICES, bad)
    assert status == 422
    assert status_of(body) == (422, "Invalid")
    assert body["details"]["kind"] == "Service"
    assert body["details"]["name"] == "Bad_Name"
    fields = {cause["field"] for cause in body["details"]["causes"]}
    assert fields == {"metadata.name"}  # metadata is checked first, as upstream
    status, body = await api.post(
        SERVICES, service("bad-ports", ports=[{"port": 0}, {"port": 70000, "name": "x"}])
    )
    fields = {cause["field"] for cause in body["details"]["causes"]}
    assert {"spec.ports[0].port", "spec.ports[1].port", "spec.ports[0].name"} <= fields
    assert body["message"].startswith('Service "bad-ports" is invalid: [')


async def test_generate_name_appends_five_characters(api: Api) -> None:
    document = service("")
    document["metadata"] = {"generateName": "gen-"}
    status, created = await api.post(SERVICES, document)
    assert status == 201
    name = created["metadata"]["name"]
    assert name.startswith("gen-")
    assert len(name) == len("gen-") + 5


async def test_create_in_a_missing_namespace_is_404(api: Api) -> None:
    status, body = await api.post(
        "/api/v1/namespaces/ghost/services", service("x", namespace="ghost")
    )
    assert status == 404
    assert body["details"] == {"name": "ghost", "kind": "namespaces"}


async def test_namespaces_exist_and_deleting_one_removes_its_objects(api: Api) -> None:
    _, namespaces = await api.get("/api/v1/namespaces")
    names = {item["metadata"]["name"] for item in namespaces["items"]}
    assert {"default", "kube-system"} <= names
    assert all(item["status"]["phase"] == "Active" for item in namespaces["items"])
    status, _ = await api.post(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}},
    )
    assert status == 201
    await api.post("/api/v1/namespaces/team/services", service("inside", namespace="team"))
    status, deleted = await api.delete("/api/v1/namespaces/team")
    assert status == 200
    assert deleted["kind"] == "Namespace"
    status, _ = await api.get("/api/v1/namespaces/team/services/inside")
    assert status == 404
    status, body = await api.delete("/api/v1/namespaces/default")
    assert status == 403
    assert status_of(body) == (403, "Forbidden")


async def test_delete_answers_the_object_or_a_status_as_upstream(api: Api) -> None:
    await api.post(SERVICES, service("doomed"))
    status, body = await api.delete(f"{SERVICES}/doomed")
    assert status == 200
    assert body["kind"] == "Service"
    status, body = await api.delete(f"{SERVICES}/doomed")
    assert status == 404
    await api.post(SLICES, endpoint_slice("doomed-abc", "doomed", [endpoint("10.1.0.1")]))
    status, body = await api.delete(
        f"{SLICES}/doomed-abc",
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
    )
    assert status == 200
    assert body["kind"] == "Status"
    assert body["status"] == "Success"
    assert body["details"]["name"] == "doomed-abc"
    assert body["details"]["group"] == "discovery.k8s.io"


async def test_delete_preconditions_are_checked(api: Api) -> None:
    _, created = await api.post(SERVICES, service("precondition"))
    status, body = await api.delete(f"{SERVICES}/precondition", {"preconditions": {"uid": "other"}})
    assert status == 409
    assert "Precondition failed" in body["message"]
    status, _ = await api.delete(
        f"{SERVICES}/precondition", {"preconditions": {"uid": created["metadata"]["uid"]}}
    )
    assert status == 200


async def test_finalizers_hold_deletion_until_removed(api: Api) -> None:
    document = service("finalized")
    document["metadata"]["finalizers"] = ["example.com/hold"]
    await api.post(SERVICES, document)
    status, pending = await api.delete(f"{SERVICES}/finalized")
    assert status == 200
    assert pending["metadata"]["deletionTimestamp"]
    status, _ = await api.get(f"{SERVICES}/finalized")
    assert status == 200
    status, _ = await api.patch(f"{SERVICES}/finalized", {"metadata": {"finalizers": None}})
    assert status == 200
    status, _ = await api.get(f"{SERVICES}/finalized")
    assert status == 404


async def test_status_changes_only_through_the_status_subresource(api: Api) -> None:
    _, created = await api.post(SERVICES, service("balanced", type="LoadBalancer"))
    assert created["status"] == {"loadBalancer": {}}
    ingress = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
    _, ignored = await api.patch(f"{SERVICES}/balanced", {"status": ingress})
    assert ignored["status"] == {"loadBalancer": {}}
    status, updated = await api.patch(
        f"{SERVICES}/balanced/status", {"status": ingress, "spec": {"type": "ClusterIP"}}
    )
    assert status == 200
    assert updated["status"] == ingress
    assert updated["spec"]["type"] == "LoadBalancer"
    status, fetched = await api.get(f"{SERVICES}/balanced/status")
    assert fetched["status"] == ingress


async def test_lists_all_namespaces_and_one_namespace(api: Api) -> None:
    await api.post(
        "/api/v1/namespaces/kube-system/services", service("dns", namespace="kube-system")
    )
    _, everywhere = await api.get("/api/v1/services")
    _, here = await api.get(SERVICES)
    assert everywhere["kind"] == "ServiceList"
    assert everywhere["apiVersion"] == "v1"
    assert {"default", "kube-system"} <= {i["metadata"]["namespace"] for i in everywhere["items"]}
    assert {i["metadata"]["namespace"] for i in here["items"]} == {"default"}
    assert int(here["metadata"]["resourceVersion"]) > 0


async def test_nodes_pods_and_events_are_stored(api: Api) -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-a"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]},
    }
    status, created = await api.post("/api/v1/nodes", node)
    assert status == 201
    assert created["status"]["addresses"][0]["address"] == "192.0.2.1"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"nodeName": "node-a"},
    }
    status, _ = await api.post("/api/v1/namespaces/default/pods", pod)
    assert status == 201
    _, pods = await api.get("/api/v1/pods", fieldSelector="spec.nodeName=node-a")
    assert [p["metadata"]["name"] for p in pods["items"]] == ["web"]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.1"},
        "involvedObject": {"kind": "Service", "name": "created", "namespace": "default"},
        "type": "Warning",
        "reason": "InvalidAnnotation",
        "message": "bad value",
    }
    status, _ = await api.post("/api/v1/namespaces/default/events", event)
    assert status == 201
    _, events = await api.get(
        "/api/v1/namespaces/default/events",
        fieldSelector="involvedObject.name=created,type=Warning",
    )
    assert [e["reason"] for e in events["items"]] == ["InvalidAnnotation"]


async def test_wrong_or_missing_token_is_401(server: ApiServer) -> None:
    async with api_for(server, token="wrong") as wrong:
        status, body = await wrong.get(SERVICES)
        assert status == 401
        assert status_of(body) == (401, "Unauthorized")
    async with api_for(server, token=None) as anonymous:
        status, _ = await anonymous.get(SERVICES)
        assert status == 401
        status, version = await anonymous.get("/version")  # public, as upstream
        assert status == 200
        assert version["major"] == "1"


async def test_anonymous_requests_can_be_allowed_but_wrong_tokens_never() -> None:
    async with ApiServer(allow_anonymous=True) as server:
        async with api_for(server, token=None) as anonymous:
            status, _ = await anonymous.get(SERVICES)
            assert status == 200
        async with api_for(server, token="wrong") as wrong:
            status, _ = await wrong.get(SERVICES)
            assert status == 401


async def test_store_api_shares_the_rules_with_http(server: ApiServer, api: Api) -> None:
    created = server.store.create(service("direct"))
    assert created["spec"]["clusterIP"]
    assert created["spec"]["sessionAffinity"] == "None"
    _, fetched = await api.get(f"{SERVICES}/direct")
    assert fetched == created
    patched = server.store.patch("svc", "direct", {"metadata": {"labels": {"a": "b"}}})
    assert patched["metadata"]["labels"] == {"a": "b"}
    assert [s["metadata"]["name"] for s in server.store.list("services", label_selector="a=b")] == [
        "direct"
    ]
    server.store.delete("services", "direct")
    assert server.store.find("services", "direct") is None

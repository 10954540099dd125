"""Smaller API behaviours: 410 Expired watches, Table/PartialObjectMetadata negotiation, scale, generateName, deletecollection."""

from __future__ import annotations

import json
import ssl
import urllib.request

import pytest

from kubesim.testing import kubectl

pytestmark = pytest.mark.kubesim(behaviour=False, watch_history=5)

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def _cm(ks, name: str, **labels: str) -> dict:
    s, body = ks.request("POST", "/api/v1/namespaces/default/configmaps",
                         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"a": "1"}})
    assert s == 201, body
    return body


def _watch_lines(ks, path: str) -> list[dict]:
    req = urllib.request.Request(ks.url + path, headers={"Authorization": f"Bearer {ks.token}"})  # noqa: S310
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ks.ca), timeout=10) as resp:  # noqa: S310
        return [json.loads(x) for x in resp.read().splitlines() if x.strip()]


def test_watch_from_an_evicted_resource_version_is_410(kubesim):
    first = _cm(kubesim, "old")
    for i in range(8):                      # the history holds 5 events
        _cm(kubesim, f"n{i}")
    lines = _watch_lines(kubesim, f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={first['metadata']['resourceVersion']}")
    assert lines[0]["type"] == "ERROR"
    assert lines[0]["object"]["code"] == 410 and lines[0]["object"]["reason"] == "Expired"
    # a recent resourceVersion still replays
    s, lst = kubesim.request("GET", "/api/v1/namespaces/default/configmaps")
    rv = int(lst["metadata"]["resourceVersion"])
    _cm(kubesim, "fresh")
    lines = _watch_lines(kubesim, f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    assert [(x["type"], x["object"]["metadata"]["name"]) for x in lines] == [("ADDED", "fresh")]


def test_table_and_partial_metadata_negotiation(kubesim):
    _cm(kubesim, "t1", app="x")
    s, table = kubesim.request("GET", "/api/v1/namespaces/default/configmaps?includeObject=None", headers={"Accept": TABLE})
    assert table["kind"] == "Table" and [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert [r["cells"][:2] for r in table["rows"]] == [["kube-root-ca.crt", 1], ["t1", 1]] and "object" not in table["rows"][0]
    s, table = kubesim.request("GET", "/api/v1/namespaces/default/configmaps/t1?includeObject=Object", headers={"Accept": TABLE})
    assert table["rows"][0]["object"]["data"] == {"a": "1"}
    s, table = kubesim.request("GET", "/api/v1/namespaces/default/configmaps", headers={"Accept": TABLE})
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    s, pol = kubesim.request("GET", "/api/v1/namespaces/default/configmaps",
                             headers={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"})
    assert pol["kind"] == "PartialObjectMetadataList" and pol["items"][-1]["metadata"]["labels"] == {"app": "x"}
    assert "data" not in pol["items"][-1]


def test_scale_subresource_and_kubectl_scale(kubesim):
    s, _body = kubesim.request("POST", "/apis/apps/v1/namespaces/default/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "s"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    assert s == 201
    s, scale = kubesim.request("GET", "/apis/apps/v1/namespaces/default/deployments/s/scale")
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 1} and scale["status"]["selector"] == "a=b"
    assert kubectl(kubesim, "scale", "deploy/s", "--replicas=5").stdout.strip() == "deployment.apps/s scaled"
    s, dep = kubesim.request("GET", "/apis/apps/v1/namespaces/default/deployments/s")
    assert dep["spec"]["replicas"] == 5 and dep["metadata"]["generation"] == 2


def test_generate_name_and_deletecollection(kubesim):
    s, body = kubesim.request("POST", "/api/v1/namespaces/default/configmaps",
                              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-", "labels": {"batch": "1"}}})
    assert s == 201 and body["metadata"]["name"].startswith("gen-") and len(body["metadata"]["name"]) == 9
    _cm(kubesim, "keep", batch="2")
    _cm(kubesim, "drop", batch="1")
    s, body = kubesim.request("DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=batch%3D1")
    deleted = sorted(i["metadata"]["name"] for i in body["items"])
    assert s == 200 and len(deleted) == 2 and "drop" in deleted and any(n.startswith("gen-") for n in deleted)
    s, lst = kubesim.request("GET", "/api/v1/namespaces/default/configmaps")
    assert [i["metadata"]["name"] for i in lst["items"]] == ["keep", "kube-root-ca.crt"]


def test_kind_and_namespace_mismatch_are_400(kubesim):
    s, body = kubesim.request("POST", "/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
    assert s == 400 and "does not match the expected kind" in body["message"]
    s, body = kubesim.request("POST", "/api/v1/namespaces/default/configmaps",
                              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}})
    assert s == 400 and "does not match the namespace" in body["message"]
    s, body = kubesim.request("GET", "/apis/nope.example.com/v1/things")
    assert s == 404 and body["kind"] == "Status"


def test_many_concurrent_watches_all_see_the_event(kubesim):
    import asyncio

    import aiohttp

    async def main() -> list[list[str]]:
        ctx = ssl.create_default_context(cafile=kubesim.ca)
        headers = {"Authorization": f"Bearer {kubesim.token}"}
        s, lst = kubesim.request("GET", "/api/v1/namespaces/default/configmaps")
        rv = lst["metadata"]["resourceVersion"]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=0), headers=headers) as session:
            async def one() -> list[str]:
                url = f"{kubesim.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=5"
                async with session.get(url) as resp:
                    async for line in resp.content:
                        ev = json.loads(line)
                        return [ev["type"], ev["object"]["metadata"]["name"]]
                return []

            tasks = [asyncio.create_task(one()) for _i in range(60)]
            await asyncio.sleep(0.5)
            await asyncio.to_thread(_cm, kubesim, "broadcast")
            return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    assert results == [["ADDED", "broadcast"]] * 60


def test_aggregated_discovery_v2(kubesim):
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    req = urllib.request.Request(kubesim.url + "/apis", headers={"Authorization": f"Bearer {kubesim.token}", "Accept": accept})  # noqa: S310
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=kubesim.ca), timeout=10) as resp:  # noqa: S310
        ctype = resp.headers["Content-Type"]
        body = json.loads(resp.read())
    assert ctype == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    apps = next(i for i in body["items"] if i["metadata"]["name"] == "apps")
    dep = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert dep["scope"] == "Namespaced" and dep["shortNames"] == ["deploy"]
    assert [s["subresource"] for s in dep["subresources"]] == ["status", "scale"]
    s, legacy = kubesim.request("GET", "/apis")                      # plain JSON without the aggregated Accept
    assert legacy["kind"] == "APIGroupList"

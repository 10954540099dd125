"""CustomResourceDefinitions: creating one serves its kind (discovery included), deleting it stops serving."""

from __future__ import annotations

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kubesim.testing import kubectl, kubectl_json

pytestmark = pytest.mark.kubesim(behaviour=False)

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gateways.networking.istio.io
spec:
  group: networking.istio.io
  scope: Namespaced
  names: {plural: gateways, singular: gateway, kind: Gateway, listKind: GatewayList, shortNames: [gw], categories: [istio-io, networking-istio-io]}
  versions:
  - name: v1
    served: true
    storage: false
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    additionalPrinterColumns:
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
  - name: v1beta1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
  namespace: default
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
"""


def test_crd_lifecycle(kubesim):
    api = config.new_client_from_config(config_file=kubesim.kubeconfig)
    assert kubectl(kubesim, "get", "gateways", check=False).returncode == 1
    kubectl(kubesim, "apply", "-f", "-", input=CRD)
    crd = kubectl_json(kubesim, "get", "crd", "gateways.networking.istio.io")
    conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["storedVersions"] == ["v1beta1"]
    out = kubectl(kubesim, "wait", "--for=condition=Established", "crd/gateways.networking.istio.io", "--timeout=10s")
    assert "condition met" in out.stdout

    # discovery
    resources = client.ApisApi(api).get_api_versions()
    group = next(g for g in resources.groups if g.name == "networking.istio.io")
    assert group.preferred_version.version == "v1" and [v.version for v in group.versions] == ["v1", "v1beta1"]
    s, rl = kubesim.request("GET", "/apis/networking.istio.io/v1")
    gw = next(r for r in rl["resources"] if r["name"] == "gateways")
    assert gw["kind"] == "Gateway" and gw["namespaced"] is True and gw["shortNames"] == ["gw"]

    # custom objects, created with kubectl and read with the python client in both versions
    assert kubectl(kubesim, "apply", "-f", "-", input=GATEWAY).stdout.strip() == "gateway.networking.istio.io/bookinfo-gateway created"
    assert kubectl(kubesim, "apply", "-f", "-", input=GATEWAY).stdout.strip() == "gateway.networking.istio.io/bookinfo-gateway unchanged"
    co = client.CustomObjectsApi(api)
    obj = co.get_namespaced_custom_object("networking.istio.io", "v1beta1", "default", "gateways", "bookinfo-gateway")
    assert obj["apiVersion"] == "networking.istio.io/v1beta1" and obj["spec"]["selector"] == {"istio": "ingressgateway"}
    patched = co.patch_namespaced_custom_object("networking.istio.io", "v1", "default", "gateways", "bookinfo-gateway",
                                                {"spec": {"selector": {"istio": "ingress"}}})
    assert patched["spec"]["selector"] == {"istio": "ingress"} and patched["metadata"]["generation"] == 2
    names = kubectl(kubesim, "get", "gw", "-A", "-o", "name").stdout.split()
    assert names == ["gateway.networking.istio.io/bookinfo-gateway"]
    table = kubectl(kubesim, "get", "gw", "-n", "default").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE"] and table[1].split()[0] == "bookinfo-gateway"
    # strategic merge is not allowed on custom resources (clients fall back to merge patch)
    s, body = kubesim.request("PATCH", "/apis/networking.istio.io/v1/namespaces/default/gateways/bookinfo-gateway", {"spec": {}},
                              content_type="application/strategic-merge-patch+json")
    assert s == 415

    # delete the CRD: the kind and its objects go away
    kubectl(kubesim, "delete", "crd", "gateways.networking.istio.io")
    with pytest.raises(ApiException) as exc:
        co.list_namespaced_custom_object("networking.istio.io", "v1", "default", "gateways")
    assert exc.value.status == 404
    s, _body = kubesim.request("GET", "/apis/networking.istio.io/v1")
    assert s == 404
    assert "networking.istio.io" not in [g.name for g in client.ApisApi(api).get_api_versions().groups]
    # re-creating the CRD serves an empty collection (objects were deleted with it)
    kubectl(kubesim, "apply", "-f", "-", input=CRD)
    assert co.list_namespaced_custom_object("networking.istio.io", "v1", "default", "gateways")["items"] == []


def test_crd_validation_rejects_bad_name(kubesim):
    bad = CRD.replace("name: gateways.networking.istio.io", "name: wrong.networking.istio.io")
    proc = kubectl(kubesim, "apply", "-f", "-", input=bad, check=False)
    assert proc.returncode == 1 and "must be spec.names.plural" in proc.stderr

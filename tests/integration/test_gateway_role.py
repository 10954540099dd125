"""The gateway role against kubesim (the Kubernetes API simulator): the istio/gateway chart with
OKE load balancer annotations, the bookinfo Gateway bound to the chart's selector and port, the
bounded wait for the load balancer, and GET /productpage through kubesim's emulated ingress path.
"""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import get, helm_env

PLAYBOOKS = Path(__file__).parent / "playbooks"
GW_NS = "istio-ingress"

pytestmark = pytest.mark.slow


def run(playbook, sim, check: bool = False, tags: str | None = None, **extra):
    return playbook(PLAYBOOKS / "gateway.yml", extra_vars={"okemesh_kubeconfig": sim.kubeconfig, **extra},
                    env=helm_env(sim), check=check, tags=tags)


def reported_url(result) -> str:
    m = re.search(r"OKEMESH_TEST_GATEWAY_URL=(\S*)", result.stdout)
    assert m, str(result)
    return m.group(1).strip("'\"")


def test_gateway_installs_routes_and_serves_bookinfo(kubesim, playbook):
    first = run(playbook, kubesim, gateway_oci_lb_type="lb", gateway_oci_lb_flex_min=10, gateway_oci_lb_flex_max=100,
                gateway_oci_lb_nsg_ids=["ocid1.networksecuritygroup.oc1..a", "ocid1.networksecuritygroup.oc1..b"],
                gateway_service_annotations={"example.com/owner": "platform"})
    assert first.rc == 0, str(first)

    svc = get(kubesim, f"/api/v1/namespaces/{GW_NS}/services/istio-ingress")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["selector"] == {"app": "istio-ingress", "istio": "ingress"}
    ann = svc["metadata"]["annotations"]
    assert ann["oci.oraclecloud.com/load-balancer-type"] == "lb"
    assert ann["service.beta.kubernetes.io/oci-load-balancer-shape"] == "flexible"
    assert ann["service.beta.kubernetes.io/oci-load-balancer-shape-flex-min"] == "10"
    assert ann["service.beta.kubernetes.io/oci-load-balancer-shape-flex-max"] == "100"
    assert ann["oci.oraclecloud.com/oci-network-security-groups"] == "ocid1.networksecuritygroup.oc1..a,ocid1.networksecuritygroup.oc1..b"
    assert ann["example.com/owner"] == "platform"
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]

    # the Gateway is bound to what the chart installed, not to the sample's istio=ingressgateway / 8080
    gw = get(kubesim, "/apis/networking.istio.io/v1/namespaces/bookinfo/gateways/bookinfo-gateway")
    assert gw["spec"]["selector"] == {"istio": "ingress"}
    assert gw["spec"]["servers"][0]["port"]["number"] == 80
    vs = get(kubesim, "/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/bookinfo")
    assert vs["spec"]["gateways"] == ["bookinfo-gateway"]
    assert vs["spec"]["http"][0]["route"][0]["destination"] == {"host": "productpage", "port": {"number": 9080}}

    url = reported_url(first)
    assert url == f"http://{ip}"
    with urllib.request.urlopen(f"{url}/productpage", timeout=10) as resp:  # noqa: S310 - kubesim's loopback LB
        assert resp.status == 200
        assert "<title>Simple Bookstore App</title>" in resp.read().decode()

    second = run(playbook, kubesim, gateway_oci_lb_type="lb", gateway_oci_lb_flex_min=10, gateway_oci_lb_flex_max=100,
                 gateway_oci_lb_nsg_ids=["ocid1.networksecuritygroup.oc1..a", "ocid1.networksecuritygroup.oc1..b"],
                 gateway_service_annotations={"example.com/owner": "platform"}, bookinfo_loadgen_requests=20)
    assert second.rc == 0, str(second)
    assert second.changed() == 0, str(second)
    # the traffic generator sent its requests through the gateway, all answered 200
    assert re.search(r"^\s+ok: 20$", second.stdout, re.M), str(second)
    assert re.search(r"^\s+url: http://[\d.]+/productpage$", second.stdout, re.M), str(second)


def test_wrong_selector_fails_with_a_clear_message(kubesim, playbook):
    r = run(playbook, kubesim, gateway_selector={"istio": "ingressgateway"}, gateway_verify_retries=2)
    assert r.rc != 0
    flat = " ".join(r.stdout.split())
    assert "did not return HTTP 200" in flat, str(r)
    assert 'The bookinfo Gateway selector {"istio": "ingressgateway"} matches none of the gateway pods' in flat, str(r)
    assert "not the sample's istio=ingressgateway" in flat, str(r)


def test_wrong_port_fails_with_a_clear_message(kubesim, playbook):
    r = run(playbook, kubesim, gateway_server_port=8080, gateway_verify_retries=2)
    assert r.rc != 0
    flat = " ".join(r.stdout.split())
    assert "listens on port 8080, which is not a targetPort of the gateway Service (15021, 80, 443)" in flat, str(r)


def test_load_balancer_wait_is_bounded(kubesim, playbook):
    kubesim.settings(lb_assign=False)
    start = time.monotonic()
    r = run(playbook, kubesim, gateway_lb_timeout=3, gateway_lb_poll_interval=1)
    elapsed = time.monotonic() - start
    assert r.rc != 0
    flat = " ".join(r.stdout.split())
    assert "got no load balancer address within 3s (gateway_lb_timeout)" in flat, str(r)
    assert "TASK [okemesh.istio.gateway : Gateway | GET the bookinfo page" not in r.stdout
    assert elapsed < 240, elapsed  # not a benchmark: the play ended instead of waiting for the default 300 s


def test_network_load_balancer_annotations_and_routing_switch(kubesim, playbook):
    r = run(playbook, kubesim, gateway_oci_lb_type="nlb", gateway_oci_lb_internal=True,
            gateway_oci_lb_subnets=["ocid1.subnet.oc1..s"], gateway_oci_lb_security_list_mode="None",
            gateway_labels={"istio": "edge"})
    assert r.rc == 0, str(r)
    ann = get(kubesim, f"/api/v1/namespaces/{GW_NS}/services/istio-ingress")["metadata"]["annotations"]
    assert ann == {
        "oci.oraclecloud.com/load-balancer-type": "nlb",
        "oci-network-load-balancer.oraclecloud.com/internal": "true",
        "oci-network-load-balancer.oraclecloud.com/subnet": "ocid1.subnet.oc1..s",
        "oci-network-load-balancer.oraclecloud.com/security-list-management-mode": "None",
    } | {k: v for k, v in ann.items() if k.startswith("meta.helm.sh/")}
    # chart labels override: the Gateway follows the installed selector
    gw = get(kubesim, "/apis/networking.istio.io/v1/namespaces/bookinfo/gateways/bookinfo-gateway")
    assert gw["spec"]["selector"] == {"istio": "edge"}

    # routing disabled: the owned Gateway and VirtualService are removed
    r = run(playbook, kubesim, okemesh_test_bookinfo=False, gateway_bookinfo_routing=False, gateway_verify=False,
            gateway_labels={"istio": "edge"}, gateway_oci_lb_type="nlb", gateway_oci_lb_internal=True,
            gateway_oci_lb_subnets=["ocid1.subnet.oc1..s"], gateway_oci_lb_security_list_mode="None")
    assert r.rc == 0, str(r)
    assert kubesim.request("GET", "/apis/networking.istio.io/v1/namespaces/bookinfo/gateways/bookinfo-gateway")[0] == 404
    assert kubesim.request("GET", "/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/bookinfo")[0] == 404


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"gateway_oci_lb_type": "nlb", "gateway_oci_lb_flex_min": 10}, "a network load balancer (nlb) has no flexible shape"),
        ({"gateway_oci_lb_subnets": ["a", "b", "c"]}, "a load balancer takes at most two subnets"),
        ({"gateway_oci_lb_type": "alb"}, "gateway_oci_lb_type must be one of"),
        ({"gateway_chart_dir": "/nonexistent"}, "No istio/gateway chart at /nonexistent"),
    ],
)
def test_preflight_rejects_bad_settings(kubesim, playbook, extra, message):
    r = run(playbook, kubesim, tags="gateway_preflight", **extra)
    assert r.rc != 0
    assert message in " ".join(r.stdout.split()), str(r)


def test_gateway_api_routing_binds_to_the_installed_gateway_and_serves_bookinfo(kubesim, playbook):
    extra = {"gateway_routing_api": "gateway-api", "okemesh_test_gateway_api_crds": True}
    first = run(playbook, kubesim, **extra)
    assert first.rc == 0, str(first)

    # istiod's class, and the Gateway API objects in place of the Istio Gateway/VirtualService
    gwc = get(kubesim, "/apis/gateway.networking.k8s.io/v1/gatewayclasses/istio")
    assert gwc["spec"]["controllerName"] == "istio.io/gateway-controller"
    gw = get(kubesim, "/apis/gateway.networking.k8s.io/v1/namespaces/bookinfo/gateways/bookinfo-gateway")
    assert gw["spec"]["gatewayClassName"] == "istio"
    # manual deployment: the Gateway names the Service the istio/gateway chart installed
    assert gw["spec"]["addresses"] == [{"type": "Hostname", "value": f"istio-ingress.{GW_NS}.svc.cluster.local"}]
    assert gw["spec"]["listeners"] == [{"name": "http", "port": 80, "protocol": "HTTP",
                                        "allowedRoutes": {"namespaces": {"from": "Same"}}}]
    conditions = {c["type"]: c["status"] for c in gw["status"]["conditions"]}
    assert conditions == {"Accepted": "True", "Programmed": "True"}
    address = gw["status"]["addresses"][0]["value"]
    assert gw["status"]["listeners"][0]["attachedRoutes"] == 1
    # served by the Helm-installed gateway itself: its load-balancer address, no extra deployment
    helm_svc = get(kubesim, f"/api/v1/namespaces/{GW_NS}/services/istio-ingress")
    assert address == helm_svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert kubesim.request("GET", "/apis/apps/v1/namespaces/bookinfo/deployments/bookinfo-gateway-istio")[0] == 404

    route = get(kubesim, "/apis/gateway.networking.k8s.io/v1/namespaces/bookinfo/httproutes/bookinfo")
    assert route["spec"]["parentRefs"] == [{"name": "bookinfo-gateway"}]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "productpage", "port": 9080}]
    assert {"path": {"type": "Exact", "value": "/productpage"}} in route["spec"]["rules"][0]["matches"]
    parents = route["status"]["parents"]
    assert [p["parentRef"]["name"] for p in parents] == ["bookinfo-gateway"]
    assert {c["type"]: c["status"] for c in parents[0]["conditions"]} == {"Accepted": "True", "ResolvedRefs": "True"}

    # not both APIs at once
    assert kubesim.request("GET", "/apis/networking.istio.io/v1/namespaces/bookinfo/gateways/bookinfo-gateway")[0] == 404
    assert kubesim.request("GET", "/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/bookinfo")[0] == 404

    # the role's own check passed on the Gateway's address; the page answers there
    url = reported_url(first)
    assert url == f"http://{address}"
    assert "TASK [okemesh.istio.gateway : Gateway | GET the bookinfo page through the gateway]" in first.stdout
    with urllib.request.urlopen(f"{url}/productpage", timeout=10) as resp:  # noqa: S310 - kubesim's loopback LB
        assert resp.status == 200
        assert "<title>Simple Bookstore App</title>" in resp.read().decode()

    second = run(playbook, kubesim, **extra)
    assert second.rc == 0, str(second)
    assert second.changed() == 0, str(second)

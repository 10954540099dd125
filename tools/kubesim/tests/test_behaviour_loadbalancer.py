"""LoadBalancer IPs (as the OCI cloud controller assigns them) and the simulated ingress data path."""

from __future__ import annotations

import time

from kubesim.testing import (
    ISTIO_CRDS,
    apply,
    deployment,
    get_json,
    http_get,
    kubectl,
    namespace,
    service,
    wait_for,
)

GATEWAY_LABELS = {"app": "istio-ingress", "istio": "ingress"}


def _gateway_release(ks):
    """What the istio/gateway chart (release istio-ingress) renders: pods labelled istio=ingress, Service 80 -> 80."""
    apply(ks, [namespace("istio-ingress"),
               deployment("istio-ingress", "istio-ingress", labels=GATEWAY_LABELS,
                          containers=[{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.30.0",
                                       "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 15021, "name": "status-port"}]}]),
               service("istio-ingress", "istio-ingress", GATEWAY_LABELS,
                       [{"name": "http2", "port": 80, "targetPort": 80}, {"name": "status-port", "port": 15021, "targetPort": 15021}],
                       type_="LoadBalancer")])


def _bookinfo(ks):
    apply(ks, [namespace("bookinfo"), deployment("productpage-v1", "bookinfo", labels={"app": "productpage", "version": "v1"}, port=9080),
               service("productpage", "bookinfo", {"app": "productpage"}, [{"name": "http", "port": 9080}])])
    kubectl(ks, "-n", "bookinfo", "rollout", "status", "deployment/productpage-v1", "--timeout=30s")


def _routes(ks, selector: dict, port: int):
    apply(ks, ISTIO_CRDS)
    wait_for(lambda: kubectl(ks, "get", "gateways.networking.istio.io", "-A", check=False).returncode == 0, what="Gateway CRD served")
    apply(ks, [{"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "bookinfo-gateway", "namespace": "bookinfo"},
                "spec": {"selector": selector, "servers": [{"port": {"number": port, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}},
               {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "bookinfo", "namespace": "bookinfo"},
                "spec": {"hosts": ["*"], "gateways": ["bookinfo-gateway"],
                         "http": [{"match": [{"uri": {"exact": "/productpage"}}, {"uri": {"prefix": "/static"}},
                                             {"uri": {"prefix": "/api/v1/products"}}],
                                   "route": [{"destination": {"host": "productpage", "port": {"number": 9080}}}]}]}}])


def _external_ip(ks, timeout=20.0):
    def ip():
        svc = get_json(ks, "-n", "istio-ingress", "service", "istio-ingress")
        ing = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return ing and ing[0].get("ip")
    return wait_for(ip, timeout=timeout, what="EXTERNAL-IP")


def test_lb_ip_and_bookinfo_through_matching_gateway(kubesim):
    _bookinfo(kubesim)
    _gateway_release(kubesim)
    ip = _external_ip(kubesim)
    assert ip.startswith("127.")
    table = kubectl(kubesim, "-n", "istio-ingress", "get", "service", "istio-ingress", "--no-headers").stdout
    assert ip in table

    # listener but no Gateway yet: Envoy answers 404
    code, headers, _body = http_get(f"http://{ip}/productpage")
    assert (code, headers.get("server")) == (404, "istio-envoy")

    # the sample's selector/port (istio=ingressgateway, 8080) do not match the chart's release: still 404 (the TRAP)
    _routes(kubesim, {"istio": "ingressgateway"}, 8080)
    time.sleep(0.3)
    assert http_get(f"http://{ip}/productpage")[0] == 404
    # right selector, wrong port: 404 too
    _routes(kubesim, {"istio": "ingress"}, 8080)
    time.sleep(0.3)
    assert http_get(f"http://{ip}/productpage")[0] == 404

    # selector and targetPort rendered from the release: the page answers
    _routes(kubesim, {"istio": "ingress"}, 80)
    code, headers, body = wait_for(lambda: (r := http_get(f"http://{ip}/productpage"))[0] == 200 and r, what="200 from /productpage")
    assert "<title>Simple Bookstore App</title>" in body
    assert "kubesim simulator" in body
    assert headers["server"] == "istio-envoy"
    code, _headers, body = http_get(f"http://{ip}/api/v1/products")
    assert code == 200 and '"service": "productpage"' in body
    assert http_get(f"http://{ip}/nothing-routed")[0] == 404

    # destination without ready endpoints: 503 no healthy upstream
    kubectl(kubesim, "-n", "bookinfo", "scale", "deployment/productpage-v1", "--replicas=0")
    code, _headers, body = wait_for(lambda: (r := http_get(f"http://{ip}/productpage"))[0] == 503 and r, what="503 without endpoints")
    assert body == "no healthy upstream"

    # deleting the Service stops the listener
    kubectl(kubesim, "-n", "istio-ingress", "delete", "service", "istio-ingress")

    def refused():
        try:
            http_get(f"http://{ip}/productpage", timeout=1)
        except OSError:
            return True
        return False
    wait_for(refused, what="listener closed")


def test_lb_assign_false_never_assigns_then_recovers(kubesim):
    kubesim.settings(lb_assign=False, lb_delay=0.1)
    _gateway_release(kubesim)
    kubectl(kubesim, "-n", "istio-ingress", "rollout", "status", "deployment/istio-ingress", "--timeout=30s")
    time.sleep(1.5)
    svc = get_json(kubesim, "-n", "istio-ingress", "service", "istio-ingress")
    assert not (svc.get("status") or {}).get("loadBalancer", {}).get("ingress")
    assert "<pending>" in kubectl(kubesim, "-n", "istio-ingress", "get", "service", "istio-ingress", "--no-headers").stdout
    # a bounded wait times out like it would against a cloud LB that never comes
    out = kubectl(kubesim, "-n", "istio-ingress", "wait", "--for=jsonpath={.status.loadBalancer.ingress[0].ip}", "service/istio-ingress",
                  "--timeout=2s", check=False)
    assert out.returncode != 0
    # the cloud controller catches up when the knob flips at run time
    kubesim.settings(lb_assign=True)
    assert _external_ip(kubesim, timeout=10).startswith("127.")


def test_lb_delay_and_no_serving(kubesim):
    kubesim.settings(lb_delay=2.0, lb_serve=False)
    _gateway_release(kubesim)
    t0 = time.monotonic()
    time.sleep(1.0)
    assert not get_json(kubesim, "-n", "istio-ingress", "service", "istio-ingress").get("status", {}).get("loadBalancer", {}).get("ingress")
    ip = _external_ip(kubesim)
    assert time.monotonic() - t0 >= 1.9
    try:
        http_get(f"http://{ip}/", timeout=1)
        served = True
    except OSError:
        served = False
    assert not served, "lb_serve=false: nothing listens on the assigned IP"


GATEWAY_API_CRDS = [
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": f"{plural}.gateway.networking.k8s.io"},
     "spec": {"group": "gateway.networking.k8s.io", "scope": scope,
              "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
              "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    for plural, kind, scope in (("gatewayclasses", "GatewayClass", "Cluster"), ("gateways", "Gateway", "Namespaced"),
                                ("httproutes", "HTTPRoute", "Namespaced"))
]


def test_kubernetes_gateway_api_deployed_by_simulated_istiod(kubesim):
    from kubesim.testing import injector_webhook, istiod

    apply(kubesim, GATEWAY_API_CRDS)
    wait_for(lambda: kubectl(kubesim, "get", "httproutes.gateway.networking.k8s.io", "-A", check=False).returncode == 0, what="Gateway API served")
    apply(kubesim, [namespace("istio-system"), injector_webhook(), *istiod()])
    # istiod registers its GatewayClass
    gwc = wait_for(lambda: kubectl(kubesim, "get", "gatewayclass", "istio", "-o", "json", check=False).returncode == 0
                   and get_json(kubesim, "gatewayclass", "istio"), what="GatewayClass istio")
    assert gwc["spec"]["controllerName"] == "istio.io/gateway-controller"
    _bookinfo(kubesim)
    apply(kubesim, [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "bookinfo-gateway", "namespace": "bookinfo"},
         "spec": {"gatewayClassName": "istio",
                  "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}]}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "bookinfo", "namespace": "bookinfo"},
         "spec": {"parentRefs": [{"name": "bookinfo-gateway"}],
                  "rules": [{"matches": [{"path": {"type": "Exact", "value": "/productpage"}}, {"path": {"type": "PathPrefix", "value": "/static"}}],
                             "backendRefs": [{"name": "productpage", "port": 9080}]}]}},
    ])
    out = kubectl(kubesim, "-n", "bookinfo", "wait", "--for=condition=programmed", "gateway/bookinfo-gateway", "--timeout=30s")
    assert "condition met" in out.stdout
    kubectl(kubesim, "-n", "bookinfo", "rollout", "status", "deployment/bookinfo-gateway-istio", "--timeout=30s")
    gw = get_json(kubesim, "-n", "bookinfo", "gateway.gateway.networking.k8s.io", "bookinfo-gateway")
    ip = gw["status"]["addresses"][0]["value"]
    svc = get_json(kubesim, "-n", "bookinfo", "service", "bookinfo-gateway-istio")
    assert svc["spec"]["type"] == "LoadBalancer" and svc["status"]["loadBalancer"]["ingress"][0]["ip"] == ip
    pod = get_json(kubesim, "-n", "bookinfo", "pods", "-l", "gateway.networking.k8s.io/gateway-name=bookinfo-gateway")["items"][0]
    assert pod["spec"]["containers"][0]["image"] == "docker.io/istio/proxyv2:1.30.0", "gateway pod injected through the gateway template"
    code, headers, body = wait_for(lambda: (r := http_get(f"http://{ip}/productpage"))[0] == 200 and r, what="200 via HTTPRoute")
    assert "<title>Simple Bookstore App</title>" in body and headers["server"] == "istio-envoy"
    assert http_get(f"http://{ip}/reviews")[0] == 404
    route = get_json(kubesim, "-n", "bookinfo", "httproute", "bookinfo")
    assert {c["type"]: c["status"] for c in route["status"]["parents"][0]["conditions"]} == {"Accepted": "True", "ResolvedRefs": "True"}

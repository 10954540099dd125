"""Telemetry in kubesim: the service/pod proxy, bookinfo's call graph through the simulated mesh,
Envoy-style sidecar metrics scraped by a REAL Prometheus, and the simulated Grafana/Jaeger/Kiali.

These tests need Debian's ``prometheus`` binary (CI installs it); without it they fail, they do
not skip.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.parse

import pytest

from kubesim.testing import istiod, wait_ca_bundle
from kubesim.testing import ISTIO_CRDS, apply, deployment, get_json, http_get, injector_webhook, kubectl, namespace, service, wait_for

NS = "bookinfo"
ISTIO = "istio-system"
GATEWAY_LABELS = {"app": "istio-ingress", "istio": "ingress"}
IMAGE = "docker.io/istio/examples-bookinfo-{}:1.20.3"
_MORE_CRD_NAMES = (("destinationrules", "networking.istio.io", "DestinationRule", "destinationrule"),
                   ("peerauthentications", "security.istio.io", "PeerAuthentication", "peerauthentication"),
                   ("telemetries", "telemetry.istio.io", "Telemetry", "telemetry"))
MORE_CRDS = "\n".join(
    f"""---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.{group}}}
spec:
  group: {group}
  names: {{kind: {kind}, listKind: {kind}List, plural: {plural}, singular: {kind_lower}}}
  scope: Namespaced
  versions:
  - {{name: v1, served: true, storage: true, schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}}}
""" for plural, group, kind, kind_lower in _MORE_CRD_NAMES)
STANDARD_LABELS = ("reporter", "source_workload", "source_workload_namespace", "source_app", "source_version", "source_principal",
                   "destination_workload", "destination_workload_namespace", "destination_app", "destination_version",
                   "destination_service", "destination_service_name", "destination_service_namespace", "request_protocol",
                   "response_code", "response_flags", "connection_security_policy")


def proxy(ks, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """A request through the API server's proxy, with the real status and headers."""
    import ssl
    import urllib.error
    import urllib.request

    req = urllib.request.Request(ks.url + path, method=method, headers={"Authorization": f"Bearer {ks.token}"})  # noqa: S310 - local simulator
    ctx = ssl.create_default_context(cafile=ks.ca)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), NoRedirect)
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def _mesh(ks, *, sampling: float | None = None):
    """istio-system with the injector, bookinfo (six workloads, injected), the ingress gateway and its routes."""
    apply(ks, ISTIO_CRDS + MORE_CRDS)
    wait_for(lambda: kubectl(ks, "get", "destinationrules.networking.istio.io,telemetries.telemetry.istio.io", "-A", check=False).returncode == 0,
             what="Istio CRDs served")
    apply(ks, [namespace(ISTIO), injector_webhook(), namespace(NS, {"istio-injection": "enabled"}), namespace("istio-ingress")])
    apply(ks, istiod())           # the injector is called once a ready istiod has patched its CA into the webhook
    wait_ca_bundle(ks)
    objs = []
    for app, versions in (("productpage", ["v1"]), ("details", ["v1"]), ("reviews", ["v1", "v2", "v3"]), ("ratings", ["v1"])):
        for v in versions:
            objs.append(deployment(f"{app}-{v}", NS, labels={"app": app, "version": v},
                                   containers=[{"name": app, "image": IMAGE.format(f"{app}-{v}"), "ports": [{"containerPort": 9080}]}]))
        objs.append(service(app, NS, {"app": app}, [{"name": "http", "port": 9080}]))
    objs += [deployment("istio-ingress", "istio-ingress", labels=GATEWAY_LABELS,
                        containers=[{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.30.0",
                                     "ports": [{"containerPort": 80, "name": "http"}]}]),
             service("istio-ingress", "istio-ingress", GATEWAY_LABELS, [{"name": "http2", "port": 80, "targetPort": 80}], type_="LoadBalancer"),
             {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "bookinfo-gateway", "namespace": NS},
              "spec": {"selector": {"istio": "ingress"}, "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}},
             {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "bookinfo", "namespace": NS},
              "spec": {"hosts": ["*"], "gateways": ["bookinfo-gateway"],
                       "http": [{"match": [{"uri": {"exact": "/productpage"}}],
                                 "route": [{"destination": {"host": "productpage", "port": {"number": 9080}}}]}]}},
             {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": NS},
              "spec": {"host": "reviews", "subsets": [{"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")]}}]
    if sampling is not None:
        objs.append({"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry", "metadata": {"name": "mesh-default", "namespace": ISTIO},
                     "spec": {"tracing": [{"randomSamplingPercentage": sampling}]}})
    apply(ks, objs)
    for d in ("productpage-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1"):
        kubectl(ks, "-n", NS, "rollout", "status", f"deployment/{d}", "--timeout=30s")
    kubectl(ks, "-n", "istio-ingress", "rollout", "status", "deployment/istio-ingress", "--timeout=30s")

    def ip():
        ing = ((get_json(ks, "-n", "istio-ingress", "service", "istio-ingress").get("status") or {}).get("loadBalancer") or {}).get("ingress")
        return ing and ing[0].get("ip")
    addr = wait_for(ip, timeout=20, what="gateway EXTERNAL-IP")
    wait_for(lambda: http_get(f"http://{addr}/productpage")[0] == 200, what="/productpage through the gateway")
    return addr


def _send(addr: str, n: int, headers: dict[str, str] | None = None) -> None:
    import urllib.request

    for _i in range(n):
        req = urllib.request.Request(f"http://{addr}/productpage", headers=headers or {})  # noqa: S310 - simulator loopback
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - simulator loopback
            assert resp.status == 200


_SAMPLE = re.compile(r'^(\w+)\{(.*)\} (\S+)$')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def pod_metrics(ks, workload: str) -> list[tuple[str, dict[str, str], float]]:
    pod = next(p for p in get_json(ks, "-n", NS, "pods")["items"] if p["metadata"]["name"].startswith(workload + "-"))
    code, headers, body = proxy(ks, f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}:15020/proxy/stats/prometheus")
    assert code == 200, body
    assert headers.get("x-kubesim-simulated") == "true"
    return parse_metrics(body.decode())


def requests_by(samples, **match) -> float:
    return sum(v for name, lb, v in samples if name == "istio_requests_total" and all(lb.get(k) == w for k, w in match.items()))


def test_service_proxy_forms_and_status_codes(kubesim):
    ks = kubesim
    apply(ks, [namespace(ISTIO),
               deployment("grafana", ISTIO, labels={"app.kubernetes.io/name": "grafana"}, port=3000),
               service("grafana", ISTIO, {"app.kubernetes.io/name": "grafana"}, [{"name": "service", "port": 3000, "targetPort": 3000}]),
               deployment("nothing", ISTIO, labels={"app": "nothing"}, port=8080),
               service("nothing", ISTIO, {"app": "nothing"}, [{"name": "http", "port": 80, "targetPort": 8080}])])
    kubectl(ks, "-n", ISTIO, "rollout", "status", "deployment/grafana", "--timeout=30s")
    base = f"/api/v1/namespaces/{ISTIO}/services"
    wait_for(lambda: proxy(ks, f"{base}/grafana:3000/proxy/api/health")[0] == 200, what="grafana through the proxy")

    # every name form reaches the same backend: number, port name, bare name (the unnamed... here: the only port), https: scheme
    for ident in ("grafana:3000", "grafana:service", "http:grafana:3000", "https:grafana:service"):
        code, headers, body = proxy(ks, f"{base}/{ident}/proxy/api/health")
        assert code == 200, (ident, body)
        assert headers["x-kubesim-simulated"] == "true"
        assert json.loads(body)["database"] == "ok"
    # kubectl get --raw goes the same way
    raw = kubectl(ks, "get", "--raw", f"{base}/grafana:3000/proxy/api/health").stdout
    assert json.loads(raw)["simulated"] is True
    # the query string is passed through (no dashboards: empty search, wrong type: empty too)
    code, _h, body = proxy(ks, f"{base}/grafana:3000/proxy/api/search?query=Istio%20Mesh&type=dash-db")
    assert (code, json.loads(body)) == (200, [])
    # empty proxy path: 301 to the trailing slash
    code, headers, _b = proxy(ks, f"{base}/grafana:3000/proxy")
    assert code == 301 and headers["location"] == f"{base}/grafana:3000/proxy/"

    def status(path):
        code, _h, body = proxy(ks, path)
        return code, json.loads(body)

    code, st = status(f"{base}/missing:80/proxy/")
    assert (code, st["kind"], st["reason"], st["message"]) == (404, "Status", "NotFound", 'services "missing" not found')
    code, st = status(f"{base}/grafana:4000/proxy/")
    assert (code, st["reason"], st["message"]) == (503, "ServiceUnavailable", 'no service port 4000 found for service "grafana"')
    code, st = status(f"{base}/grafana:nope/proxy/")
    assert (code, st["message"]) == (503, 'no endpoints available for service "grafana"')
    code, st = status(f"{base}/ftp:grafana:3000/proxy/")
    assert (code, st["reason"]) == (400, "BadRequest")
    # a ready endpoint where nothing listens: the refused dial
    kubectl(ks, "-n", ISTIO, "rollout", "status", "deployment/nothing", "--timeout=30s")
    code, st = wait_for(lambda: (r := status(f"{base}/nothing:80/proxy/"))[0] == 503 and "dial tcp" in r[1]["message"] and r,
                        what="refused dial")
    assert st["message"].startswith("error trying to reach service: dial tcp 10.") and st["message"].endswith(":8080: connect: connection refused")
    # no ready endpoint: 503 no endpoints available
    kubectl(ks, "-n", ISTIO, "scale", "deployment/grafana", "--replicas=0")
    # the pod's process stops on SIGTERM at once; the endpoints controller removes its address a moment later
    code, st = wait_for(lambda: (r := status(f"{base}/grafana:3000/proxy/api/health"))[0] == 503 and "no endpoints" in r[1]["message"] and r,
                        what="503 after scale to 0")
    assert st["message"] == 'no endpoints available for service "grafana"'
    # the pod proxy: missing pod 404
    code, st = status(f"/api/v1/namespaces/{ISTIO}/pods/missing:15020/proxy/stats/prometheus")
    assert (code, st["message"]) == (404, 'pods "missing" not found')


def test_bookinfo_call_graph_metrics_labels_and_virtualservice_shift(kubesim):
    ks = kubesim
    addr = _mesh(ks)
    _send(addr, 30)

    pp = pod_metrics(ks, "productpage-v1")
    # the gateway called productpage; productpage called details and reviews (reporter=source on productpage's sidecar)
    assert requests_by(pp, reporter="destination", source_workload="istio-ingress", destination_workload="productpage-v1", response_code="200") >= 30
    assert requests_by(pp, reporter="source", destination_service_name="details", response_code="200") >= 30
    assert requests_by(pp, reporter="source", destination_service_name="reviews", response_code="200") >= 30
    sample = next(lb for name, lb, _v in pp if name == "istio_requests_total" and lb["reporter"] == "source")
    assert set(STANDARD_LABELS) <= set(sample), set(STANDARD_LABELS) - set(sample)
    assert sample["request_protocol"] == "http" and sample["connection_security_policy"] == "mutual_tls"
    assert sample["source_principal"] == "spiffe://cluster.local/ns/bookinfo/sa/default"
    assert sample["destination_service"] in ("details.bookinfo.svc.cluster.local", "reviews.bookinfo.svc.cluster.local")
    assert any(name == "istio_request_duration_milliseconds_bucket" and lb.get("le") == "+Inf" for name, lb, _v in pp)

    # without a VirtualService the three reviews versions share the traffic; only v2 and v3 call ratings
    by_version = {v: requests_by(pp, reporter="source", destination_service_name="reviews", destination_version=v) for v in ("v1", "v2", "v3")}
    assert all(n > 0 for n in by_version.values()), by_version
    assert requests_by(pod_metrics(ks, "reviews-v1"), reporter="source", destination_service_name="ratings") == 0
    v2_calls = requests_by(pod_metrics(ks, "reviews-v2"), reporter="source", destination_service_name="ratings", destination_workload="ratings-v1")
    assert v2_calls == by_version["v2"]
    assert requests_by(pod_metrics(ks, "ratings-v1"), reporter="destination") == by_version["v2"] + by_version["v3"]

    # a VirtualService shifts reviews to v3: the observed split follows
    apply(ks, {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews", "namespace": NS},
               "spec": {"hosts": ["reviews"], "http": [
                   {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
                   {"route": [{"destination": {"host": "reviews", "subset": "v3"}, "weight": 100}]}]}})
    time.sleep(0.5)
    _send(addr, 20)
    after = pod_metrics(ks, "productpage-v1")
    delta = {v: requests_by(after, reporter="source", destination_service_name="reviews", destination_version=v) - by_version[v]
             for v in ("v1", "v2", "v3")}
    assert delta == {"v1": 0, "v2": 0, "v3": 20}, delta
    # the end-user header match (bookinfo's logged-in jason) routes to v2
    _send(addr, 5, {"end-user": "jason"})
    final = pod_metrics(ks, "productpage-v1")
    assert requests_by(final, reporter="source", destination_service_name="reviews", destination_version="v2") == by_version["v2"] + 5


def test_unknown_protocol_port_counts_tcp_and_mtls_can_be_disabled(kubesim):
    ks = kubesim
    addr = _mesh(ks)
    before = pod_metrics(ks, "productpage-v1")     # _mesh's own check sent a request already
    # details' port renamed so its protocol is unknown: Istio counts its traffic as TCP
    kubectl(ks, "-n", NS, "patch", "service", "details", "--type=json", "-p",
            json.dumps([{"op": "replace", "path": "/spec/ports/0/name", "value": "web"}]))
    apply(ks, {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "off", "namespace": NS},
               "spec": {"mtls": {"mode": "DISABLE"}}})
    time.sleep(0.5)
    _send(addr, 10)
    pp = pod_metrics(ks, "productpage-v1")
    assert requests_by(pp, destination_service_name="details") == requests_by(before, destination_service_name="details")
    tcp = [(lb, v) for name, lb, v in pp if name == "istio_tcp_connections_opened_total" and lb["destination_service_name"] == "details"]
    assert tcp and sum(v for _lb, v in tcp) == 10
    assert {lb["request_protocol"] for lb, _v in tcp} == {"tcp"}
    assert {lb["connection_security_policy"] for lb, _v in tcp} == {"none"}
    assert requests_by(pp, reporter="source", destination_service_name="reviews", connection_security_policy="none") == 10
    assert requests_by(before, connection_security_policy="none") == 0


def test_real_prometheus_scrapes_sidecars_and_stops_at_zero_replicas(kubesim):
    assert shutil.which("prometheus"), "Debian's prometheus package is required (apt-get install prometheus): CI installs it"
    ks = kubesim
    kubesim.settings(scrape_interval="1s")
    addr = _mesh(ks)
    prom_labels = {"app.kubernetes.io/name": "prometheus"}
    config = {"global": {"scrape_interval": "15s"}, "scrape_configs": [{
        "job_name": "kubernetes-pods", "kubernetes_sd_configs": [{"role": "pod"}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep", "regex": "true"},
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "action": "replace", "target_label": "__metrics_path__",
             "regex": "(.+)"},
            {"source_labels": ["__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port"], "action": "replace",
             "regex": "(.+);(\\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}]}]}
    apply(ks, [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "prometheus", "namespace": ISTIO},
                "data": {"prometheus.yml": json.dumps(config)}},
               deployment("prometheus", ISTIO, labels=prom_labels, port=9090),
               service("prometheus", ISTIO, prom_labels, [{"name": "http", "port": 9090, "targetPort": 9090}])])
    kubectl(ks, "-n", ISTIO, "rollout", "status", "deployment/prometheus", "--timeout=30s")
    base = f"/api/v1/namespaces/{ISTIO}/services/prometheus:9090/proxy"
    wait_for(lambda: proxy(ks, f"{base}/-/ready")[0] == 200, timeout=30, what="the real Prometheus behind the service proxy")
    _send(addr, 30)      # enough that each of the three reviews versions gets some (1 - 3 * (2/3)**30)

    def series():
        q = urllib.parse.quote('sum by (destination_workload) (istio_requests_total{reporter="destination",destination_workload_namespace="bookinfo"})')
        code, _h, body = proxy(ks, f"{base}/api/v1/query?query={q}")
        data = json.loads(body)
        return code == 200 and {r["metric"]["destination_workload"] for r in data["data"]["result"]}
    six = {"productpage-v1", "details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3"}
    found = wait_for(lambda: (s := series()) and s >= six and s, timeout=30, interval=0.5, what="istio_requests_total in Prometheus")
    assert found == six
    code, _h, body = proxy(ks, f"{base}/api/v1/targets?state=active")
    targets = json.loads(body)["data"]["activeTargets"]
    sidecars = [t for t in targets if "/stats/prometheus" in t["scrapeUrl"] and t["labels"].get("namespace") == NS]
    assert len(sidecars) == 6 and {t["health"] for t in sidecars} == {"up"}, targets
    # the PromQL error comes from Prometheus itself
    code, _h, body = proxy(ks, f"{base}/api/v1/query?query=sum(")
    assert code == 400 and json.loads(body)["errorType"] == "bad_data"

    kubectl(ks, "-n", ISTIO, "scale", "deployment/prometheus", "--replicas=0")
    code, _h, body = wait_for(lambda: (r := proxy(ks, f"{base}/api/v1/query?query=up"))[0] == 503 and b"no endpoints" in r[2] and r,
                              what="503 once scaled to 0 (the terminating pod's address removed)")
    assert json.loads(body)["message"] == 'no endpoints available for service "prometheus"'


def test_prometheus_binary_missing_is_a_clear_503(kubesim):
    ks = kubesim
    ks.settings(prometheus_binary="kubesim-no-such-prometheus")
    prom_labels = {"app.kubernetes.io/name": "prometheus"}
    apply(ks, [namespace(ISTIO), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "prometheus", "namespace": ISTIO},
                                  "data": {"prometheus.yml": "scrape_configs: []\n"}},
               deployment("prometheus", ISTIO, labels=prom_labels, port=9090),
               service("prometheus", ISTIO, prom_labels, [{"name": "http", "port": 9090, "targetPort": 9090}])])
    kubectl(ks, "-n", ISTIO, "rollout", "status", "deployment/prometheus", "--timeout=30s")
    path = f"/api/v1/namespaces/{ISTIO}/services/prometheus:9090/proxy/api/v1/query?query=up"
    code, _h, body = wait_for(lambda: (r := proxy(ks, path))[0] == 503 and b"not installed" in r[2] and r, what="a 503 naming the missing binary")
    assert "apt-get install prometheus" in json.loads(body)["message"]
    log = ks.log.read_text()
    assert log.count("the prometheus binary 'kubesim-no-such-prometheus' is not installed") == 1, log


@pytest.mark.kubesim(trace_sampling_default=0.0)
def test_grafana_dashboards_jaeger_traces_and_kiali_come_from_the_store(kubesim):
    ks = kubesim
    addr = _mesh(ks, sampling=100.0)
    dashboards = {"istio-mesh-dashboard.json": json.dumps({"title": "Istio Mesh Dashboard", "uid": "mesh"}),
                  "istio-service-dashboard.json": json.dumps({"title": "Istio Service Dashboard"})}
    apply(ks, [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio-grafana-dashboards", "namespace": ISTIO}, "data": dashboards},
               deployment("grafana", ISTIO, labels={"app.kubernetes.io/name": "grafana"}, port=3000),
               service("grafana", ISTIO, {"app.kubernetes.io/name": "grafana"}, [{"name": "service", "port": 3000}]),
               deployment("jaeger", ISTIO, labels={"app": "jaeger"}, containers=[
                   {"name": "jaeger", "image": "jaegertracing/all-in-one:1.67.0", "env": [{"name": "QUERY_BASE_PATH", "value": "/jaeger"}],
                    "ports": [{"containerPort": 16686}, {"containerPort": 9411}]}]),
               service("tracing", ISTIO, {"app": "jaeger"}, [{"name": "http-query", "port": 80, "targetPort": 16686}]),
               service("zipkin", ISTIO, {"app": "jaeger"}, [{"name": "http-query", "port": 9411, "targetPort": 9411}]),
               deployment("kiali", ISTIO, labels={"app": "kiali"}, port=20001),
               service("kiali", ISTIO, {"app": "kiali"}, [{"name": "http", "port": 20001}])])
    for d in ("grafana", "jaeger", "kiali"):
        kubectl(ks, "-n", ISTIO, "rollout", "status", f"deployment/{d}", "--timeout=30s")
    base = f"/api/v1/namespaces/{ISTIO}/services"
    wait_for(lambda: proxy(ks, f"{base}/tracing:80/proxy/jaeger/api/services")[0] == 200, what="jaeger answers")
    _send(addr, 3)

    code, headers, body = proxy(ks, f"{base}/grafana:3000/proxy/api/search?query=istio%20mesh&type=dash-db")
    assert code == 200 and headers["x-kubesim-simulated"] == "true"
    assert [h["title"] for h in json.loads(body)] == ["Istio Mesh Dashboard"]
    code, _h, body = proxy(ks, f"{base}/grafana:3000/proxy/api/search?query=")
    assert [h["title"] for h in json.loads(body)] == ["Istio Mesh Dashboard", "Istio Service Dashboard"]

    services = json.loads(proxy(ks, f"{base}/tracing:80/proxy/jaeger/api/services")[2])["data"]
    assert {"productpage.bookinfo", "details.bookinfo", "reviews.bookinfo", "istio-ingress.istio-ingress"} <= set(services), services
    traces = json.loads(proxy(ks, f"{base}/tracing:80/proxy/jaeger/api/traces?service=productpage.bookinfo&limit=20")[2])["data"]
    assert len(traces) == 3 and all(len(t["spans"]) >= 5 for t in traces)
    assert proxy(ks, f"{base}/tracing:80/proxy/api/services")[0] == 404     # outside QUERY_BASE_PATH

    status = json.loads(proxy(ks, f"{base}/kiali:20001/proxy/kiali/api/status")[2])
    assert status["status"]["Kiali state"] == "running" and "simulated" in status["status"]["Kiali version"]

    # the dashboards ConfigMap deleted: the search finds nothing
    kubectl(ks, "-n", ISTIO, "delete", "configmap", "istio-grafana-dashboards")
    assert json.loads(proxy(ks, f"{base}/grafana:3000/proxy/api/search?query=istio")[2]) == []
    # sampling 0 (Telemetry resource): no new traces
    apply(ks, {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry", "metadata": {"name": "mesh-default", "namespace": ISTIO},
               "spec": {"tracing": [{"randomSamplingPercentage": 0.0}]}})
    _send(addr, 5)
    traces = json.loads(proxy(ks, f"{base}/tracing:80/proxy/jaeger/api/traces?service=productpage.bookinfo&limit=50")[2])["data"]
    assert len(traces) == 3


# ------------------------------------------------------------------------------------- pure parts
def test_name_forms_protocols_and_derived_prometheus_config():
    from kubesim.api.proxy import split_scheme_name_port
    from kubesim.behaviour.addons import derive_config
    from kubesim.behaviour.telemetry import port_protocol

    assert split_scheme_name_port("grafana") == ("", "grafana", "")
    assert split_scheme_name_port("grafana:3000") == ("", "grafana", "3000")
    assert split_scheme_name_port("https:grafana:service") == ("https", "grafana", "service")
    assert split_scheme_name_port("ftp:grafana:1") is None and split_scheme_name_port(":80") is None
    assert split_scheme_name_port("a:b:c:d") is None

    assert [port_protocol(p) for p in ({"name": "http"}, {"name": "http-web"}, {"name": "http2"}, {"name": "grpc-api"},
                                       {"name": "tcp-db"}, {"name": "web"}, {}, {"name": "web", "appProtocol": "http"},
                                       {"name": "http", "appProtocol": "mysql"})] == \
        ["http", "http", "http", "grpc", "tcp", "tcp", "tcp", "http", "tcp"]

    source = {"global": {"scrape_interval": "15s", "scrape_timeout": "10s"}, "rule_files": ["/etc/rules.yml"],
              "scrape_configs": [
                  {"job_name": "kubernetes-pods", "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": ["a"], "own_namespace": True}}],
                   "bearer_token_file": "/var/run/secrets/token",
                   "relabel_configs": [{"action": "keep", "regex": "true", "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]}]},
                  {"job_name": "static", "static_configs": [{"targets": ["10.0.0.1:9100"]}]}]}
    cfg = derive_config(source, "istio-system", "127.0.0.1:4321", "1s", "/kubesim/sd/s3cret")
    assert cfg["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"} and "rule_files" not in cfg
    assert [j["job_name"] for j in cfg["scrape_configs"]] == ["kubernetes-pods"]          # static targets do not exist here
    job = cfg["scrape_configs"][0]
    assert "kubernetes_sd_configs" not in job and "bearer_token_file" not in job
    assert job["http_sd_configs"] == [{"url": "http://127.0.0.1:4321/kubesim/sd/s3cret?role=pod&namespaces=a%2Cistio-system",
                                       "refresh_interval": "1s"}]
    assert job["relabel_configs"][0]["action"] == "keep"                                  # the add-on's own relabelling first
    assert job["relabel_configs"][-1] == {"target_label": "__address__", "replacement": "127.0.0.1:4321"}
    assert source["scrape_configs"][0]["kubernetes_sd_configs"]                           # the input is left alone

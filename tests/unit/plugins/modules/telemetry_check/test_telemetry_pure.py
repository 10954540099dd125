"""The pure parts of telemetry_check: PromQL building, answer parsing, classification, findings, report, wait loop."""

from __future__ import annotations

import re

import pytest

from ansible_collections.okemesh.istio.plugins.module_utils import _addons, _promql, _telemetry
from ansible_collections.okemesh.istio.plugins.module_utils._errors import AddonError
from tests.fixtures.telemetry import traffic


# --------------------------------------------------------------------------------------
# PromQL
# --------------------------------------------------------------------------------------
def test_grouped_query_is_one_query_per_metric_with_istio_labels():
    q = _promql.grouped_increase(_promql.REQUESTS, _promql.REQUEST_LABELS, "5m", ["bookinfo", "shop"])
    assert q.count("istio_requests_total{") == 6 and " or " in q   # per side: gained since the window's start, or born in it
    assert 'destination_workload_namespace=~"bookinfo|shop"' in q and 'source_workload_namespace=~"bookinfo|shop"' in q
    assert q.startswith("sum by (reporter, source_workload, source_workload_namespace,")
    assert "max_over_time(istio_requests_total{" in q and " offset 5m)" in q and "[5m]" in q
    # same input, same string: namespaces sorted and de-duplicated
    assert q == _promql.grouped_increase(_promql.REQUESTS, _promql.REQUEST_LABELS, "5m", ["shop", "bookinfo", "shop"])


def test_grouped_query_without_namespaces_and_with_reporter():
    q = _promql.grouped_increase(_promql.TCP_OPENED, ("reporter",), "1h30m", None, reporter="destination", function="rate")
    assert q == 'sum by (reporter) (rate(istio_tcp_connections_opened_total{reporter="destination"}[1h30m]))'


@pytest.mark.parametrize("bad", ["5 minutes", "", "5", "m5", "-5m"])
def test_bad_windows_are_refused(bad):
    assert not _promql.valid_duration(bad)
    with pytest.raises(ValueError, match="duration"):
        _promql.grouped_increase(_promql.REQUESTS, ("reporter",), bad)


def test_durations_and_escaping():
    assert _promql.duration_seconds("1h30m") == 5400
    assert _promql.duration_seconds("90s") == 90
    assert _promql.selector(a='x"y', b=("=~", "p|q")) == '{a="x\\"y",b=~"p|q"}'
    assert _promql.namespace_regex(["a.b"]) == "a\\.b"


def test_vector_parsing_sorts_and_drops_nan_and_reports_errors():
    data = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"b": "2"}, "value": [1, "2.5"]},
        {"metric": {"a": "1"}, "value": [1, "NaN"]},
        {"metric": {"a": "0"}, "value": [1, "1"]},
    ]}}
    assert _promql.vector(data) == [({"a": "0"}, 1.0), ({"b": "2"}, 2.5)]
    with pytest.raises(ValueError, match="bad_data: parse error"):
        _promql.vector({"status": "error", "errorType": "bad_data", "error": "parse error"})
    with pytest.raises(ValueError, match="expected a vector"):
        _promql.vector({"status": "success", "data": {"resultType": "matrix", "result": []}})


# --------------------------------------------------------------------------------------
# add-on HTTP failures -> kinds -> findings
# --------------------------------------------------------------------------------------
def _status(code, reason, message, kind=None):
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}
    if kind:
        body["details"] = {"name": "grafana", "kind": kind}
    import json

    return json.dumps(body).encode()


@pytest.mark.parametrize("status,body,kind,code", [
    (404, _status(404, "NotFound", 'services "grafana" not found', "services"), "not_found", "OKM0101"),
    (404, b"404 page not found", "http_error", "OKM0104"),  # the add-on itself: wrong path
    (403, _status(403, "Forbidden", 'services "grafana" is forbidden: cannot get resource "services/proxy"', "services"),
     "forbidden", "OKM0102"),
    (503, _status(503, "ServiceUnavailable", 'no endpoints available for service "grafana"'), "unavailable", "OKM0103"),
    (502, b"error trying to reach service", "http_error", "OKM0104"),
])
def test_proxy_failures_are_classified_and_become_findings(status, body, kind, code):
    err = _addons.classify_http_failure("grafana", "service proxy istio-system/grafana:3000", status, body)
    assert err.details["kind"] == kind and err.details["status"] == status
    f = _telemetry.addon_finding(err, "grafana", namespace="istio-system", service="grafana")
    assert f["code"] == code and f["check"] == "grafana" and f["severity"] == "error"
    assert f["object"] == "service/istio-system/grafana"
    assert "?" not in f["remedy"] and f["remedy"]


def test_forbidden_finding_names_the_rbac_fix():
    err = _addons.classify_http_failure("prometheus", "service proxy istio-system/prometheus:9090", 403,
                                        _status(403, "Forbidden", "forbidden", "services"))
    f = _telemetry.addon_finding(err, "series", namespace="istio-system", service="prometheus")
    assert "kubectl auth can-i get services/proxy -n istio-system" in f["remedy"]
    assert "prometheus.url" in f["remedy"]


def test_prometheus_error_answer_text_is_kept():
    err = _addons.classify_http_failure("prometheus", "http://p", 422,
                                        b'{"status":"error","errorType":"execution","error":"too many samples"}', proxied=False)
    assert "execution: too many samples" in err.msg


def test_every_finding_in_the_table_formats():
    for code, (name, severity, check, _message, _remedy) in _telemetry.FINDINGS.items():
        assert re.match(r"^(OKM|IST)\d{4}$", code) and name[0].isupper()
        assert severity in ("error", "warning")
        assert check is None or check in _telemetry.CHECK_NAMES
        f = _telemetry.finding(code, "obj", check="series")
        assert f["message"] and f["remedy"] and f["code"] == code


# --------------------------------------------------------------------------------------
# Kubernetes objects
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("port,proto", [
    ({"name": "http"}, "http"), ({"name": "http-web"}, "http"), ({"name": "grpc-web-x"}, "grpc-web"),
    ({"name": "HTTP2"}, "http2"), ({"name": "tcp-db"}, "tcp"), ({"name": "web"}, None), ({}, None),
    ({"name": "httpx"}, None), ({"name": "web", "appProtocol": "http"}, "http"), ({"name": "http", "appProtocol": "tcp"}, "tcp"),
])
def test_port_protocol_follows_istio_protocol_selection(port, proto):
    assert _telemetry.port_protocol(port) == proto


def test_meshed_workloads_from_pods():
    pods = traffic.bookinfo_objects()["/api/v1/namespaces/bookinfo/pods"]
    pods.append(traffic.pod("bookinfo", "plain-v1", meshed=False))
    done = traffic.pod("bookinfo", "job-v1")
    done["status"]["phase"] = "Succeeded"
    pods.append(done)
    found = _telemetry.meshed_workloads(pods)
    assert sorted(found) == [("bookinfo", w) for w in sorted(traffic.BOOKINFO_WORKLOADS)]
    assert found[("bookinfo", "reviews-v2")]["app"] == "reviews" and found[("bookinfo", "reviews-v2")]["version"] == "v2"
    assert found[("bookinfo", "ratings-v1")]["pods"] == ["ratings-v1-5c8f9d7b6-x2k4p"]  # native sidecar counts


# --------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------
def _both(pattern, scraped=None):
    out = []
    for reporter in ("source", "destination"):
        for labels, value in traffic.samples(pattern, reporter=reporter):
            wl = (labels["source_workload_namespace"], labels["source_workload"]) if reporter == "source" else \
                (labels["destination_workload_namespace"], labels["destination_workload"])
            if scraped is None or wl in scraped:
                out.append((labels, value * 300))
    return out


def _workloads(namespace, names):
    return _telemetry.meshed_workloads([traffic.pod(namespace, w) for w in names])


def test_series_check_bookinfo_reports_the_idle_workload_only():
    found, oks = _telemetry.check_series(_both(traffic.BOOKINFO), _workloads("bookinfo", traffic.BOOKINFO_WORKLOADS), ["bookinfo"], "5m")
    assert [(f["code"], f["object"]) for f in found] == [("OKM0111", "bookinfo/reviews-v2")]
    assert oks == ["istio_requests_total: 10560 request(s) in the last 5m; 5 of 6 meshed workload(s) report series"]


def test_series_check_unscraped_workload_and_no_traffic():
    scraped = {("istio-system", "istio-ingressgateway")} | {("broken", w) for w in traffic.BROKEN_WORKLOADS} - traffic.BROKEN_UNSCRAPED
    http = _both([c for c in traffic.BROKEN if c.protocol != "tcp"], scraped)
    found, _oks = _telemetry.check_series(http, _workloads("broken", traffic.BROKEN_WORKLOADS), ["broken"], "5m",
                                          tcp=traffic.samples(traffic.BROKEN, protocol="tcp"))
    codes = dict((f["object"], f["code"]) for f in found)
    assert codes == {"broken/reviews-v1": "OKM0112", "broken/idle-v1": "OKM0111"}
    assert "600 request(s)" in [f for f in found if f["code"] == "OKM0112"][0]["message"]
    found, oks = _telemetry.check_series([], _workloads("broken", ["a-v1"]), ["broken"], "5m")
    assert [f["code"] for f in found] == ["OKM0110"] and oks == []
    assert found[0]["message"] == "no istio_requests_total series for broken in the last 5m (1 meshed workload(s))"


def test_series_without_standard_labels():
    http = [({"destination_workload": "x"}, 5.0)]
    found, _oks = _telemetry.check_series(http, {}, None, "5m")
    f = [f for f in found if f["code"] == "OKM0113"][0]
    assert "destination_service_name, reporter, request_protocol, response_code, source_workload" in f["message"]


def test_protocol_check_tcp_where_http_expected_and_port_naming():
    objects = traffic.bookinfo_objects()
    http = _both([c for c in traffic.BROKEN if c.protocol != "tcp"])
    tcp = traffic.samples(traffic.BROKEN, protocol="tcp")
    found, _oks = _telemetry.check_protocol(http, tcp, objects["/api/v1/namespaces/broken/services"], ["broken"])
    assert [(f["code"], f["object"]) for f in found] == [("OKM0114", "service/broken/details")]
    assert "port 9080 (unnamed)" in found[0]["message"] and "appProtocol: http" in found[0]["remedy"]
    # the same port without traffic is only a naming warning (as istioctl analyze IST0118)
    found, _oks = _telemetry.check_protocol([], [], objects["/api/v1/namespaces/broken/services"], ["broken"])
    assert [(f["code"], f["severity"]) for f in found] == [("IST0118", "warning")]
    # a port declared TCP is TCP on purpose
    db = traffic.service("broken", "details", port_name="tcp-db")
    found, oks = _telemetry.check_protocol(http, tcp, [db], ["broken"])
    assert found == [] and "1 service(s) receive TCP traffic on ports declared TCP" in oks


def test_error_check_threshold():
    http = _both(traffic.BROKEN)
    found, _oks = _telemetry.check_errors(http, 0.05, "5m")
    assert [(f["code"], f["object"]) for f in found] == [("OKM0115", "broken/ratings-v1")]
    assert "40.0% of 600 request(s)" in found[0]["message"] and "codes 500: 240" in found[0]["message"]
    assert _telemetry.check_errors(http, 0.5, "5m")[0] == []
    found, oks = _telemetry.check_errors(_both(traffic.BOOKINFO), 0.005, "5m")  # details: 1% 503
    assert [f["object"] for f in found] == ["bookinfo/details-v1"]


def _target(ns, pod, health="up", path="/stats/prometheus", app=None, error=""):
    return {"labels": {"namespace": ns, "pod": pod, "app": app or pod.split("-")[0], "job": "kubernetes-pods"},
            "discoveredLabels": {}, "scrapeUrl": "http://10.0.0.1:15020%s" % path, "health": health, "lastError": error}


def test_targets_check():
    wls = _workloads("bookinfo", ["productpage-v1", "details-v1"])
    targets = [_target("bookinfo", traffic.pod_name("productpage-v1")), _target("bookinfo", traffic.pod_name("details-v1")),
               _target("istio-system", "istiod-1", path="/metrics", app="istiod")]
    found, oks = _telemetry.check_targets(targets, wls, ["bookinfo"], "istio-system")
    assert found == [] and oks == ["2 sidecar scrape target(s) up in bookinfo", "istiod scrape target(s) up (1)"]
    targets[1]["health"], targets[1]["lastError"] = "down", "connection refused"
    found, _oks = _telemetry.check_targets(targets[:2], wls, ["bookinfo"], "istio-system")
    assert [f["code"] for f in found] == ["OKM0121", "OKM0122"]
    assert "1 of 2 sidecar scrape target(s) down: bookinfo/details-v1-5c8f9d7b6-x2k4p (connection refused)" == found[0]["message"]
    found, _oks = _telemetry.check_targets([], wls, ["bookinfo"], "istio-system")
    assert [f["code"] for f in found] == ["OKM0120", "OKM0122"]


def test_grafana_jaeger_kiali_checks():
    hits = {t: [{"title": t, "type": "dash-db"}] for t in _telemetry.DEFAULT_DASHBOARDS[:3]}
    hits["Istio Control Plane Dashboard"] = [{"title": "Istio Control Plane Dashboard (old)", "type": "dash-db"}]
    found, _oks = _telemetry.check_grafana(hits, _telemetry.DEFAULT_DASHBOARDS)
    assert found[0]["message"] == "Grafana lacks dashboard(s): Istio Control Plane Dashboard, Istio Performance Dashboard"
    assert _telemetry.jaeger_matches(["productpage.bookinfo", "productpage-x.a", "jaeger"], ["istio-ingressgateway", "productpage"]) == [
        "productpage.bookinfo"]
    found, oks = _telemetry.check_jaeger(["productpage.bookinfo"], {"productpage.bookinfo": 4}, ["productpage"], "5m")
    assert found == [] and oks == ["Jaeger has traces of productpage.bookinfo (productpage.bookinfo: 4)"]
    assert _telemetry.check_jaeger(["productpage.bookinfo"], {}, ["productpage"], "5m")[0][0]["code"] == "OKM0141"
    assert _telemetry.check_jaeger(["jaeger-all-in-one"], {}, ["productpage"], "5m")[0][0]["code"] == "OKM0140"
    assert _telemetry.check_kiali({"status": {"Kiali state": "running"}})[0] == []
    assert _telemetry.check_kiali({"status": {"Kiali state": "starting"}}, "istio-system")[0][0]["remedy"] == \
        "kubectl -n istio-system logs deploy/kiali"


# --------------------------------------------------------------------------------------
# the service: wait loop and report, over in-memory clients
# --------------------------------------------------------------------------------------
class _Kube:
    def __init__(self, objects):
        self.objects = objects

    def list(self, path):
        return self.objects.get(path, []), "1"


class _Prom:
    """Answers from a list of rounds (the last one repeats); counts queries like _addons.Prometheus."""

    def __init__(self, rounds):
        self.rounds = rounds
        self.queries = []
        self.calls = 0

    def query(self, promql):
        self.queries.append(promql)
        rnd = self.rounds[min(self.calls // 2, len(self.rounds) - 1)]
        self.calls += 1
        if isinstance(rnd, Exception):
            raise rnd
        return rnd["tcp" if "tcp" in promql else "http"]

    def targets(self):
        return []


class _Clock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


OPTIONS = dict(checks=["series", "errors"], namespaces=["bookinfo"], window="5m", error_threshold=0.05,
               istio_namespace="istio-system", grafana_dashboards=[], jaeger_services=[], wait_timeout=0,
               wait_interval=5, fail_on="error")


def test_run_waits_until_traffic_arrives():
    objects = traffic.bookinfo_objects()
    prom = _Prom([{"http": [], "tcp": []}, {"http": [], "tcp": []}, {"http": _both(traffic.BOOKINFO), "tcp": []}])
    clock = _Clock()
    result = _telemetry.run(_telemetry.Clients(kube=_Kube(objects), prometheus=prom), dict(OPTIONS, wait_timeout=60), clock, clock.sleep)
    assert result["passed"] is True and result["failed"] is False and result["attempts"] == 3
    assert clock.sleeps == [5, 5] and result["elapsed"] == 10.0
    assert [f["code"] for f in result["findings"]] == ["OKM0111"]  # reviews-v2: a warning
    assert len(result["queries"]) == 2  # the last round's queries: one per metric


def test_run_gives_up_at_the_deadline_and_reports():
    prom = _Prom([{"http": [], "tcp": []}])
    clock = _Clock()
    result = _telemetry.run(_telemetry.Clients(kube=_Kube(traffic.bookinfo_objects()), prometheus=prom),
                            dict(OPTIONS, wait_timeout=12), clock, clock.sleep)
    assert result["passed"] is False and result["failed"] is True
    assert clock.sleeps == [5, 5, 2] and result["attempts"] == 4
    assert result["summary"] == {"errors": 1, "warnings": 0, "checks": {"series": "error", "errors": "ok"}}
    lines = result["report_lines"]
    assert lines[0] == "Prometheus: istio_requests_total series"
    assert "\u00d7 no istio_requests_total series for bookinfo in the last 5m (6 meshed workload(s)) [OKM0110]" in lines
    assert lines[-1].startswith("Telemetry check results are \u00d7 (1 error, 0 warnings;") and lines[-1].endswith("failed (fail_on=error)")


def test_prometheus_failure_is_one_finding_and_the_other_checks_are_skipped():
    err = AddonError("prometheus: service proxy istio-system/prometheus:9090 answered HTTP 503: no endpoints",
                     addon="prometheus", kind="unavailable", status=503, target="service proxy istio-system/prometheus:9090")
    clients = _telemetry.Clients(kube=_Kube(traffic.bookinfo_objects()), prometheus=_Prom([err]),
                                 addon_meta={"prometheus": ("istio-system", "prometheus")})
    result = _telemetry.run(clients, dict(OPTIONS, checks=["series", "protocol", "errors", "targets"]), _Clock(), None)
    assert [(f["code"], f["check"]) for f in result["findings"]] == [("OKM0103", "series")]
    assert result["findings"][0]["remedy"].startswith("kubectl -n istio-system get endpoints prometheus;")
    assert result["summary"]["checks"] == {"series": "error", "protocol": "skipped", "errors": "skipped", "targets": "skipped"}
    assert "- not evaluated: prometheus did not answer (see series)" in result["report_lines"]

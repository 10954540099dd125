"""okemesh.istio.telemetry_check end to end: main() with the real kubernetes client against the API server stub
(LISTs and the service proxy), and a REAL Prometheus server scraping Envoy-style sidecar metrics.

The Prometheus binary is required (Debian package ``prometheus``; scripts/install_system_packages.sh):
without it these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import threading

import pytest
import yaml

from ansible_collections.okemesh.istio.plugins.doc_fragments.k8s_auth import ModuleDocFragment
from ansible_collections.okemesh.istio.plugins.modules import telemetry_check
from tests.support.modules import run_module
from tests.fixtures.telemetry import stubs

# one worker starts the shared Prometheus environment (tests/unit/plugins/modules/conftest.py)
pytestmark = pytest.mark.xdist_group("telemetry")

WINDOW = "10s"


def run_main(capsys, args: dict) -> dict:
    return run_module(telemetry_check, capsys, args)


def codes(out) -> list:
    return sorted((f["code"], f["object"]) for f in out["findings"])


def test_documented_options_match_the_argument_spec():
    doc = yaml.safe_load(telemetry_check.DOCUMENTATION)
    options = dict(doc["options"])
    options.update(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
    spec = telemetry_check.argument_spec()
    assert sorted(options) == sorted(spec)
    for name, s in spec.items():
        for key, default in (("type", "str"), ("default", None), ("choices", None), ("elements", None)):
            assert options[name].get(key, default) == s.get(key, default), (name, key)
        assert options[name].get("aliases", []) == s.get("aliases", []), name
        for sub, subspec in (s.get("options") or {}).items():
            subdoc = options[name]["suboptions"][sub]
            for key, default in (("type", "str"), ("default", None), ("choices", None)):
                assert subdoc.get(key, default) == subspec.get(key, default), (name, sub, key)
        if s.get("options"):
            assert sorted(options[name]["suboptions"]) == sorted(s["options"])
    assert {k: v["support"] for k, v in doc["attributes"].items()} == {"check_mode": "full", "diff_mode": "none", "idempotent": "full"}
    yaml.safe_load(telemetry_check.EXAMPLES)
    yaml.safe_load(telemetry_check.RETURN)
    for code in ("OKM0101", "OKM0114", "IST0118", "OKM0130", "OKM0150"):
        assert code in " ".join(doc["notes"])


def test_prometheus_binary_is_installed():
    """CI installs prometheus (and graphviz); a missing binary is a failure, not a skip."""
    assert stubs.prometheus_binary().endswith("prometheus")


def test_bookinfo_telemetry_flows_through_the_service_proxy(telemetry_env, api, capsys):
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "namespaces": ["bookinfo"], "window": WINDOW})
    assert "failed" not in out and out["changed"] is False and out["passed"] is True
    assert codes(out) == [("OKM0111", "bookinfo/reviews-v2")]  # the 50/0/50 split leaves reviews-v2 idle
    assert out["summary"]["checks"] == {"series": "warning", "protocol": "ok", "errors": "ok", "targets": "ok", "grafana": "ok",
                                        "jaeger": "ok"}
    series_ok = out["checks"]["series"]["ok"][0]
    assert series_ok.startswith("istio_requests_total: ") and "5 of 6 meshed workload(s) report series" in series_ok
    requests = int(series_ok.split(": ")[1].split(" ")[0])
    assert 330 <= requests <= 375  # 35.2 requests/s received over 10s, as Prometheus computes it
    assert out["checks"]["targets"]["ok"] == ["6 sidecar scrape target(s) up in bookinfo", "istiod scrape target(s) up (1)"]
    # one query per metric, all through the API server's service proxy (no port-forward)
    assert len(out["queries"]) == 2 and out["queries"][0].startswith("sum by (reporter, source_workload")
    assert len(api.proxied("/services/prometheus:9090/proxy/api/v1/query?")) == 2
    assert len(api.proxied("/services/prometheus:9090/proxy/api/v1/targets")) == 1
    assert len(api.proxied("/services/grafana:3000/proxy/api/search")) == 5
    assert api.proxied("/services/tracing:80/proxy/jaeger/api/traces?service=istio-ingressgateway.istio-system")
    assert out["report_lines"][-1].startswith("Telemetry check results are \u203c (0 errors, 1 warning;")
    assert api.token not in json.dumps(out)


def test_broken_telemetry_gives_named_findings_with_remedies(telemetry_env, api, capsys):
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "namespaces": ["broken"], "window": WINDOW,
                            "checks": ["series", "protocol", "errors", "targets"]})
    assert out["failed"] is True
    assert out["msg"] == "telemetry check failed (fail_on=error): 3 error(s), 3 warning(s)"
    assert codes(out) == [
        ("OKM0111", "broken/idle-v1"),  # no traffic
        ("OKM0112", "broken/reviews-v1"),  # callers report it, it is not scraped
        ("OKM0114", "service/broken/details"),  # unnamed port: counted as TCP
        ("OKM0115", "broken/ratings-v1"),  # 40% 500s
        ("OKM0121", "prometheus/targets"),  # idle-v1's target answers 500
        ("OKM0124", "prometheus/targets"),  # reviews-v1's pod is no target
    ]
    by_code = dict((f["code"], f) for f in out["findings"])
    assert by_code["OKM0114"]["remedy"] == "name the port http-<suffix> (or grpc-<suffix>) or set appProtocol: http in Service details (namespace broken)"
    assert by_code["OKM0121"]["pods"] == ["broken/idle-v1-5c8f9d7b6-x2k4p"]
    assert "server returned HTTP status 500" in by_code["OKM0121"]["message"]
    assert "40.0% of" in by_code["OKM0115"]["message"]
    assert "\u00d7 service/broken/details: traffic is counted as TCP" in "\n".join(out["report_lines"])


def test_explicit_prometheus_url(telemetry_env, api, capsys):
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "namespaces": ["bookinfo"], "window": WINDOW,
                            "checks": ["series", "errors"], "prometheus": {"url": telemetry_env.prometheus.url}})
    assert out["passed"] is True and codes(out) == [("OKM0111", "bookinfo/reviews-v2")]
    assert api.proxied("prometheus") == []  # straight to Prometheus, not through the API server


@pytest.mark.parametrize("behaviour,code,fragment", [
    (None, "OKM0101", "install the prometheus add-on"),
    ("forbidden", "OKM0102", "kubectl auth can-i get services/proxy -n istio-system"),
    ("no-endpoints", "OKM0103", "kubectl -n istio-system get endpoints prometheus"),
])
def test_prometheus_missing_forbidden_or_scaled_to_zero(telemetry_env, api, capsys, behaviour, code, fragment):
    if behaviour is None:
        del api.services[("istio-system", "prometheus")]
    else:
        api.services[("istio-system", "prometheus")] = behaviour
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "namespaces": ["bookinfo"], "window": WINDOW,
                            "checks": ["series", "targets", "grafana"]})
    assert out["failed"] is True and codes(out) == [(code, "service/istio-system/prometheus")]
    assert fragment in out["findings"][0]["remedy"]
    assert out["summary"]["checks"] == {"series": "error", "targets": "skipped", "grafana": "ok"}


def test_unreachable_prometheus_url(telemetry_env, api, capsys):
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "namespaces": ["bookinfo"], "checks": ["series"],
                            "prometheus": {"url": "http://127.0.0.1:%d" % stubs.free_port()}, "request_timeout": 5})
    assert out["failed"] is True and [f["code"] for f in out["findings"]] == ["OKM0104"]
    assert out["findings"][0]["message"].startswith("prometheus: http://127.0.0.1:")


def test_grafana_dashboards_missing_and_jaeger_without_traces(telemetry_env, api, capsys):
    api.dashboards = ["Istio Mesh Dashboard", "Istio Workload Dashboard"]
    api.traces = {"jaeger-all-in-one": 2}
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "checks": ["grafana", "jaeger"], "fail_on": "warning"})
    assert out["failed"] is True
    assert codes(out) == [("OKM0130", "grafana/dashboards"), ("OKM0140", "jaeger/services")]
    assert out["findings"][0]["message"] == ("Grafana lacks dashboard(s): Istio Service Dashboard, Istio Control Plane Dashboard, "
                                             "Istio Performance Dashboard")
    api.traces = {"productpage.bookinfo": 0}
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "checks": ["jaeger"], "fail_on": "never"})
    assert "failed" not in out and codes(out) == [("OKM0141", "jaeger/traces")]
    assert "randomSamplingPercentage: 100" in out["findings"][0]["remedy"]


def test_kiali_and_wait_until_it_runs(telemetry_env, api, capsys):
    api.kiali_state = "starting"
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "checks": ["kiali"]})
    assert out["failed"] is True and codes(out) == [("OKM0150", "kiali/status")]
    assert out["findings"][0]["remedy"] == "kubectl -n istio-system logs deploy/kiali"
    timer = threading.Timer(1.5, lambda: setattr(api, "kiali_state", "running"))
    timer.start()
    try:
        out = run_main(capsys, {"kubeconfig": api.kubeconfig, "checks": ["kiali"], "wait_timeout": 20, "wait_interval": 1})
    finally:
        timer.cancel()
    assert out["passed"] is True and out["findings"] == [] and out["attempts"] >= 2
    assert out["checks"]["kiali"]["ok"] == ["Kiali is running (version v2.17.0)"]
    assert api.proxied("/services/kiali:20001/proxy/kiali/api/status")


def test_bad_input_names_the_option(telemetry_env, api, capsys):
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "window": "5 minutes"})
    assert out["failed"] is True and out["msg"].startswith("window must be a Prometheus duration")
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "error_threshold": 5})
    assert out["msg"].startswith("error_threshold is a share between 0 and 1")
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "grafana": {"url": "grafana:3000"}})
    assert out["msg"] == "grafana.url must start with http:// or https://, got 'grafana:3000'"
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "namespaces": ["Bad_NS"]})
    assert out["msg"] == "namespaces: 'Bad_NS' is not a valid namespace name"


def test_check_mode_runs_the_same_read_only_checks(telemetry_env, api, capsys):
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "namespaces": ["bookinfo"], "window": WINDOW, "checks": ["series", "targets"],
                            "_ansible_check_mode": True})
    assert out["changed"] is False and out["passed"] is True and codes(out) == [("OKM0111", "bookinfo/reviews-v2")]


def test_a_bad_token_is_an_access_finding(telemetry_env, api, capsys, tmp_path):
    out = run_main(capsys, {"host": api.url, "api_key": "not-the-token", "checks": ["grafana"]})
    assert out["failed"] is True and codes(out) == [("OKM0102", "service/istio-system/grafana")]
    assert "not-the-token" not in json.dumps(out)

"""site.yml with bookinfo's load generator, then the telemetry the add-ons hold, read the way
telemetry_check reads it: through the Kubernetes API server's service proxy (``kubectl get --raw``).

kubesim runs a REAL Prometheus (Debian's ``prometheus`` package) behind the prometheus add-on;
without the binary this test fails, it does not skip (CI installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
from pathlib import Path

import pytest

from tests.support import kubectl, wait_for

REPO = Path(__file__).resolve().parents[2]
SIX = {"productpage-v1", "details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3"}
PROXY = "/api/v1/namespaces/istio-system/services/{}/proxy"

pytestmark = pytest.mark.slow


def raw(sim, path: str) -> dict:
    return json.loads(kubectl(sim, "get", "--raw", path).stdout)


def promql(sim, query: str) -> list[dict]:
    answer = raw(sim, PROXY.format("prometheus:9090") + "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@pytest.mark.kubesim(scrape_interval="1s")
def test_site_with_loadgen_fills_prometheus_grafana_and_jaeger(kubesim, playbook, tmp_path):
    assert shutil.which("prometheus"), "Debian's prometheus package is required (scripts/install_system_packages.sh installs it)"
    env = {"OKEMESH_SIM_KUBECONFIG": kubesim.kubeconfig}
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(tmp_path / var.lower())
    result = playbook(REPO / "site.yml", inventory=REPO / "inventories/sim/hosts.yml", env=env,
                      extra_vars={"bookinfo_loadgen_requests": 40})
    assert result.rc == 0, str(result)
    assert re.search(r"status_counts\W+200\W+40\b", result.stdout), result.stdout[-3000:]

    # the loadgen's requests went through the gateway into bookinfo's call graph; Prometheus scraped every sidecar
    query = 'sum by (destination_workload) (istio_requests_total{reporter="destination",destination_workload_namespace="bookinfo"})'

    def workloads():
        return {r["metric"]["destination_workload"] for r in promql(kubesim, query)}
    assert wait_for(lambda: (w := workloads()) >= SIX and w, timeout=60, interval=1, what="series of bookinfo's six workloads") == SIX
    edges = promql(kubesim, 'sum by (source_workload, destination_service_name, request_protocol, connection_security_policy) '
                            '(istio_requests_total{reporter="source",source_workload_namespace=~"bookinfo|istio-ingress"})')
    seen = {(e["metric"]["source_workload"], e["metric"]["destination_service_name"]) for e in edges}
    assert {("productpage-v1", "details"), ("productpage-v1", "reviews")} <= seen, seen
    assert ("reviews-v1", "ratings") not in seen and {("reviews-v2", "ratings"), ("reviews-v3", "ratings")} & seen, seen
    assert {e["metric"]["request_protocol"] for e in edges} == {"http"}
    targets = raw(kubesim, PROXY.format("prometheus:9090") + "/api/v1/targets?state=active")["data"]["activeTargets"]
    sidecars = [t for t in targets if "/stats/prometheus" in t["scrapeUrl"] and t["labels"].get("namespace") == "bookinfo"]
    assert len(sidecars) == 6 and {t["health"] for t in sidecars} == {"up"}, targets
    istiod = [t for t in targets if t["labels"].get("app") == "istiod"]
    assert istiod and {t["health"] for t in istiod} == {"up"}, targets

    # Grafana's dashboards come from the ConfigMaps the addons role applied; Jaeger has productpage's traces
    titles = {h["title"] for h in raw(kubesim, PROXY.format("grafana:3000") + "/api/search?query=Istio&type=dash-db")}
    assert {"Istio Mesh Dashboard", "Istio Service Dashboard", "Istio Workload Dashboard", "Istio Control Plane Dashboard",
            "Istio Performance Dashboard"} <= titles
    services = raw(kubesim, PROXY.format("tracing:80") + "/jaeger/api/services")["data"]
    assert "productpage.bookinfo" in services, services
    traces = raw(kubesim, PROXY.format("tracing:80") + "/jaeger/api/traces?service=productpage.bookinfo&limit=5")["data"]
    assert traces and {p["serviceName"] for t in traces for p in t["processes"].values()} >= {"productpage.bookinfo", "details.bookinfo"}
    assert raw(kubesim, PROXY.format("kiali:20001") + "/kiali/api/status")["status"]["Kiali state"] == "running"

"""site.yml, uninstall.yml and dashboards.yml end to end against kubesim (the Kubernetes API
simulator): three clusters converge in one run, in parallel; the first of them then carries the
single-cluster checks (dashboards, uninstall with --limit). A second full site.yml run reporting
changed=0 is molecule's idempotence step (extensions/molecule/default, a stage of `make test`);
the fault-profile tests re-run the istio and bookinfo parts for changed=0 too.

The run also proves the telemetry the add-ons hold after bookinfo's load generator,
read the way telemetry_check reads it: through the Kubernetes API server's service proxy
(``kubectl get --raw``). kubesim runs a REAL Prometheus (Debian's ``prometheus`` package) behind
the prometheus add-on; without the binary this test fails, it does not skip (CI installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
from pathlib import Path

import pytest

from kubesim.launcher import start as start_kubesim
from tests.support import kubectl, wait_for

REPO = Path(__file__).resolve().parents[2]
SIX = {"productpage-v1", "details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3"}
PROXY = "/api/v1/namespaces/istio-system/services/{}/proxy"

pytestmark = pytest.mark.slow


def sim_env(sims: dict[str, object], workdir: Path) -> dict[str, str]:
    env = {name: sim.kubeconfig for name, sim in sims.items()}
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(workdir / var.lower())
    return env


def get(sim, path: str) -> tuple[int, dict]:
    return sim.request("GET", path)


def lb_ip(sim) -> str:
    status, svc = get(sim, "/api/v1/namespaces/istio-ingress/services/istio-ingress")
    assert status == 200, str(svc)
    return svc["status"]["loadBalancer"]["ingress"][0]["ip"]


def raw(sim, path: str) -> dict:
    return json.loads(kubectl(sim, "get", "--raw", path).stdout)


def promql(sim, query: str) -> list[dict]:
    answer = raw(sim, PROXY.format("prometheus:9090") + "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    assert answer["status"] == "success", str(answer)
    return answer["data"]["result"]


def assert_telemetry_flows(sim) -> None:
    """Prometheus, Grafana, Jaeger and Kiali hold what bookinfo's load generator produced."""
    # the loadgen's requests went through the gateway into bookinfo's call graph; Prometheus scraped every sidecar
    query = 'sum by (destination_workload) (istio_requests_total{reporter="destination",destination_workload_namespace="bookinfo"})'

    def workloads():
        return {r["metric"]["destination_workload"] for r in promql(sim, query)}
    assert wait_for(lambda: (w := workloads()) >= SIX and w, timeout=60, interval=1, what="series of bookinfo's six workloads") == SIX
    edges = promql(sim, 'sum by (source_workload, destination_service_name, request_protocol, connection_security_policy) '
                        '(istio_requests_total{reporter="source",source_workload_namespace=~"bookinfo|istio-ingress"})')
    seen = {(e["metric"]["source_workload"], e["metric"]["destination_service_name"]) for e in edges}
    assert {("productpage-v1", "details"), ("productpage-v1", "reviews")} <= seen, str(seen)
    assert ("reviews-v1", "ratings") not in seen and {("reviews-v2", "ratings"), ("reviews-v3", "ratings")} & seen, str(seen)
    assert {e["metric"]["request_protocol"] for e in edges} == {"http"}
    targets = raw(sim, PROXY.format("prometheus:9090") + "/api/v1/targets?state=active")["data"]["activeTargets"]
    sidecars = [t for t in targets if "/stats/prometheus" in t["scrapeUrl"] and t["labels"].get("namespace") == "bookinfo"]
    assert len(sidecars) == 6 and {t["health"] for t in sidecars} == {"up"}, str(targets)
    istiod = [t for t in targets if t["labels"].get("app") == "istiod"]
    assert istiod and {t["health"] for t in istiod} == {"up"}, str(targets)

    # Grafana's dashboards come from the ConfigMaps the addons role applied; Jaeger has productpage's traces
    titles = {h["title"] for h in raw(sim, PROXY.format("grafana:3000") + "/api/search?query=Istio&type=dash-db")}
    assert {"Istio Mesh Dashboard", "Istio Service Dashboard", "Istio Workload Dashboard", "Istio Control Plane Dashboard",
            "Istio Performance Dashboard"} <= titles
    services = raw(sim, PROXY.format("tracing:80") + "/jaeger/api/services")["data"]
    assert "productpage.bookinfo" in services, str(services)
    traces = raw(sim, PROXY.format("tracing:80") + "/jaeger/api/traces?service=productpage.bookinfo&limit=5")["data"]
    assert traces and {p["serviceName"] for t in traces for p in t["processes"].values()} >= {"productpage.bookinfo", "details.bookinfo"}
    assert raw(sim, PROXY.format("kiali:20001") + "/kiali/api/status")["status"]["Kiali state"] == "running"


def test_three_clusters_converge_prove_telemetry_print_summary_and_uninstall(playbook, tmp_path):
    """One site.yml run converges three clusters in parallel (ansible.cfg forks); sim-1 then carries the
    single-cluster checks: telemetry, dashboards.yml and uninstall.yml, each with --limit."""
    assert shutil.which("prometheus"), "Debian's prometheus package is required (scripts/install_system_packages.sh installs it)"
    sims = {f"OKEMESH_SIM_KUBECONFIG_{n}": start_kubesim(tmp_path / f"sim-{n}", scrape_interval="1s") for n in (1, 2, 3)}
    try:
        check_three_clusters(playbook, list(sims.values()), sim_env(sims, tmp_path), tmp_path)
    finally:
        for sim in sims.values():
            sim.stop()


def check_three_clusters(playbook, sims: list, env: dict[str, str], tmp_path: Path) -> None:
    inv = REPO / "inventories/sim/three-clusters.yml"
    first = playbook(REPO / "site.yml", inventory=inv, env=env, extra_vars={"bookinfo_loadgen_requests": 40})
    assert first.rc == 0, str(first)
    assert set(first.recap) == {"sim-1", "sim-2", "sim-3"}
    out = " ".join(first.stdout.split())
    assert "TARGET IS KUBESIM, the local Kubernetes API simulator" in out
    for n, sim in enumerate(sims, start=1):
        assert first.failed(f"sim-{n}") == 0 and first.changed(f"sim-{n}") > 0
        assert f"cluster: sim-{n} (kubeconfig {sim.kubeconfig})" in out
        assert f"bookinfo: http://{lb_ip(sim)}/productpage" in out
        assert f"grafana: kubectl --kubeconfig {sim.kubeconfig} -n istio-system port-forward svc/grafana 3000:3000" in out
    assert len({lb_ip(s) for s in sims}) == 3
    assert out.count("6 pods carry a ready istio-proxy") == 3
    assert out.count("Summary | print it") == 1
    assert len(re.findall(r"status_counts\W+200\W+40\b", first.stdout)) == 3, first.stdout[-3000:]
    sim = sims[0]
    assert_telemetry_flows(sim)

    # dashboards (sim-1 only): print, then start in the background and stop again
    limit = ["--limit", "sim-1"]
    state = tmp_path / "pf"
    shown = playbook(REPO / "playbooks/dashboards.yml", inventory=inv, env=env, args=limit)
    assert shown.rc == 0, str(shown)
    assert set(shown.recap) == {"sim-1"}, str(shown)
    expected = f"prometheus: kubectl --kubeconfig {sim.kubeconfig} -n istio-system port-forward svc/prometheus 9090:9090 -> http://localhost:9090"
    assert expected in " ".join(shown.stdout.split()), str(shown)
    started = playbook(REPO / "playbooks/dashboards.yml", inventory=inv, env=env, args=limit,
                       extra_vars={"dashboards_action": "start", "dashboards_state_dir": str(state),
                                   "dashboards_port_offset": 31000})
    assert started.rc == 0, str(started)
    assert sorted(p.name for p in state.glob("*.pid")) == ["grafana.pid", "jaeger.pid", "kiali.pid", "prometheus.pid"]
    stopped = playbook(REPO / "playbooks/dashboards.yml", inventory=inv, env=env, args=limit,
                       extra_vars={"dashboards_action": "stop", "dashboards_state_dir": str(state)})
    assert stopped.rc == 0, str(stopped)
    assert list(state.glob("*.pid")) == []

    removed = playbook(REPO / "playbooks/uninstall.yml", inventory=inv, env=env, args=limit)
    assert removed.rc == 0, str(removed)
    assert get(sim, "/api/v1/namespaces/bookinfo")[0] == 404
    assert get(sim, "/api/v1/namespaces/istio-ingress")[0] == 404
    assert get(sim, "/apis/apps/v1/namespaces/istio-system/deployments/istiod")[0] == 404
    # gateway before bookinfo before add-ons before the control plane
    order = [m.group(1) for m in re.finditer(r"TASK \[okemesh\.istio\.(gateway|bookinfo|addons|istio) :", removed.stdout)]
    firsts = [r for i, r in enumerate(order) if r not in order[:i]]
    assert firsts == ["gateway", "bookinfo", "addons", "istio"], str(firsts)
    # --limit is honoured: the other clusters keep their mesh
    for other in sims[1:]:
        assert get(other, "/apis/apps/v1/namespaces/istio-system/deployments/istiod")[0] == 200

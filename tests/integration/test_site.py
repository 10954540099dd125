"""site.yml, uninstall.yml and dashboards.yml end to end against kubesim (the Kubernetes API
simulator), with the project's sim inventories: one cluster, then three clusters in parallel.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubesim.launcher import start as start_kubesim

REPO = Path(__file__).resolve().parents[2]

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
    assert status == 200, svc
    return svc["status"]["loadBalancer"]["ingress"][0]["ip"]


def test_site_converges_prints_summary_is_idempotent_and_uninstalls(kubesim, playbook, tmp_path):
    env = sim_env({"OKEMESH_SIM_KUBECONFIG": kubesim}, tmp_path)
    inv = REPO / "inventories/sim/hosts.yml"

    first = playbook(REPO / "site.yml", inventory=inv, env=env)
    assert first.rc == 0, str(first)
    assert first.changed("sim-1") > 0
    out = " ".join(first.stdout.split())
    assert "TARGET IS KUBESIM, the local Kubernetes API simulator" in out
    assert f"bookinfo: http://{lb_ip(kubesim)}/productpage" in out
    assert f"grafana: kubectl --kubeconfig {kubesim.kubeconfig} -n istio-system port-forward svc/grafana 3000:3000" in out
    assert "6 pods carry a ready istio-proxy" in out
    assert out.count("Summary | print it") == 1

    second = playbook(REPO / "site.yml", inventory=inv, env=env)
    assert second.rc == 0, str(second)
    assert second.changed("sim-1") == 0, str(second)

    # dashboards: print, then start in the background and stop again
    state = tmp_path / "pf"
    shown = playbook(REPO / "playbooks/dashboards.yml", inventory=inv, env=env)
    assert shown.rc == 0, str(shown)
    expected = f"prometheus: kubectl --kubeconfig {kubesim.kubeconfig} -n istio-system port-forward svc/prometheus 9090:9090 -> http://localhost:9090"
    assert expected in " ".join(shown.stdout.split()), str(shown)
    started = playbook(REPO / "playbooks/dashboards.yml", inventory=inv, env=env,
                       extra_vars={"dashboards_action": "start", "dashboards_state_dir": str(state),
                                   "dashboards_port_offset": 31000})
    assert started.rc == 0, str(started)
    assert sorted(p.name for p in state.glob("*.pid")) == ["grafana.pid", "jaeger.pid", "kiali.pid", "prometheus.pid"]
    stopped = playbook(REPO / "playbooks/dashboards.yml", inventory=inv, env=env,
                       extra_vars={"dashboards_action": "stop", "dashboards_state_dir": str(state)})
    assert stopped.rc == 0, str(stopped)
    assert list(state.glob("*.pid")) == []

    removed = playbook(REPO / "playbooks/uninstall.yml", inventory=inv, env=env)
    assert removed.rc == 0, str(removed)
    assert get(kubesim, "/api/v1/namespaces/bookinfo")[0] == 404
    assert get(kubesim, "/api/v1/namespaces/istio-ingress")[0] == 404
    assert get(kubesim, "/apis/apps/v1/namespaces/istio-system/deployments/istiod")[0] == 404
    # gateway before bookinfo before add-ons before the control plane
    order = [m.group(1) for m in re.finditer(r"TASK \[okemesh\.istio\.(gateway|bookinfo|addons|istio) :", removed.stdout)]
    firsts = [r for i, r in enumerate(order) if r not in order[:i]]
    assert firsts == ["gateway", "bookinfo", "addons", "istio"], firsts


def test_three_clusters_converge_in_parallel(playbook, tmp_path):
    sims = {f"OKEMESH_SIM_KUBECONFIG_{n}": start_kubesim(tmp_path / f"sim-{n}") for n in (1, 2, 3)}
    try:
        r = playbook(REPO / "site.yml", inventory=REPO / "inventories/sim/three-clusters.yml", env=sim_env(sims, tmp_path))
        assert r.rc == 0, str(r)
        assert set(r.recap) == {"sim-1", "sim-2", "sim-3"}
        out = " ".join(r.stdout.split())
        for n, sim in enumerate(sims.values(), start=1):
            assert r.failed(f"sim-{n}") == 0
            assert f"cluster: sim-{n} (kubeconfig {sim.kubeconfig})" in out
            assert f"bookinfo: http://{lb_ip(sim)}/productpage" in out
        assert len({lb_ip(s) for s in sims.values()}) == 3
    finally:
        for sim in sims.values():
            sim.stop()

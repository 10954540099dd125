"""Role okemesh.istio.addons against kubesim (the project's Kubernetes API simulator) with the
project's stand-in samples/addons: install, idempotency, check mode, toggles that converge,
exposure through the ingress gateway, removal, and the bounded waits.

Every assertion reads the cluster back (kubectl) or the role's addons_dashboards output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.fixtures.stage_istio_release import staged_for_tests
from tests.support import kubectl_json, run

REPO = Path(__file__).resolve().parents[2]
RELEASE = staged_for_tests()
PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "addons.yml"

pytestmark = pytest.mark.slow


def get(kubesim, *args: str) -> dict:
    return kubectl_json(kubesim, "get", *args)


def names(kubesim, *args: str) -> set[str]:
    return {o["metadata"]["name"] for o in get(kubesim, *args)["items"]}


def apply_role(playbook, kubesim, tmp_path: Path, *, check: bool = False, **overrides):
    extra = {
        "ansible_python_interpreter": sys.executable,
        "okemesh_kubeconfig": kubesim.kubeconfig,
        "istio_release_dir": str(RELEASE),
        "addons_wait_timeout": 60,
        "addons_test_output": str(tmp_path / "dashboards.json"),
    }
    extra.update(overrides)
    return playbook(PLAYBOOK, extra_vars=extra, check=check)


def dashboards(tmp_path: Path) -> dict[str, dict]:
    return {d["name"]: d for d in json.loads((tmp_path / "dashboards.json").read_text())}


def install_istio_crds(kubesim) -> None:
    """The Istio CRDs (what the exposure objects need), straight from the stand-in base chart."""
    run(kubesim, "helm", "install", "istio-base", str(RELEASE / "manifests" / "charts" / "base"),
        "-n", "istio-system", "--create-namespace", "--wait")


def test_default_addons_check_mode_install_idempotent(kubesim, tmp_path, playbook):
    result = apply_role(playbook, kubesim, tmp_path, check=True)
    assert result.rc == 0, str(result)
    assert result.changed() > 0
    assert "istio-system" not in names(kubesim, "namespaces")

    result = apply_role(playbook, kubesim, tmp_path)
    assert result.rc == 0, str(result)
    deployments = {d["metadata"]["name"]: d for d in get(kubesim, "-n", "istio-system", "deployments")["items"]}
    assert set(deployments) == {"prometheus", "grafana", "jaeger", "kiali"}
    assert all(d["status"].get("availableReplicas", 0) >= 1 for d in deployments.values())
    services = {s["metadata"]["name"]: s for s in get(kubesim, "-n", "istio-system", "services")["items"]}
    assert {p["port"]: p["targetPort"] for p in services["tracing"]["spec"]["ports"]}[80] == 16686
    assert services["grafana"]["spec"]["ports"][0]["port"] == 3000
    assert services["kiali"]["spec"]["ports"][0]["port"] == 20001
    assert "loki" not in services
    assert names(kubesim, "statefulsets", "-A") == set()

    board = dashboards(tmp_path)
    assert list(board) == ["prometheus", "grafana", "jaeger", "kiali"]
    assert board["grafana"] == {
        "name": "grafana", "service": "grafana", "namespace": "istio-system", "port": 3000, "service_port": 3000,
        "port_forward": "kubectl -n istio-system port-forward svc/grafana 3000:3000",
        "istioctl": "istioctl dashboard grafana", "url": "http://localhost:3000", "exposed_at": ""}
    assert board["jaeger"]["port_forward"] == "kubectl -n istio-system port-forward svc/tracing 16686:80"
    assert board["kiali"]["istioctl"] == "istioctl dashboard kiali"

    result = apply_role(playbook, kubesim, tmp_path)
    assert result.rc == 0, str(result)
    assert result.changed() == 0, str(result)

    # Check mode on the installed add-ons with Grafana turned off: predicted, not done.
    result = apply_role(playbook, kubesim, tmp_path, check=True, addons_grafana_enabled=False)
    assert result.rc == 0, str(result)
    assert result.changed() >= 1, str(result)
    removal = result.stdout.split("Remove the disabled add-ons")[1].split("TASK [")[0]
    assert "changed: [localhost]" in removal
    assert "grafana" in names(kubesim, "-n", "istio-system", "deployments")


def test_toggles_converge_and_exposure(kubesim, tmp_path, playbook):
    install_istio_crds(kubesim)
    result = apply_role(playbook, kubesim, tmp_path)
    assert result.rc == 0, str(result)

    # Jaeger off, Zipkin and Loki on, every add-on exposed on its own host.
    toggled = {"addons_jaeger_enabled": False, "addons_zipkin_enabled": True, "addons_loki_enabled": True,
               "addons_expose": True, "addons_expose_domain": "mesh.example.com"}
    result = apply_role(playbook, kubesim, tmp_path, **toggled)
    assert result.rc == 0, str(result)
    assert names(kubesim, "-n", "istio-system", "deployments") == {"prometheus", "grafana", "kiali", "zipkin"}
    assert names(kubesim, "-n", "istio-system", "statefulsets") == {"loki"}
    services = names(kubesim, "-n", "istio-system", "services")
    assert "jaeger-collector" not in services          # only Jaeger defines it: removed
    assert {"zipkin", "tracing", "loki"} <= services   # also defined by Zipkin's manifest: kept
    tracing = get(kubesim, "-n", "istio-system", "service", "tracing")
    assert tracing["spec"]["selector"] == {"app": "zipkin"}

    gateways = {g["metadata"]["name"]: g for g in get(kubesim, "-n", "istio-system", "gateways.networking.istio.io")["items"]}
    assert set(gateways) == {f"{a}-gateway" for a in ("prometheus", "grafana", "kiali", "zipkin", "loki")}
    grafana_gw = gateways["grafana-gateway"]["spec"]
    assert grafana_gw["selector"] == {"istio": "ingress"}
    assert grafana_gw["servers"][0]["port"]["number"] == 80
    assert grafana_gw["servers"][0]["hosts"] == ["grafana.mesh.example.com"]
    vs = get(kubesim, "-n", "istio-system", "virtualservices.networking.istio.io", "grafana-vs")["spec"]
    assert vs["gateways"] == ["grafana-gateway"]
    assert vs["http"][0]["route"][0]["destination"] == {
        "host": "grafana.istio-system.svc.cluster.local", "port": {"number": 3000}}
    board = dashboards(tmp_path)
    assert board["grafana"]["exposed_at"] == "http://grafana.mesh.example.com"
    assert board["loki"]["istioctl"] == ""
    assert "jaeger" not in board

    result = apply_role(playbook, kubesim, tmp_path, **toggled)
    assert result.rc == 0, str(result)
    assert result.changed() == 0, str(result)

    # Port mode with the default ports, Loki off: exposure follows.
    result = apply_role(playbook, kubesim, tmp_path, **{**toggled, "addons_loki_enabled": False, "addons_expose_mode": "port"})
    assert result.rc == 0, str(result)
    gateways = {g["metadata"]["name"]: g for g in get(kubesim, "-n", "istio-system", "gateways.networking.istio.io")["items"]}
    assert "loki-gateway" not in gateways
    assert gateways["kiali-gateway"]["spec"]["servers"][0]["port"]["number"] == 15029
    assert gateways["kiali-gateway"]["spec"]["servers"][0]["hosts"] == ["*"]
    assert "loki-vs" not in names(kubesim, "-n", "istio-system", "virtualservices.networking.istio.io")

    # addons_state absent removes every add-on and its exposure.
    result = apply_role(playbook, kubesim, tmp_path, **toggled, addons_state="absent")
    assert result.rc == 0, str(result)
    assert names(kubesim, "-n", "istio-system", "deployments") == set()
    assert names(kubesim, "-n", "istio-system", "statefulsets") == set()
    assert names(kubesim, "-n", "istio-system", "gateways.networking.istio.io") == set()
    assert names(kubesim, "clusterroles", "-l", "app.kubernetes.io/name in (prometheus,kiali)") == set()
    assert json.loads((tmp_path / "dashboards.json").read_text()) == []


@pytest.mark.kubesim(never_ready_selector="app.kubernetes.io/name=grafana")
def test_bounded_wait_names_the_addon(kubesim, tmp_path, playbook):
    result = apply_role(playbook, kubesim, tmp_path, addons_wait_timeout=5, addons_jaeger_enabled=False,
                        addons_kiali_enabled=False)
    assert result.rc != 0
    assert "Not ready after 5s: grafana." in result.stdout


def test_missing_manifest_is_refused(kubesim, tmp_path, playbook):
    empty = tmp_path / "addons"
    empty.mkdir()
    result = apply_role(playbook, kubesim, tmp_path, addons_manifest_dir=str(empty))
    assert result.rc != 0
    assert f"Add-on prometheus is enabled but {empty}/prometheus.yaml does not exist" in result.stdout
    assert "istio-system" not in names(kubesim, "namespaces")

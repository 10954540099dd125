"""Role okemesh.istio.istio against kubesim (the project's Kubernetes API simulator) with the
project's stand-in charts: install, idempotency, check mode, in-place upgrade, canary by
revision, ambient, uninstall, and the Kubernetes-version preflight.

Every assertion reads the cluster back (helm list / helm get values / kubectl) after the run.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest

from tests.fixtures.stage_istio_release import staged_for_tests
from tests.support import kubectl_json, run
import yaml

REPO = Path(__file__).resolve().parents[2]
RELEASE = staged_for_tests()
PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "istio.yml"
REQUIRED_CRDS = {
    "authorizationpolicies.security.istio.io",
    "destinationrules.networking.istio.io",
    "envoyfilters.networking.istio.io",
    "gateways.networking.istio.io",
    "peerauthentications.security.istio.io",
    "requestauthentications.security.istio.io",
    "serviceentries.networking.istio.io",
    "sidecars.networking.istio.io",
    "telemetries.telemetry.istio.io",
    "virtualservices.networking.istio.io",
    "wasmplugins.extensions.istio.io",
    "workloadentries.networking.istio.io",
    "workloadgroups.networking.istio.io",
}

pytestmark = pytest.mark.slow


# --- reading the cluster back ------------------------------------------------------------

def items(kubesim, *args: str) -> list[dict]:
    return kubectl_json(kubesim, "get", *args)["items"]


def names(kubesim, *args: str) -> set[str]:
    return {o["metadata"]["name"] for o in items(kubesim, *args)}


def helm_releases(kubesim) -> dict[str, dict]:
    out = run(kubesim, "helm", "list", "-A", "-a", "-o", "json").stdout
    return {r["name"]: r for r in json.loads(out or "[]")}


def helm_values(kubesim, release: str, namespace: str = "istio-system") -> dict:
    out = run(kubesim, "helm", "get", "values", release, "-n", namespace, "-o", "json").stdout
    return json.loads(out) or {}


def istio_crds(kubesim) -> dict[str, dict]:
    return {c["metadata"]["name"]: c for c in items(kubesim, "crd") if c["spec"]["group"].endswith("istio.io")}


def established(crd: dict) -> bool:
    return any(c["type"] == "Established" and c["status"] == "True" for c in crd.get("status", {}).get("conditions", []))


def webhooks(kubesim) -> set[str]:
    return names(kubesim, "mutatingwebhookconfigurations") | names(kubesim, "validatingwebhookconfigurations")


# --- running the role --------------------------------------------------------------------

def role_vars(kubesim, tmp_path: Path, **overrides) -> dict:
    base = {
        "ansible_python_interpreter": sys.executable,
        "okemesh_kubeconfig": kubesim.kubeconfig,
        "istio_release_dir": str(RELEASE),
        "istio_work_dir": str(tmp_path / "work"),
        "istio_wait_timeout": 60,
        "istio_wait_delay": 1,
    }
    base.update(overrides)
    return base


def apply_role(playbook, kubesim, tmp_path, *, check=False, tags=None, **overrides):
    return playbook(PLAYBOOK, extra_vars=role_vars(kubesim, tmp_path, **overrides), check=check, tags=tags)


# --- tests -------------------------------------------------------------------------------

def test_install_check_mode_idempotent_then_upgrade(kubesim, tmp_path, playbook):
    extra = {"istio_mtls_mode": "STRICT", "istio_hub": "registry.example.com/istio", "istio_tag": "1.30.0-distroless",
             "istio_values": {"env.PILOT_TRACE_SAMPLING": "10"}}

    # Check mode on a fresh cluster: predicts, changes nothing.
    result = apply_role(playbook, kubesim, tmp_path, check=True, **extra)
    assert result.rc == 0, str(result)
    assert result.changed() > 0
    assert helm_releases(kubesim) == {}
    assert istio_crds(kubesim) == {}
    assert "istio-system" not in names(kubesim, "namespaces")
    assert not (tmp_path / "work").exists()

    # First run installs.
    result = apply_role(playbook, kubesim, tmp_path, **extra)
    assert result.rc == 0, str(result)
    assert result.changed() > 0
    releases = helm_releases(kubesim)
    assert {n: (r["status"], r["chart"], r["namespace"]) for n, r in releases.items()} == {
        "istio-base": ("deployed", "base-1.30.0", "istio-system"),
        "istiod": ("deployed", "istiod-1.30.0", "istio-system"),
    }
    crds = istio_crds(kubesim)
    assert REQUIRED_CRDS <= set(crds)
    assert all(established(crds[n]) for n in REQUIRED_CRDS)

    deploy = kubectl_json(kubesim, "-n", "istio-system", "get", "deployment", "istiod")
    assert deploy["status"].get("availableReplicas", 0) >= 1
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"]) == ("discovery", "registry.example.com/istio/pilot:1.30.0-distroless")
    assert {"name": "PILOT_TRACE_SAMPLING", "value": "10"} in container["env"]

    values = helm_values(kubesim, "istiod")
    assert values["hub"] == values["global"]["hub"] == "registry.example.com/istio"
    assert values["tag"] == values["global"]["tag"] == "1.30.0-distroless"

    injector = kubectl_json(kubesim, "get", "mutatingwebhookconfiguration", "istio-sidecar-injector")
    assert all(w["clientConfig"].get("caBundle") for w in injector["webhooks"])
    assert injector["webhooks"][0]["clientConfig"]["service"]["name"] == "istiod"

    pa = kubectl_json(kubesim, "-n", "istio-system", "get", "peerauthentication", "default")
    assert pa["spec"]["mtls"]["mode"] == "STRICT"

    override = tmp_path / "work" / "istiod-values.yaml"
    assert stat.S_IMODE(override.stat().st_mode) == 0o600
    written = yaml.safe_load(override.read_text())
    assert written["global"]["hub"] == "registry.example.com/istio"
    assert written["env"]["PILOT_TRACE_SAMPLING"] == "10"

    # Second run: nothing to do.
    result = apply_role(playbook, kubesim, tmp_path, **extra)
    assert result.rc == 0, str(result)
    assert result.changed() == 0, str(result)

    # Check mode on the installed cluster, with a different mTLS mode: predicts, changes nothing.
    result = apply_role(playbook, kubesim, tmp_path, check=True, **{**extra, "istio_mtls_mode": "PERMISSIVE"})
    assert result.rc == 0, str(result)
    assert result.changed() == 1, str(result)
    pa = kubectl_json(kubesim, "-n", "istio-system", "get", "peerauthentication", "default")
    assert pa["spec"]["mtls"]["mode"] == "STRICT"
    assert helm_releases(kubesim)["istiod"]["revision"] == "1"

    # Upgrade in place to an "istio-1.30.1" release directory (the stand-ins with the next version).
    newer = tmp_path / "istio-1.30.1"
    shutil.copytree(RELEASE, newer)
    for chart in (newer / "manifests" / "charts").rglob("Chart.yaml"):
        chart.write_text(chart.read_text().replace("1.30.0", "1.30.1"))

    # Charts that do not match istio_version are refused by the preflight.
    result = apply_role(playbook, kubesim, tmp_path, tags="istio_preflight", istio_release_dir=str(newer))
    assert result.rc != 0
    assert "has version 1.30.1, but istio_version is 1.30.0" in result.stdout

    result = apply_role(playbook, kubesim, tmp_path, **extra, istio_release_dir=str(newer), istio_version="1.30.1")
    assert result.rc == 0, str(result)
    releases = helm_releases(kubesim)
    assert (releases["istio-base"]["chart"], releases["istio-base"]["revision"]) == ("base-1.30.1", "2")
    assert (releases["istiod"]["chart"], releases["istiod"]["revision"]) == ("istiod-1.30.1", "2")
    deploy = kubectl_json(kubesim, "-n", "istio-system", "get", "deployment", "istiod")
    assert deploy["status"]["availableReplicas"] >= 1
    assert deploy["metadata"]["labels"]["helm.sh/chart"] == "istiod-1.30.1"


def test_canary_round_trip_then_uninstall(kubesim, tmp_path, playbook):
    result = apply_role(playbook, kubesim, tmp_path, istio_mtls_mode="PERMISSIVE")
    assert result.rc == 0, str(result)
    run(kubesim, "kubectl", "create", "namespace", "shop")
    run(kubesim, "kubectl", "label", "namespace", "shop", "istio-injection=enabled")
    web_manifest = tmp_path / "web.json"
    web_manifest.write_text(json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}))
    run(kubesim, "kubectl", "apply", "-f", str(web_manifest))

    # Step 1: the canary revision beside the default one, a tag on it, the namespace moved.
    canary = {"istio_mtls_mode": "PERMISSIVE", "istio_revision": "canary",
              "istio_revision_tags": [{"name": "prod-stable", "revision": "canary"}],
              "istio_canary_namespaces": ["shop"], "istio_canary_label": "prod-stable", "istio_restart_workloads": True}
    result = apply_role(playbook, kubesim, tmp_path, **canary)
    assert result.rc == 0, str(result)
    assert {"istio-base", "istiod", "istiod-canary"} == set(helm_releases(kubesim))
    assert {"istiod", "istiod-canary"} <= names(kubesim, "-n", "istio-system", "deployments")
    assert helm_values(kubesim, "istiod-canary")["revision"] == "canary"
    mwcs = names(kubesim, "mutatingwebhookconfigurations")
    assert {"istio-sidecar-injector", "istio-sidecar-injector-canary", "istio-revision-tag-prod-stable"} <= mwcs
    tag = kubectl_json(kubesim, "get", "mutatingwebhookconfiguration", "istio-revision-tag-prod-stable")
    assert tag["metadata"]["labels"]["istio.io/rev"] == "canary"
    assert {w["clientConfig"]["service"]["name"] for w in tag["webhooks"]} == {"istiod-canary"}
    assert tag["webhooks"][0]["namespaceSelector"]["matchExpressions"][0] == {
        "key": "istio.io/rev", "operator": "In", "values": ["prod-stable"]}
    labels = kubectl_json(kubesim, "get", "namespace", "shop")["metadata"]["labels"]
    assert labels["istio.io/rev"] == "prod-stable"
    assert "istio-injection" not in labels
    web = kubectl_json(kubesim, "-n", "shop", "get", "deployment", "web")
    assert "kubectl.kubernetes.io/restartedAt" in web["spec"]["template"]["metadata"].get("annotations", {})

    # Removing the revision being installed is refused by the preflight.
    result = apply_role(playbook, kubesim, tmp_path, tags="istio_preflight", **canary, istio_remove_revisions=["canary"])
    assert result.rc != 0
    assert "does not list the revision being installed (canary)" in result.stdout

    # Step 2: make canary the default revision and remove the old one.
    done = {**canary, "istio_base_default_revision": "canary", "istio_remove_revisions": ["default"]}
    result = apply_role(playbook, kubesim, tmp_path, **done)
    assert result.rc == 0, str(result)
    assert {"istio-base", "istiod-canary"} == set(helm_releases(kubesim))
    assert names(kubesim, "-n", "istio-system", "deployments") == {"istiod-canary"}
    hooks = webhooks(kubesim)
    assert "istio-sidecar-injector" not in hooks
    assert "istio-validator-istio-system" not in hooks
    assert {"istio-sidecar-injector-canary", "istio-revision-tag-prod-stable", "istiod-default-validator"} <= hooks
    validator = kubectl_json(kubesim, "get", "validatingwebhookconfiguration", "istiod-default-validator")
    assert validator["webhooks"][0]["clientConfig"]["service"]["name"] == "istiod-canary"

    result = apply_role(playbook, kubesim, tmp_path, **done)
    assert result.rc == 0, str(result)
    assert result.changed() == 0, str(result)

    # Uninstall. Check mode first: predicted, nothing removed.
    result = apply_role(playbook, kubesim, tmp_path, check=True, istio_state="absent", istio_purge_crds=True)
    assert result.rc == 0, str(result)
    assert result.changed() > 0
    assert {"istio-base", "istiod-canary"} == set(helm_releases(kubesim))
    assert REQUIRED_CRDS <= set(istio_crds(kubesim))

    result = apply_role(playbook, kubesim, tmp_path, istio_state="absent", istio_purge_crds=True,
                        istio_delete_namespace=True)
    assert result.rc == 0, str(result)
    assert helm_releases(kubesim) == {}
    assert not {h for h in webhooks(kubesim) if h.startswith("istio")}
    assert istio_crds(kubesim) == {}
    assert "istio-system" not in names(kubesim, "namespaces")
    assert not items(kubesim, "deployments", "-A", "-l", "app=istiod")


def test_ambient_profile(kubesim, tmp_path, playbook):
    result = apply_role(playbook, kubesim, tmp_path, istio_profile="ambient", istio_hub="registry.example.com/istio")
    assert result.rc == 0, str(result)
    releases = helm_releases(kubesim)
    assert {n: r["chart"] for n, r in releases.items()} == {
        "istio-base": "base-1.30.0", "istiod": "istiod-1.30.0", "istio-cni": "cni-1.30.0", "ztunnel": "ztunnel-1.30.0"}
    assert helm_values(kubesim, "istiod")["profile"] == "ambient"
    assert helm_values(kubesim, "istio-cni")["profile"] == "ambient"
    daemonsets = {d["metadata"]["name"]: d for d in items(kubesim, "-n", "istio-system", "daemonsets")}
    assert set(daemonsets) == {"istio-cni-node", "ztunnel"}
    ztunnel_image = daemonsets["ztunnel"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert ztunnel_image == "registry.example.com/istio/ztunnel:1.30.0"

    result = apply_role(playbook, kubesim, tmp_path, istio_profile="ambient", istio_hub="registry.example.com/istio")
    assert result.rc == 0, str(result)
    assert result.changed() == 0, str(result)

    result = apply_role(playbook, kubesim, tmp_path, istio_state="absent")
    assert result.rc == 0, str(result)
    assert helm_releases(kubesim) == {}
    assert not items(kubesim, "-n", "istio-system", "daemonsets")


@pytest.mark.kubesim(kubernetes_version="v1.29.4")
def test_unsupported_kubernetes_version(kubesim, tmp_path, playbook):
    result = apply_role(playbook, kubesim, tmp_path, tags="istio_preflight")
    assert result.rc != 0
    assert "Kubernetes v1.29.4 is outside the range Istio 1.30 supports (1.32 to 1.36)" in result.stdout

    result = apply_role(playbook, kubesim, tmp_path, tags="istio_preflight", istio_k8s_version_check="warn")
    assert result.rc == 0, str(result)
    assert "WARNING: Kubernetes v1.29.4 is outside the range" in result.stdout
    assert helm_releases(kubesim) == {}

    # 1.28 supports 1.30 to 1.34 per the role's table: 1.29 is still outside.
    result = apply_role(playbook, kubesim, tmp_path, tags="istio_preflight", istio_version="1.28.2",
                        istio_chart_version_check=False)
    assert result.rc != 0
    assert "(1.30 to 1.34)" in result.stdout


def test_version_read_by_prereqs_for_the_same_cluster_is_not_read_again(kubesim, tmp_path, playbook):
    """prereqs publishes okemesh_kubernetes_version and the cluster it is of; the istio preflight checks that
    version without a second discovery, and reads the cluster itself when the version is of another one."""
    said = {"okemesh_kubernetes_version": "v1.29.4",  # kubesim answers a supported version: the fact decides
            "okemesh_kubernetes_version_of": {"kubeconfig": kubesim.kubeconfig, "context": ""}}
    result = apply_role(playbook, kubesim, tmp_path, tags="istio_preflight", **said)
    assert result.rc != 0
    assert "Kubernetes v1.29.4 is outside the range Istio 1.30 supports" in result.stdout
    assert re.search(r"Read the cluster's Kubernetes version\] \*+\nskipping", result.stdout), result.stdout

    other = {**said, "okemesh_kubernetes_version_of": {"kubeconfig": str(tmp_path / "another-cluster"), "context": ""}}
    result = apply_role(playbook, kubesim, tmp_path, tags="istio_preflight", **other)
    assert result.rc == 0, str(result)
    assert re.search(r"Read the cluster's Kubernetes version\] \*+\nok", result.stdout), result.stdout

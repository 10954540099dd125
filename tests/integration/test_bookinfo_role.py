"""The bookinfo role against kubesim (the Kubernetes API simulator): namespace labels, the
application, traffic profiles that converge when switched, idempotence and check mode.

Cluster state is read back from the simulator's API after each run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import get, helm_env

PLAYBOOKS = Path(__file__).parent / "playbooks"
NS = "bookinfo"
OWNED = "app.kubernetes.io%2Fmanaged-by%3Dokemesh.istio%2Cokemesh.istio%2Fcomponent%3Dbookinfo-traffic"
DEPLOYMENTS = {"details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1"}

pytestmark = pytest.mark.slow


def exists(sim, path: str) -> bool:
    return sim.request("GET", path)[0] == 200


def owned(sim, kind_plural: str) -> dict[str, dict]:
    body = get(sim, f"/apis/networking.istio.io/v1/namespaces/{NS}/{kind_plural}?labelSelector={OWNED}")
    return {o["metadata"]["name"]: o for o in body["items"]}


def run(playbook, sim, check: bool = False, **extra):
    return playbook(PLAYBOOKS / "bookinfo.yml", extra_vars={"okemesh_kubeconfig": sim.kubeconfig, **extra},
                    env=helm_env(sim), check=check)


def test_bookinfo_deploys_labelled_injected_and_is_idempotent(kubesim, playbook):
    first = run(playbook, kubesim)
    assert first.rc == 0, str(first)
    assert first.changed() > 0

    ns = get(kubesim, f"/api/v1/namespaces/{NS}")
    assert ns["metadata"]["labels"].get("istio-injection") == "enabled"
    assert "istio.io/rev" not in ns["metadata"]["labels"]
    deps = {d["metadata"]["name"]: d for d in get(kubesim, f"/apis/apps/v1/namespaces/{NS}/deployments")["items"]}
    assert set(deps) == DEPLOYMENTS
    assert all(d["status"].get("availableReplicas", 0) >= 1 for d in deps.values())
    svc = get(kubesim, f"/api/v1/namespaces/{NS}/services/productpage")
    assert svc["spec"]["ports"][0]["port"] == 9080
    # every pod carries the proxy (native sidecar: an init container with restartPolicy Always, or classic)
    pods = get(kubesim, f"/api/v1/namespaces/{NS}/pods")["items"]
    assert len(pods) == len(DEPLOYMENTS)
    for pod in pods:
        names = [c["name"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]]
        assert "istio-proxy" in names, pod["metadata"]["name"]
    # the injection check ran and its report was published for the summary
    assert "bookinfo_injection_report" in first.stdout or "injection" in first.stdout
    assert not owned(kubesim, "virtualservices") and not owned(kubesim, "destinationrules")

    second = run(playbook, kubesim)
    assert second.rc == 0, str(second)
    assert second.changed() == 0, str(second)


def test_traffic_profiles_converge_when_switched(kubesim, playbook):
    r = run(playbook, kubesim, bookinfo_traffic_profile="reviews-80-20")
    assert r.rc == 0, str(r)
    vs = owned(kubesim, "virtualservices")
    assert set(vs) == {"productpage", "reviews", "ratings", "details"}
    weights = {(d["destination"]["subset"], d.get("weight")) for d in vs["reviews"]["spec"]["http"][0]["route"]}
    assert weights == {("v1", 80), ("v2", 20)}
    drs = owned(kubesim, "destinationrules")
    assert set(drs) == {"productpage", "reviews", "ratings", "details"}
    assert "trafficPolicy" not in drs["reviews"]["spec"]
    assert [s["name"] for s in drs["reviews"]["spec"]["subsets"]] == ["v1", "v2", "v3"]

    r = run(playbook, kubesim, bookinfo_traffic_profile="ratings-delay", bookinfo_destination_rules="mtls")
    assert r.rc == 0, str(r)
    vs = owned(kubesim, "virtualservices")
    first_rule = vs["ratings"]["spec"]["http"][0]
    assert first_rule["match"] == [{"headers": {"end-user": {"exact": "jason"}}}]
    assert first_rule["fault"]["delay"]["fixedDelay"] == "7s"
    assert [d["destination"]["subset"] for d in vs["reviews"]["spec"]["http"][-1]["route"]] == ["v1"]
    assert owned(kubesim, "destinationrules")["ratings"]["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"

    r = run(playbook, kubesim, bookinfo_traffic_profile="ratings-abort", bookinfo_destination_rules="plain")
    assert r.rc == 0, str(r)
    rule = owned(kubesim, "virtualservices")["ratings"]["spec"]["http"][0]
    assert rule["fault"] == {"abort": {"percentage": {"value": 100.0}, "httpStatus": 500}}
    # apply semantics: the mTLS policy of the previous run is gone, not merged
    assert "trafficPolicy" not in owned(kubesim, "destinationrules")["ratings"]["spec"]

    r = run(playbook, kubesim, bookinfo_traffic_profile="none")
    assert r.rc == 0, str(r)
    assert owned(kubesim, "virtualservices") == {}
    assert owned(kubesim, "destinationrules") == {}


def test_revision_label_replaces_injection_label(kubesim, playbook):
    r = run(playbook, kubesim, bookinfo_injection_check=False)
    assert r.rc == 0, str(r)
    r = run(playbook, kubesim, bookinfo_revision="canary", bookinfo_injection_check=False, bookinfo_wait_timeout=20)
    labels = get(kubesim, f"/api/v1/namespaces/{NS}")["metadata"]["labels"]
    assert labels.get("istio.io/rev") == "canary"
    assert "istio-injection" not in labels
    # the label change rolled the Deployments
    dep = get(kubesim, f"/apis/apps/v1/namespaces/{NS}/deployments/reviews-v1")
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"].get("annotations", {})


def test_check_mode_changes_nothing(kubesim, playbook):
    prepared = playbook(PLAYBOOKS / "bookinfo-prepare.yml", extra_vars={"okemesh_kubeconfig": kubesim.kubeconfig},
                        env=helm_env(kubesim))
    assert prepared.rc == 0, str(prepared)
    r = playbook(PLAYBOOKS / "bookinfo.yml", extra_vars={"okemesh_kubeconfig": kubesim.kubeconfig,
                                                         "bookinfo_traffic_profile": "all-v1"},
                 env=helm_env(kubesim), check=True, tags="bookinfo_preflight,bookinfo_namespace,bookinfo_deploy,bookinfo_traffic")
    assert r.rc == 0, str(r)
    assert not exists(kubesim, f"/api/v1/namespaces/{NS}")
    assert not exists(kubesim, f"/apis/apps/v1/namespaces/{NS}/deployments/productpage-v1")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"bookinfo_traffic_profile": "reviews-60-40"}, "bookinfo_traffic_profile must be one of"),
        ({"bookinfo_traffic_profile": "all-v1", "bookinfo_destination_rules": "none"}, "only\nthe DestinationRules define"),
        ({"bookinfo_namespace": "default"}, "not\n'default'"),
    ],
)
def test_preflight_rejects_bad_settings(kubesim, playbook, extra, message):
    r = playbook(PLAYBOOKS / "bookinfo.yml", extra_vars={"okemesh_kubeconfig": kubesim.kubeconfig, **extra},
                 env=helm_env(kubesim), tags="bookinfo_preflight")
    assert r.rc != 0
    flat = " ".join(r.stdout.split())
    assert " ".join(message.split()) in flat, str(r)

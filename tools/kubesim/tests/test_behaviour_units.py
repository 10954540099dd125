"""Fast checks of the kubesim behaviour half: pure decisions, and the controllers driven in-process
over the real Store (no HTTP server, no worker thread: the test pumps ``Runtime.run_once``)."""

from __future__ import annotations

import threading
import time
import types

import pytest
from kubesim.testing import injector_webhook, istiod
from kubesim.behaviour.runtime import DEPLOYMENTS, PODS, REPLICASETS, Runtime
from kubesim.settings import Settings
from kubesim.api.store import Store

from kubesim.behaviour import CONTROLLERS, common, ingress, istio_injector, nodes


def hook(name, rev="default", tag=None):
    labels = {"istio.io/rev": rev}
    if tag:
        labels["istio.io/tag"] = tag
    return {"metadata": {"name": name, "labels": labels}}


DEFAULT = hook("istio-sidecar-injector")
CANARY = hook("istio-sidecar-injector-canary", "canary")
TAG_PROD = hook("istio-revision-tag-prod", "canary", "prod")
TAG_DEFAULT = hook("istio-revision-tag-default", "canary", "default")


@pytest.mark.parametrize(("ns", "pod", "ann", "hooks", "want"), [
    ({"istio-injection": "enabled"}, {}, {}, [], None),                                  # no webhook, no injection
    ({"istio-injection": "enabled"}, {}, {}, [DEFAULT], "default"),
    ({"istio-injection": "enabled"}, {}, {}, [CANARY], None),                            # no default-revision injector
    ({"istio-injection": "enabled"}, {}, {}, [DEFAULT, CANARY, TAG_DEFAULT], "canary"),  # the default tag wins
    ({"istio-injection": "disabled"}, {"sidecar.istio.io/inject": "true"}, {}, [DEFAULT], None),
    ({"istio-injection": "enabled", "istio.io/rev": "canary"}, {}, {}, [DEFAULT, CANARY], "default"),  # istio-injection takes precedence
    ({"istio.io/rev": "canary"}, {}, {}, [DEFAULT, CANARY], "canary"),
    ({"istio.io/rev": "prod"}, {}, {}, [DEFAULT, CANARY, TAG_PROD], "canary"),
    ({"istio.io/rev": "stable"}, {}, {}, [DEFAULT, CANARY], None),
    ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "false"}, {}, [DEFAULT], None),
    ({"istio-injection": "enabled"}, {}, {"sidecar.istio.io/inject": "false"}, [DEFAULT], None),
    ({}, {"sidecar.istio.io/inject": "true"}, {}, [DEFAULT], "default"),                # object selector
    ({}, {"istio.io/rev": "canary"}, {}, [DEFAULT, CANARY], "canary"),
    ({}, {}, {}, [DEFAULT], None),
    ({"istio.io/dataplane-mode": "ambient"}, {}, {}, [DEFAULT], None),
])
def test_choose_revision(ns, pod, ann, hooks, want):
    assert istio_injector.choose_revision(ns, pod, ann, hooks) == want


def test_template_hash_is_stable_and_ignores_hash_labels():
    t = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "x", "image": "a:1"}]}}
    h = common.template_hash(t)
    assert h == common.template_hash({"spec": t["spec"], "metadata": {"labels": {"app": "x", "pod-template-hash": h}}})
    assert set(h) <= set(common.SAFE)
    assert h != common.template_hash({**t, "spec": {"containers": [{"name": "x", "image": "a:2"}]}})


@pytest.mark.parametrize(("pattern", "host", "want"), [
    ("*", "a.b", True), ("bookinfo/*", "x", True), ("*.example.com", "shop.example.com", True),
    ("*.example.com", "example.org", False), ("a.example.com", "A.example.com", True),
])
def test_gateway_host_match(pattern, host, want):
    assert ingress._host_match(pattern, host) is want


# ---------------------------------------------------------------------------------- in-process
@pytest.fixture
def rt():
    settings = Settings()
    settings.update({"pod_ready_delay": 0.0, "lb_serve": False})
    store = Store(settings)
    for ns in ("default", "istio-system", "mesh"):
        store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        # what the service-account controller does (cluster.py); ServiceAccount admission needs it
        store.create("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}})
    cluster = types.SimpleNamespace(store=store, settings=settings, registry=store.registry, stop_event=threading.Event(), url="")
    runtime = Runtime(cluster)
    for controller in CONTROLLERS:
        controller.register(runtime)
    store.add_listener(runtime.listener)
    nodes.ensure_nodes(runtime)
    yield runtime
    runtime.stop()


def pump(rt: Runtime, until, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rt.run_once()
        if until():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def api_create(rt: Runtime, key, obj):
    """What the HTTP layer does: admission, then create."""
    return rt.store.create(key, rt.store.admit("CREATE", key, obj, None, {"dry_run": False}))


def test_in_process_deployment_and_injection(rt):
    api_create(rt, "mutatingwebhookconfigurations.admissionregistration.k8s.io", injector_webhook())
    # the injector is called only once a ready istiod has patched its CA into the webhook
    for obj in istiod():
        api_create(rt, DEPLOYMENTS if obj["kind"] == "Deployment" else "services", rt.defaulted("services", obj) if obj["kind"] == "Service" else obj)
    pump(rt, lambda: all((h.get("clientConfig") or {}).get("caBundle") for h in rt.store.get(
        "mutatingwebhookconfigurations.admissionregistration.k8s.io", None, "istio-sidecar-injector")["webhooks"]))
    rt.store.update("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mesh", "labels": {"istio-injection": "enabled"}}})
    api_create(rt, DEPLOYMENTS, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "mesh"},
                                 "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}},
                                          "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "d", "image": "d:1"}]}}}})
    pump(rt, lambda: (rt.store.get(DEPLOYMENTS, "mesh", "d").get("status") or {}).get("availableReplicas") == 3)
    pods = rt.store.list(PODS, "mesh")
    assert len(pods) == 3
    assert all([c["name"] for c in p["spec"]["initContainers"]] == ["istio-init", "istio-proxy"] for p in pods)
    assert len(rt.store.list(REPLICASETS, "mesh")) == 1
    # scale to zero: pods go, status follows
    d = rt.store.get(DEPLOYMENTS, "mesh", "d")
    d["spec"]["replicas"] = 0
    rt.store.update(DEPLOYMENTS, d)
    pump(rt, lambda: not rt.store.list(PODS, "mesh") and not (rt.store.get(DEPLOYMENTS, "mesh", "d").get("status") or {}).get("replicas"))
    assert rt.errors == 0

"""kubesim's emulation of Istio's sidecar injector, observed with kubectl."""

from __future__ import annotations

import json
import time

from kubesim.testing import (
    apply,
    istiod,
    container_names,
    deployment,
    get_json,
    injector_webhook,
    kubectl,
    namespace,
    pods,
    wait_ca_bundle,
    wait_for,
)


def _rollout(ks, ns, name):
    kubectl(ks, "-n", ns, "rollout", "status", f"deployment/{name}", "--timeout=30s")


def _istiod(rev: str | None, image: str) -> list[dict]:
    return istiod(rev or "default", image)


def test_injection_only_once_webhook_exists_native_by_default(kubesim):
    apply(kubesim, [namespace("bookinfo", {"istio-injection": "enabled"}), deployment("reviews-v1", "bookinfo", replicas=2)])
    _rollout(kubesim, "bookinfo", "reviews-v1")
    before = pods(kubesim, "bookinfo")
    assert [container_names(p) for p in before] == [(["reviews"], [])] * 2, "no injector webhook yet: no sidecar"

    apply(kubesim, [namespace("istio-system"), *_istiod(None, "registry.example.com/istio/pilot:1.29.1"), injector_webhook()])
    wait_ca_bundle(kubesim)     # the injector is called once istiod is ready and has patched its CA in
    # pods created before the webhook stay uninjected until restarted, as on a real cluster
    assert all(container_names(p) == (["reviews"], []) for p in pods(kubesim, "bookinfo"))
    kubectl(kubesim, "-n", "bookinfo", "rollout", "restart", "deployment/reviews-v1")
    _rollout(kubesim, "bookinfo", "reviews-v1")
    after = wait_for(lambda: (ps := pods(kubesim, "bookinfo")) and len(ps) == 2 and ps, what="2 new pods")
    for p in after:
        assert p["metadata"]["uid"] not in {b["metadata"]["uid"] for b in before}
        containers, inits = container_names(p)
        assert containers == ["reviews"]
        assert inits == ["istio-init", "istio-proxy"]
        proxy = p["spec"]["initContainers"][1]
        assert proxy["restartPolicy"] == "Always"
        assert proxy["image"] == "registry.example.com/istio/proxyv2:1.29.1"
        assert {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"} in proxy["ports"]
        assert proxy["readinessProbe"]["httpGet"]["port"] == 15021
        status = json.loads(p["metadata"]["annotations"]["sidecar.istio.io/status"])
        assert status["initContainers"] == ["istio-init", "istio-proxy"] and status["revision"] == "default"
        labels = p["metadata"]["labels"]
        assert labels["security.istio.io/tlsMode"] == "istio"
        assert labels["service.istio.io/canonical-name"] == "reviews-v1"
        assert labels["istio.io/rev"] == "default"
        # the simulated kubelet reports the native sidecar as a started, ready init container
        inits = {s["name"]: s for s in p["status"]["initContainerStatuses"]}
        assert inits["istio-proxy"]["ready"] is True and "running" in inits["istio-proxy"]["state"]
        assert inits["istio-init"]["state"]["terminated"]["reason"] == "Completed"
    table = kubectl(kubesim, "-n", "bookinfo", "get", "pods", "--no-headers").stdout
    assert table.count("Running") == 2

    # removing the webhook stops injection again
    kubectl(kubesim, "delete", "mutatingwebhookconfiguration", "istio-sidecar-injector")
    time.sleep(1.1)   # kubectl refuses two restarts within one second
    kubectl(kubesim, "-n", "bookinfo", "rollout", "restart", "deployment/reviews-v1")
    _rollout(kubesim, "bookinfo", "reviews-v1")
    wait_for(lambda: [container_names(p) for p in pods(kubesim, "bookinfo")] == [(["reviews"], [])] * 2, what="uninjected pods")


def test_classic_mode_opt_outs_and_pod_override(kubesim):
    kubesim.settings(sidecar_mode="classic")
    apply(kubesim, [namespace("istio-system"), *istiod(), injector_webhook()])
    wait_ca_bundle(kubesim)
    apply(kubesim, [namespace("app", {"istio-injection": "enabled"}), namespace("off", {"istio-injection": "disabled"}),
                    deployment("classic", "app"),
                    deployment("optout", "app", labels={"app": "optout", "sidecar.istio.io/inject": "false"}),
                    deployment("annopt", "app", pod_annotations={"sidecar.istio.io/inject": "false"}),
                    deployment("disabled", "off")])
    for ns, name in (("app", "classic"), ("app", "optout"), ("app", "annopt"), ("off", "disabled")):
        _rollout(kubesim, ns, name)
    classic = pods(kubesim, "app", "app=classic")[0]
    assert container_names(classic) == (["classic", "istio-proxy"], ["istio-init"])
    assert "restartPolicy" not in classic["spec"]["containers"][1]
    assert json.loads(classic["metadata"]["annotations"]["sidecar.istio.io/status"])["containers"] == ["istio-proxy"]
    assert [s["ready"] for s in classic["status"]["containerStatuses"]] == [True, True]
    assert kubectl(kubesim, "-n", "app", "get", "pod", classic["metadata"]["name"], "--no-headers").stdout.split()[1] == "2/2"
    for ns, sel in (("app", "app=optout"), ("app", "app=annopt"), ("off", "app=disabled")):
        p = pods(kubesim, ns, sel)[0]
        assert "istio-proxy" not in container_names(p)[0] + container_names(p)[1], sel
        assert "sidecar.istio.io/status" not in (p["metadata"].get("annotations") or {})

    # sidecar.istio.io/nativeSidecar: "true" on the pod overrides the simulator's classic default
    apply(kubesim, deployment("native", "app", pod_annotations={"sidecar.istio.io/nativeSidecar": "true"}))
    _rollout(kubesim, "app", "native")
    assert container_names(pods(kubesim, "app", "app=native")[0]) == (["native"], ["istio-init", "istio-proxy"])

    # server-side dry run goes through the injector without creating anything
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dry", "namespace": "app"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    out = kubectl(kubesim, "apply", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod))
    assert "istio-proxy" in [c["name"] for c in json.loads(out.stdout)["spec"]["containers"]]
    assert kubectl(kubesim, "-n", "app", "get", "pod", "dry", check=False).returncode != 0


def test_revisions_tags_and_ambient(kubesim):
    apply(kubesim, [namespace("istio-system"),
                    *_istiod("canary", "docker.io/istio/pilot:1.30.1"),
                    injector_webhook("istio-sidecar-injector-canary", rev="canary"),
                    injector_webhook("istio-revision-tag-prod-stable", rev="canary", tag="prod-stable"),
                    namespace("rev", {"istio.io/rev": "canary"}),
                    namespace("tagged", {"istio.io/rev": "prod-stable"}),
                    namespace("norev", {"istio.io/rev": "stable"}),
                    namespace("default-label", {"istio-injection": "enabled"}),
                    namespace("mesh-ambient", {"istio.io/dataplane-mode": "ambient"}),
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio-sidecar-injector-canary", "namespace": "istio-system"},
                     "data": {"values": json.dumps({"global": {"hub": "myregistry.example/istio", "tag": "1.30.1-custom", "proxy": {"image": "proxyv2"}}})}}])
    wait_ca_bundle(kubesim, "istio-sidecar-injector-canary")
    wait_ca_bundle(kubesim, "istio-revision-tag-prod-stable")
    for ns in ("rev", "tagged", "norev", "default-label", "mesh-ambient"):
        apply(kubesim, deployment("app", ns))
    for ns in ("rev", "tagged", "norev", "default-label", "mesh-ambient"):
        _rollout(kubesim, ns, "app")

    for ns in ("rev", "tagged"):
        p = pods(kubesim, ns)[0]
        status = json.loads(p["metadata"]["annotations"]["sidecar.istio.io/status"])
        assert status["revision"] == "canary", ns
        assert p["metadata"]["labels"]["istio.io/rev"] == "canary"
        proxy = next(c for c in p["spec"]["initContainers"] if c["name"] == "istio-proxy")
        assert proxy["image"] == "myregistry.example/istio/proxyv2:1.30.1-custom", "image from the revision's injector values"
    # no injector for revision "stable"; istio-injection=enabled has no default-revision webhook here
    for ns in ("norev", "default-label"):
        assert "sidecar.istio.io/status" not in (pods(kubesim, ns)[0]["metadata"].get("annotations") or {}), ns

    # ambient: no sidecar; the redirection annotation only once ztunnel runs
    amb = pods(kubesim, "mesh-ambient")[0]
    assert container_names(amb) == (["app"], [])
    assert "ambient.istio.io/redirection" not in (amb["metadata"].get("annotations") or {})
    apply(kubesim, {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ztunnel", "namespace": "istio-system"},
                    "spec": {"selector": {"matchLabels": {"app": "ztunnel"}},
                             "template": {"metadata": {"labels": {"app": "ztunnel"}},
                                          "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/ztunnel:1.30.1"}]}}}})
    # ambient needs no restart: the node agent redirects running pods (here: once ztunnel runs)
    amb = wait_for(lambda: [p for p in pods(kubesim, "mesh-ambient")
                            if (p["metadata"].get("annotations") or {}).get("ambient.istio.io/redirection") == "enabled"], what="ambient annotation")[0]
    assert container_names(amb) == (["app"], [])
    # ... and un-labelling the namespace takes it out of the mesh again
    kubectl(kubesim, "label", "namespace", "mesh-ambient", "istio.io/dataplane-mode-")
    wait_for(lambda: not any((p["metadata"].get("annotations") or {}).get("ambient.istio.io/redirection") for p in pods(kubesim, "mesh-ambient")),
             what="ambient annotation removed")

    # the default-revision tag makes istio-injection=enabled resolve to canary
    apply(kubesim, injector_webhook("istio-revision-tag-default", rev="canary", tag="default"))
    wait_ca_bundle(kubesim, "istio-revision-tag-default")
    kubectl(kubesim, "-n", "default-label", "rollout", "restart", "deployment/app")
    _rollout(kubesim, "default-label", "app")
    ps = wait_for(lambda: [p for p in pods(kubesim, "default-label") if "sidecar.istio.io/status" in (p["metadata"].get("annotations") or {})],
                  what="injected pod after default tag")
    assert json.loads(ps[0]["metadata"]["annotations"]["sidecar.istio.io/status"])["revision"] == "canary"


def test_gateway_template_replaces_auto_image(kubesim):
    """istio/gateway chart pods (image: auto, inject.istio.io/templates: gateway) need the injector."""
    gw = deployment("istio-ingress", "istio-ingress", labels={"app": "istio-ingress", "istio": "ingress", "sidecar.istio.io/inject": "true"},
                    pod_annotations={"inject.istio.io/templates": "gateway"},
                    containers=[{"name": "istio-proxy", "image": "auto", "ports": [{"containerPort": 80, "name": "http"}]}])
    apply(kubesim, [namespace("istio-ingress"), gw])
    p = wait_for(lambda: [p for p in pods(kubesim, "istio-ingress") if p.get("status", {}).get("containerStatuses")], what="gateway pod status")[0]
    waiting = p["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ImagePullBackOff", "image 'auto' never pulls without the injector"

    apply(kubesim, [namespace("istio-system"), *istiod(), injector_webhook()])
    wait_ca_bundle(kubesim)
    kubectl(kubesim, "-n", "istio-ingress", "rollout", "restart", "deployment/istio-ingress")
    _rollout(kubesim, "istio-ingress", "istio-ingress")
    p = [p for p in pods(kubesim, "istio-ingress") if p["status"].get("phase") == "Running"][0]
    assert container_names(p) == (["istio-proxy"], [])
    assert p["spec"]["containers"][0]["image"] == "docker.io/istio/proxyv2:1.30.0"
    assert p["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"}]
    assert get_json(kubesim, "-n", "istio-ingress", "deployment", "istio-ingress")["status"]["availableReplicas"] == 1

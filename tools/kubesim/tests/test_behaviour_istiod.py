"""kubesim's emulation of istiod's run-time duties and of the API server calling the injector webhook,
observed with the real kubectl (webhooks as Istio's charts render them: no caBundle, validators Ignore)."""

from __future__ import annotations

import base64
import json
import time

from kubesim.testing import (
    apply,
    container_names,
    deployment,
    get_json,
    injector_webhook,
    istiod,
    kubectl,
    namespace,
    pods,
    wait_ca_bundle,
    wait_for,
)

NO_ENDPOINTS = ('Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io": failed to call webhook: '
                'Post "https://istiod.istio-system.svc:443/inject?timeout=10s": no endpoints available for service "istiod"')


def validator(name: str, rev: str, service: str) -> dict:
    """A validating webhook configuration as the charts install it on a first install."""
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name, "labels": {"app": "istiod", "istio": "istiod", "istio.io/rev": rev}},
            "webhooks": [{"name": "rev.validation.istio.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                          "failurePolicy": "Ignore",
                          "clientConfig": {"service": {"name": service, "namespace": "istio-system", "path": "/validate"}},
                          "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["networking.istio.io"], "apiVersions": ["*"],
                                     "resources": ["*"]}]}]}


def hooks(ks, kind: str, name: str) -> list[dict]:
    return get_json(ks, kind, name)["webhooks"]


def ca_secret_root(ks) -> bytes:
    return base64.b64decode(get_json(ks, "-n", "istio-system", "secret", "istio-ca-secret")["data"]["ca-cert.pem"])


def test_webhooks_patched_only_once_their_revision_is_ready(kubesim):
    apply(kubesim, [namespace("istio-system"),
                    *istiod(replicas=0), *istiod("canary", replicas=0),
                    injector_webhook(), injector_webhook("istio-sidecar-injector-canary", rev="canary"),
                    injector_webhook("istio-revision-tag-prod-stable", rev="canary", tag="prod-stable"),
                    validator("istio-validator-istio-system", "default", "istiod"),
                    validator("istio-validator-canary-istio-system", "canary", "istiod-canary"),
                    validator("istiod-default-validator", "default", "istiod")])
    time.sleep(1.5)   # several reconcile passes: nothing is ready, nothing is patched
    for name in ("istio-sidecar-injector", "istio-sidecar-injector-canary", "istio-revision-tag-prod-stable"):
        assert [h["clientConfig"].get("caBundle") for h in hooks(kubesim, "mutatingwebhookconfiguration", name)] == [None], name
    assert hooks(kubesim, "validatingwebhookconfiguration", "istiod-default-validator")[0]["failurePolicy"] == "Ignore"
    assert kubectl(kubesim, "get", "configmap", "istio-ca-root-cert", check=False).returncode != 0
    assert kubectl(kubesim, "-n", "istio-system", "get", "secret", "istio-ca-secret", check=False).returncode != 0

    # the default revision becomes ready: its webhooks (and the default validator) only
    kubectl(kubesim, "-n", "istio-system", "scale", "deployment/istiod", "--replicas=1")
    injector = wait_ca_bundle(kubesim)
    root = ca_secret_root(kubesim)
    assert root.startswith(b"-----BEGIN CERTIFICATE-----")
    assert {base64.b64decode(h["clientConfig"]["caBundle"]) for h in injector["webhooks"]} == {root}
    for name in ("istio-validator-istio-system", "istiod-default-validator"):
        vwc = wait_ca_bundle(kubesim, name, kind="validatingwebhookconfiguration")
        assert [(h["failurePolicy"], base64.b64decode(h["clientConfig"]["caBundle"])) for h in vwc["webhooks"]] == [("Fail", root)]
    time.sleep(1.0)
    for name in ("istio-sidecar-injector-canary", "istio-revision-tag-prod-stable"):
        assert hooks(kubesim, "mutatingwebhookconfiguration", name)[0]["clientConfig"].get("caBundle") is None, name
    canary_validator = hooks(kubesim, "validatingwebhookconfiguration", "istio-validator-canary-istio-system")[0]
    assert (canary_validator["failurePolicy"], canary_validator["clientConfig"].get("caBundle")) == ("Ignore", None)
    secret = get_json(kubesim, "-n", "istio-system", "secret", "istio-ca-secret")
    assert secret["type"] == "istio.io/ca-root"
    assert set(secret["data"]) == {"ca-cert.pem", "ca-key.pem", "cert-chain.pem", "key.pem", "root-cert.pem"}

    # the canary revision becomes ready: its injector and the tag pointing at it, same CA (same namespace)
    kubectl(kubesim, "-n", "istio-system", "scale", "deployment/istiod-canary", "--replicas=1")
    for name in ("istio-sidecar-injector-canary", "istio-revision-tag-prod-stable"):
        assert base64.b64decode(wait_ca_bundle(kubesim, name)["webhooks"][0]["clientConfig"]["caBundle"]) == root
    vwc = wait_ca_bundle(kubesim, "istio-validator-canary-istio-system", kind="validatingwebhookconfiguration")
    assert vwc["webhooks"][0]["failurePolicy"] == "Fail"

    # a caBundle someone overwrites is put back (istiod watches its webhooks)
    kubectl(kubesim, "patch", "mutatingwebhookconfiguration", "istio-sidecar-injector", "--type=json",
            "-p", json.dumps([{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": base64.b64encode(b"other").decode()}]))
    wait_for(lambda: base64.b64decode(hooks(kubesim, "mutatingwebhookconfiguration", "istio-sidecar-injector")[0]["clientConfig"]["caBundle"]) == root,
             what="caBundle restored")


def test_root_cert_configmap_in_every_namespace_and_gateway_classes(kubesim):
    apply(kubesim, [namespace("before"), namespace("istio-system"), *istiod()])
    wait_for(lambda: kubectl(kubesim, "-n", "before", "get", "configmap", "istio-ca-root-cert", check=False).returncode == 0,
             what="istio-ca-root-cert in an existing namespace")
    root = ca_secret_root(kubesim).decode()
    cm = get_json(kubesim, "-n", "before", "configmap", "istio-ca-root-cert")
    assert cm["data"] == {"root-cert.pem": root}
    assert cm["metadata"]["labels"] == {"istio.io/config": "true"}
    have = {c["metadata"]["namespace"] for c in get_json(kubesim, "configmap", "-A", "--field-selector=metadata.name=istio-ca-root-cert")["items"]}
    assert {"default", "kube-system", "istio-system", "before"} <= have
    assert not have & {"kube-public", "kube-node-lease"}

    apply(kubesim, namespace("after"))
    wait_for(lambda: kubectl(kubesim, "-n", "after", "get", "configmap", "istio-ca-root-cert", check=False).returncode == 0,
             what="istio-ca-root-cert in a namespace created later")
    kubectl(kubesim, "-n", "before", "delete", "configmap", "istio-ca-root-cert")
    wait_for(lambda: kubectl(kubesim, "-n", "before", "get", "configmap", "istio-ca-root-cert", check=False).returncode == 0,
             what="istio-ca-root-cert put back")

    # the GatewayClasses istiod owns, once the Gateway API is served
    apply(kubesim, [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                     "metadata": {"name": "gatewayclasses.gateway.networking.k8s.io"},
                     "spec": {"group": "gateway.networking.k8s.io", "scope": "Cluster",
                              "names": {"kind": "GatewayClass", "listKind": "GatewayClassList", "plural": "gatewayclasses",
                                        "singular": "gatewayclass"},
                              "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}])
    classes = wait_for(lambda: (out := kubectl(kubesim, "get", "gatewayclasses", "-o", "json", check=False)).returncode == 0
                       and len(items := json.loads(out.stdout)["items"]) == 2 and items, what="istio GatewayClasses")
    assert {c["metadata"]["name"]: c["spec"]["controllerName"] for c in classes} == {
        "istio": "istio.io/gateway-controller", "istio-remote": "istio.io/unmanaged-gateway"}


def test_plugged_ca_in_cacerts_is_used_and_no_istio_ca_secret(kubesim):
    root = b"-----BEGIN CERTIFICATE-----\nplugged root\n-----END CERTIFICATE-----\n"
    apply(kubesim, [namespace("istio-system"),
                    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cacerts", "namespace": "istio-system"},
                     "data": {k: base64.b64encode(root).decode() for k in ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")}},
                    *istiod(), injector_webhook()])
    assert base64.b64decode(wait_ca_bundle(kubesim)["webhooks"][0]["clientConfig"]["caBundle"]) == root
    assert get_json(kubesim, "-n", "default", "configmap", "istio-ca-root-cert")["data"]["root-cert.pem"] == root.decode()
    assert kubectl(kubesim, "-n", "istio-system", "get", "secret", "istio-ca-secret", check=False).returncode != 0


def test_pod_refused_by_fail_policy_then_created_injected_once_istiod_is_ready(kubesim):
    apply(kubesim, [namespace("istio-system"), namespace("shop", {"istio-injection": "enabled"}),
                    *istiod(replicas=0), injector_webhook()])
    # a pod created directly: refused with the API server's error
    out = kubectl(kubesim, "-n", "shop", "run", "web", "--image=nginx", check=False)
    assert out.returncode != 0
    assert out.stderr.strip() == f"Error from server (InternalError): {NO_ENDPOINTS}"
    # a Deployment's ReplicaSet: FailedCreate event and ReplicaFailure condition, as kube-controller-manager records them
    apply(kubesim, deployment("web", "shop", replicas=2))
    rs = wait_for(lambda: [r for r in get_json(kubesim, "-n", "shop", "replicasets")["items"]
                           if any(c["type"] == "ReplicaFailure" for c in r.get("status", {}).get("conditions", []))],
                  what="ReplicaFailure condition")[0]
    cond = next(c for c in rs["status"]["conditions"] if c["type"] == "ReplicaFailure")
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "FailedCreate", NO_ENDPOINTS)
    events = get_json(kubesim, "-n", "shop", "events")["items"]
    failed = [e for e in events if e["reason"] == "FailedCreate" and e["involvedObject"]["name"] == rs["metadata"]["name"]]
    assert failed and failed[0]["type"] == "Warning" and failed[0]["message"] == f"Error creating: {NO_ENDPOINTS}"
    assert failed[0]["source"]["component"] == "replicaset-controller"
    assert pods(kubesim, "shop") == []
    dep = wait_for(lambda: (d := get_json(kubesim, "-n", "shop", "deployment", "web")) and
                   any(c["type"] == "ReplicaFailure" for c in d["status"].get("conditions", [])) and d, what="Deployment ReplicaFailure")
    assert next(c for c in dep["status"]["conditions"] if c["type"] == "ReplicaFailure")["message"] == NO_ENDPOINTS

    # istiod ready, webhook patched: the controller's retry creates the pods, injected; the condition goes
    kubectl(kubesim, "-n", "istio-system", "scale", "deployment/istiod", "--replicas=1")
    wait_ca_bundle(kubesim)
    ready = wait_for(lambda: len(ps := pods(kubesim, "shop")) == 2 and ps, timeout=30, what="pods created after istiod is ready")
    assert all(container_names(p)[1] == ["istio-init", "istio-proxy"] for p in ready)
    wait_for(lambda: not any(c["type"] == "ReplicaFailure" for r in get_json(kubesim, "-n", "shop", "replicasets")["items"]
                             for c in r.get("status", {}).get("conditions", [])), what="ReplicaFailure cleared")
    wait_for(lambda: not any(c["type"] == "ReplicaFailure" for c in get_json(kubesim, "-n", "shop", "deployment", "web")["status"]["conditions"]),
             what="Deployment ReplicaFailure cleared")


def test_unpatched_ca_bundle_is_untrusted_and_ignore_policy_lets_pods_in_without_sidecar(kubesim):
    hook = injector_webhook()
    hook["webhooks"][0]["failurePolicy"] = "Ignore"
    # istiod ready, but this webhook names no revision istiod serves: its caBundle is never patched
    hook["metadata"]["labels"]["istio.io/rev"] = "elsewhere"
    apply(kubesim, [namespace("istio-system"), namespace("shop", {"istio-injection": "enabled"}), *istiod()])
    wait_for(lambda: kubectl(kubesim, "-n", "istio-system", "get", "secret", "istio-ca-secret", check=False).returncode == 0,
             what="istiod's CA")
    apply(kubesim, hook)
    apply(kubesim, deployment("web", "shop"))
    kubectl(kubesim, "-n", "shop", "rollout", "status", "deployment/web", "--timeout=30s")
    assert [container_names(p) for p in pods(kubesim, "shop")] == [(["web"], [])], "Ignore: created without a sidecar"

    # with failurePolicy Fail the same untrusted webhook refuses the pod (TLS verification fails)
    kubectl(kubesim, "patch", "mutatingwebhookconfiguration", "istio-sidecar-injector", "--type=json",
            "-p", json.dumps([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Fail"}]))
    out = kubectl(kubesim, "-n", "shop", "run", "web2", "--image=nginx", check=False)
    assert out.returncode != 0
    assert out.stderr.strip().endswith('Post "https://istiod.istio-system.svc:443/inject?timeout=10s": '
                                       "tls: failed to verify certificate: x509: certificate signed by unknown authority")


def test_a_strategic_merge_patch_keeps_istiods_ca_bundle_and_explicit_nulls_are_dropped(kubesim):
    """What a helm upgrade of istiod and a re-apply of Istio's samples/addons rely on."""
    apply(kubesim, [namespace("istio-system"), *istiod(), injector_webhook()])
    before = wait_ca_bundle(kubesim)["webhooks"][0]["clientConfig"]["caBundle"]
    # webhooks merge by name (patchMergeKey=name): the patch helm computes touches one field only
    kubectl(kubesim, "patch", "mutatingwebhookconfiguration", "istio-sidecar-injector", "--type=strategic",
            "-p", json.dumps({"webhooks": [{"name": "namespace.sidecar-injector.istio.io", "reinvocationPolicy": "IfNeeded"}]}))
    hook = hooks(kubesim, "mutatingwebhookconfiguration", "istio-sidecar-injector")[0]
    assert (hook["reinvocationPolicy"], hook["clientConfig"]["caBundle"]) == ("IfNeeded", before)
    assert hook["clientConfig"]["service"]["name"] == "istiod"

    # `rollingUpdate: null` (as in samples/addons/prometheus.yaml, sent as is by the kubernetes client) is no
    # field at all: writing the same manifest again changes nothing
    dep = deployment("prometheus", "istio-system")
    dep["spec"]["strategy"] = {"type": "Recreate", "rollingUpdate": None}
    path = "/apis/apps/v1/namespaces/istio-system/deployments"
    code, first = kubesim.request("POST", path, dep)
    assert code == 201, first
    assert first["spec"]["strategy"] == {"type": "Recreate"}
    code, again = kubesim.request("PUT", f"{path}/prometheus", dep)
    assert code == 200, again
    assert again["spec"]["strategy"] == {"type": "Recreate"}
    assert again["metadata"]["generation"] == first["metadata"]["generation"] == 1

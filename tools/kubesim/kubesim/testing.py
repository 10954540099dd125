"""Test helpers for code that runs against kubesim: the real kubectl and helm binaries as
subprocesses, the kubernetes Python client, a bounded wait, and small manifest builders.

A library, as envtest is for controller-runtime: the simulator's own tests and the project's
tests/support layer import it; nothing copies it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

BIN = Path(sys.executable).parent


def run(ks: Any, tool: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 60,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a binary of the venv (kubectl, helm) with the simulator's KUBECONFIG; fail with its output."""
    exe = BIN / tool
    cmd = [str(exe) if exe.exists() else tool, *args]
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, env=ks.env(env), timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def kubectl(ks: Any, *args: str, **kw: Any) -> subprocess.CompletedProcess:
    """The real kubectl against the simulator."""
    return run(ks, "kubectl", *args, **kw)


def kubectl_json(ks: Any, *args: str) -> Any:
    return json.loads(kubectl(ks, *args, "-o", "json").stdout)


def helm(ks: Any, *args: str, **kw: Any) -> subprocess.CompletedProcess:
    """The real helm 3 against the simulator."""
    return run(ks, "helm", *args, **kw)


ISTIO_CRDS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gateways.networking.istio.io}
spec:
  group: networking.istio.io
  names: {kind: Gateway, listKind: GatewayList, plural: gateways, singular: gateway, shortNames: [gw]}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
  - {name: v1beta1, served: true, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: virtualservices.networking.istio.io}
spec:
  group: networking.istio.io
  names: {kind: VirtualService, listKind: VirtualServiceList, plural: virtualservices, singular: virtualservice, shortNames: [vs]}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
  - {name: v1beta1, served: true, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
"""


def apply(ks: Any, manifest: str | list[dict[str, Any]] | dict[str, Any]) -> None:
    if not isinstance(manifest, str):
        docs = manifest if isinstance(manifest, list) else [manifest]
        manifest = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    kubectl(ks, "apply", "-f", "-", input=manifest)


def get_json(ks: Any, *args: str) -> dict[str, Any]:
    return json.loads(kubectl(ks, "get", *args, "-o", "json").stdout)


def wait_for(fn: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def api_client(ks: Any):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=ks.kubeconfig, context=ks.context)
    # kubernetes==36.0.0 stores the kubeconfig token under api_key['authorization'] but only sends
    # api_key['BearerToken'] (kubernetes-client/python#2582, fixed in 36.0.1): bridge both spellings.
    key = api.configuration.api_key
    if "authorization" in key and "BearerToken" not in key:
        key["BearerToken"] = key["authorization"]
    return api, client


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def deployment(name: str, ns: str, *, replicas: int = 1, image: str = "docker.io/library/nginx:1.27", labels: dict[str, str] | None = None,
               port: int = 8080, pod_annotations: dict[str, str] | None = None, containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    labels = labels or {"app": name}
    tmeta: dict[str, Any] = {"labels": labels}
    if pod_annotations:
        tmeta["annotations"] = pod_annotations
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": tmeta, "spec": {"containers": containers or [
                     {"name": name.split("-")[0], "image": image, "ports": [{"containerPort": port, "name": "http"}]}]}}},
    }


def service(name: str, ns: str, selector: dict[str, str], ports: list[dict[str, Any]], type_: str = "ClusterIP") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"type": type_, "selector": selector, "ports": ports}}


def injector_webhook(name: str = "istio-sidecar-injector", rev: str = "default", tag: str | None = None) -> dict[str, Any]:
    labels = {"istio.io/rev": rev, "app": "sidecar-injector"}
    if tag:
        labels["istio.io/tag"] = tag
    sel = {"matchLabels": {"istio-injection": "enabled"}} if rev == "default" and not tag else \
        {"matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": [tag or rev]}, {"key": "istio-injection", "operator": "DoesNotExist"}]}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": labels},
        "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                      "clientConfig": {"service": {"name": "istiod" if rev == "default" else f"istiod-{rev}", "namespace": "istio-system",
                                                   "path": "/inject", "port": 443}},
                      "namespaceSelector": sel}],
    }


def istiod(rev: str = "default", image: str = "docker.io/istio/pilot:1.30.0", ns: str = "istio-system",
           replicas: int = 1, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """istiod's Deployment and Service as the istiod chart names and labels them (the pods opt out of
    injection; the Service maps the webhook port 443 to 15017). kubesim's istiod behaviour patches
    the revision's webhooks once a pod is ready."""
    name = "istiod" if rev == "default" else f"istiod-{rev}"
    labels = {"app": "istiod", "istio": "pilot", "istio.io/rev": rev}
    container: dict[str, Any] = {"name": "discovery", "image": image,
                                 "ports": [{"containerPort": 15017, "name": "https-webhooks", "protocol": "TCP"}]}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns, "labels": labels},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"istio": "pilot", "istio.io/rev": rev}},
                  "template": {"metadata": {"labels": {**labels, "sidecar.istio.io/inject": "false"}},
                               "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": labels},
         "spec": {"selector": {"app": "istiod", "istio": "pilot", "istio.io/rev": rev},
                  "ports": [{"name": "https-webhook", "port": 443, "targetPort": 15017, "protocol": "TCP"}]}},
    ]


def wait_ca_bundle(ks: Any, webhook: str = "istio-sidecar-injector", kind: str = "mutatingwebhookconfiguration",
                   timeout: float = 20.0) -> dict[str, Any]:
    """Wait until istiod has patched its CA into every webhook of ``webhook`` (then the API server can call it)."""
    def patched() -> dict[str, Any] | None:
        out = kubectl(ks, "get", kind, webhook, "-o", "json", check=False)
        if out.returncode:
            return None
        obj = json.loads(out.stdout)
        return obj if all((h.get("clientConfig") or {}).get("caBundle") for h in obj.get("webhooks") or [{}]) else None
    return wait_for(patched, timeout=timeout, what=f"caBundle in {kind} {webhook}")


def pods(ks: Any, ns: str, selector: str | None = None) -> list[dict[str, Any]]:
    args = ["pods", "-n", ns] + (["-l", selector] if selector else [])
    return get_json(ks, *args)["items"]


def container_names(pod: dict[str, Any]) -> tuple[list[str], list[str]]:
    spec = pod["spec"]
    return [c["name"] for c in spec.get("containers") or []], [c["name"] for c in spec.get("initContainers") or []]


def http_get(url: str, host: str | None = None, timeout: float = 5.0) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url)  # noqa: S310 - http:// on the simulator's loopback data path
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - simulator data path on loopback
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read().decode()

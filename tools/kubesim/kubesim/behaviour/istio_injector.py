"""kubesim: emulation of Istio's sidecar injector (a mutating admission on Pod CREATE).

Faithful to how the real webhook is selected and what it writes, without running istiod:

* active only while a MutatingWebhookConfiguration of Istio's injector exists:
  ``istio-sidecar-injector`` (default revision), ``istio-sidecar-injector-<rev>`` (revision
  ``<rev>``, from its ``istio.io/rev`` label or the name) or a revision-tag webhook labelled
  ``istio.io/tag=<tag>`` (pointing at the revision in its ``istio.io/rev`` label);
* namespace ``istio-injection=enabled`` -> the default revision (tag ``default`` first);
  ``istio.io/rev=<rev|tag>`` without ``istio-injection`` -> that revision; ``istio-injection=
  disabled`` or pod label/annotation ``sidecar.istio.io/inject: "false"`` -> no injection;
  in unlabelled namespaces the object selectors apply (pod label ``istio.io/rev`` or
  ``sidecar.istio.io/inject: "true"``);
* the proxy image comes from the revision's injector ConfigMap (``values`` -> global.hub/tag/
  proxy.image) or else from its istiod Deployment (``<hub>/pilot:<tag>`` -> ``<hub>/proxyv2:<tag>``);
* native sidecar (``istio-proxy`` in initContainers with ``restartPolicy: Always``) or classic
  (appended to containers) per the simulator setting ``sidecar_mode``; the pod annotation
  ``sidecar.istio.io/nativeSidecar`` overrides it;
* namespaces labelled ``istio.io/dataplane-mode=ambient`` get no sidecar from the ambient
  label (pods are annotated ``ambient.istio.io/redirection: enabled`` when a ztunnel DaemonSet
  runs in istio-system), unless a sidecar-injection label also selects them — as in Istio,
  a sidecar then wins and ztunnel leaves the pod alone.

The webhook is only called when the API server could reach it: its Service needs a ready
endpoint and its ``caBundle`` must hold the CA istiod serves with (istiod patches it in at run
time, ``istiod.py``). When it cannot be called, its ``failurePolicy`` decides: ``Fail`` (the
chart's injector) refuses the pod with the API server's error (``Internal error occurred: failed
calling webhook ...``), ``Ignore`` lets it in without a sidecar.

Admission only happens at create: pods that existed before a label or the webhook stay as they are.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from ..api.errors import ApiError
from .runtime import CONFIGMAPS, DAEMONSETS, DEPLOYMENTS, ENDPOINTS, MWCS, NAMESPACES, PODS, SERVICES, Runtime, controller_ref, meta

log = logging.getLogger("kubesim.injector")

ISTIO_NS = "istio-system"
DEFAULT_PROXY_IMAGE = "docker.io/istio/proxyv2:1.30.0"
INJECTOR = "istio-sidecar-injector"
WEBHOOK_SUFFIX = "sidecar-injector.istio.io"
SKIP_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "local-path-storage")
VOLUMES = ["workload-socket", "credential-socket", "workload-certs", "istio-envoy", "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"]


def injector_index(webhooks: list[dict[str, Any]]) -> tuple[str | None, set[str], dict[str, str]]:
    """From the injector webhooks: (default-webhook revision, revisions with an injector, tag -> revision)."""
    default_rev, revs, tags, _configs = _index(webhooks)
    return default_rev, revs, tags


def _index(webhooks: list[dict[str, Any]]) -> tuple[str | None, set[str], dict[str, str], dict[str, dict[str, Any]]]:
    default_rev: str | None = None
    revs: set[str] = set()
    tags: dict[str, str] = {}
    configs: dict[str, dict[str, Any]] = {}     # "rev:<rev>" / "tag:<tag>" -> the MutatingWebhookConfiguration
    for h in webhooks:
        md = meta(h)
        name = md.get("name") or ""
        labels = md.get("labels") or {}
        if labels.get("istio.io/tag"):
            tags[labels["istio.io/tag"]] = labels.get("istio.io/rev") or "default"
            configs["tag:" + labels["istio.io/tag"]] = h
        elif name == INJECTOR:
            default_rev = labels.get("istio.io/rev") or "default"
            revs.add(default_rev)
            configs.setdefault("rev:" + default_rev, h)
        elif name.startswith(INJECTOR + "-"):
            rev = labels.get("istio.io/rev") or name[len(INJECTOR) + 1:]
            revs.add(rev)
            configs["rev:" + rev] = h
    return default_rev, revs, tags, configs


def choose_revision(ns_labels: dict[str, str], pod_labels: dict[str, str], pod_annotations: dict[str, str],
                    webhooks: list[dict[str, Any]]) -> str | None:
    """The revision whose injector webhook would mutate this pod, or None (no injection)."""
    selected = select_webhook(ns_labels, pod_labels, pod_annotations, webhooks)
    return selected[0] if selected else None


def select_webhook(ns_labels: dict[str, str], pod_labels: dict[str, str], pod_annotations: dict[str, str],
                   webhooks: list[dict[str, Any]]) -> tuple[str, dict[str, Any], str] | None:
    """(revision, MutatingWebhookConfiguration, webhook name prefix) the API server would call for this pod, or None."""
    if not webhooks:
        return None
    if pod_labels.get("sidecar.istio.io/inject") == "false" or pod_annotations.get("sidecar.istio.io/inject") == "false":
        return None
    default_rev, revs, tags, configs = _index(webhooks)

    def resolve(rev: str, prefix: str) -> tuple[str, dict[str, Any], str] | None:
        if rev in tags:
            return tags[rev], configs["tag:" + rev], prefix
        if rev in revs:
            return rev, configs["rev:" + rev], prefix
        return None

    def default(prefix: str) -> tuple[str, dict[str, Any], str] | None:
        if "default" in tags:
            return tags["default"], configs["tag:default"], prefix
        if default_rev is not None:
            return default_rev, configs["rev:" + default_rev], prefix
        return None

    inj = ns_labels.get("istio-injection")
    if inj is not None:
        return default("namespace.") if inj == "enabled" else None
    if ns_labels.get("istio.io/rev"):
        return resolve(ns_labels["istio.io/rev"], "rev.namespace.")
    if pod_labels.get("istio.io/rev"):
        return resolve(pod_labels["istio.io/rev"], "rev.object.")
    if pod_labels.get("sidecar.istio.io/inject") == "true":
        return default("object.")
    return None


def _hook(config: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    """The webhook of the configuration the API server calls (None: the configuration has none)."""
    hooks = [h for h in config.get("webhooks") or [] if (h.get("name") or "").endswith(WEBHOOK_SUFFIX)] or config.get("webhooks") or []
    return next((h for h in hooks if h.get("name") == prefix + WEBHOOK_SUFFIX), hooks[0] if hooks else None)


def call_error(rt: Runtime, hook: dict[str, Any]) -> str | None:
    """Why the API server could not call this injector webhook (the text it reports), or None when it can.

    The request goes to the webhook's Service: without a ready endpoint the dial fails (kube-apiserver
    resolving the service through its endpoints); with one, TLS is verified against ``caBundle``,
    which istiod patches in at run time (``istiod.py``)."""
    cc = hook.get("clientConfig") or {}
    timeout = int(hook.get("timeoutSeconds") or 10)
    svc = cc.get("service")
    if not svc:
        return None          # a URL webhook (e.g. a remote istiod): outside this simulated cluster
    name, ns = svc.get("name", ""), svc.get("namespace", "")
    url = f"https://{name}.{ns}.svc:{int(svc.get('port') or 443)}{svc.get('path') or ''}?timeout={timeout}s"
    reason: str | None = None
    if rt.store.get(SERVICES, ns, name) is None:
        reason = f'service "{name}" not found'
    elif not any(ss.get("addresses") for ss in (rt.store.get(ENDPOINTS, ns, name) or {}).get("subsets") or []):
        reason = f'no endpoints available for service "{name}"'
    elif not _trusted(rt, ns, cc.get("caBundle") or ""):
        reason = "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    if reason is None:
        return None
    return f'failed calling webhook "{hook.get("name", "")}": failed to call webhook: Post "{url}": {reason}'


def _trusted(rt: Runtime, ns: str, bundle: str) -> bool:
    """Does the caBundle hold the root istiod in ``ns`` serves with? (Any bundle, when istiod made no CA there.)"""
    if not bundle:
        return False
    try:
        pem = base64.b64decode(bundle)
    except ValueError:
        return False
    roots = []
    for secret, key in (("cacerts", "root-cert.pem"), ("istio-ca-secret", "ca-cert.pem")):
        obj = rt.store.get("secrets", ns, secret)
        if obj is not None:
            try:
                roots.append(base64.b64decode((obj.get("data") or {}).get(key) or ""))
            except ValueError:
                continue
    roots = [r for r in roots if r]
    return not roots or any(r.strip() in pem for r in roots)


def proxy_image(rt: Runtime, rev: str) -> str:
    suffix = "" if rev == "default" else f"-{rev}"
    cm = rt.store.get(CONFIGMAPS, ISTIO_NS, INJECTOR + suffix)
    if cm:
        try:
            values = json.loads((cm.get("data") or {}).get("values") or "{}")
        except ValueError:
            values = {}
        g = values.get("global") or {}
        hub, tag = g.get("hub"), g.get("tag")
        image = (g.get("proxy") or {}).get("image") or "proxyv2"
        if "/" in str(image):
            return str(image)
        if hub and tag not in (None, ""):
            variant = g.get("variant")
            return f"{hub}/{image}:{tag}" + (f"-{variant}" if variant else "")
    dep = rt.store.get(DEPLOYMENTS, ISTIO_NS, "istiod" + suffix)
    if dep is None:
        for d in rt.store.list(DEPLOYMENTS, ISTIO_NS, label_selector="app=istiod"):
            if ((meta(d).get("labels") or {}).get("istio.io/rev") or "default") == rev:
                dep = d
                break
    if dep is not None:
        for c in (((dep.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []:
            if c.get("name") == "discovery" and c.get("image"):
                img = c["image"]
                repo, sep, tag = img.rpartition(":")
                if sep and "/" not in tag:
                    base = repo.rsplit("/", 1)
                    hub = base[0] if len(base) == 2 else "docker.io/istio"
                    return f"{hub}/proxyv2:{tag}"
    return DEFAULT_PROXY_IMAGE


def _workload_name(pod: dict[str, Any]) -> str:
    md = meta(pod)
    labels = md.get("labels") or {}
    for k in ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app"):
        if labels.get(k):
            return labels[k]
    ref = controller_ref(pod)
    if ref:
        name = ref.get("name", "")
        if ref.get("kind") == "ReplicaSet" and labels.get("pod-template-hash") and name.endswith("-" + labels["pod-template-hash"]):
            return name[: -len(labels["pod-template-hash"]) - 1]
        return name
    return md.get("name") or (md.get("generateName") or "").rstrip("-")


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def sidecar_containers(image: str, rev: str, pod: dict[str, Any], native: bool, cni: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    workload = _workload_name(pod)
    ca = "istiod" + ("" if rev == "default" else f"-{rev}")
    init: dict[str, Any]
    if cni:
        init = {"name": "istio-validation", "image": image,
                "args": ["istio-iptables", "--validation-mode", "--log_output_level=default:info"]}
    else:
        init = {"name": "istio-init", "image": image,
                "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*",
                         "-d", "15090,15021,15020", "--log_output_level=default:info"]}
    init.update({
        "imagePullPolicy": "IfNotPresent",
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                            "privileged": False, "readOnlyRootFilesystem": False, "runAsGroup": 0, "runAsNonRoot": False, "runAsUser": 0},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    })
    proxy: dict[str, Any] = {
        "name": "istio-proxy",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning",
                 "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
        "env": [
            {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
            {"name": "CA_ADDR", "value": f"{ca}.{ISTIO_NS}.svc:15012"},
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("INSTANCE_IP", "status.podIP"),
            _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
            _field_env("HOST_IP", "status.hostIP"),
            {"name": "ISTIO_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}},
            {"name": "PROXY_CONFIG", "value": "{}\n"},
            {"name": "ISTIO_META_POD_PORTS", "value": json.dumps(
                [p for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []], separators=(",", ":"))},
            {"name": "ISTIO_META_APP_CONTAINERS", "value": ",".join(c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or [])},
            {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
            _field_env("ISTIO_META_NODE_NAME", "spec.nodeName"),
            {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
            {"name": "ISTIO_META_WORKLOAD_NAME", "value": workload},
            {"name": "ISTIO_META_MESH_ID", "value": "cluster.local"},
            {"name": "TRUST_DOMAIN", "value": "cluster.local"},
        ],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {"failureThreshold": 4, "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                           "periodSeconds": 15, "successThreshold": 1, "timeoutSeconds": 3},
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "privileged": False,
                            "readOnlyRootFilesystem": True, "runAsGroup": 1337, "runAsNonRoot": True, "runAsUser": 1337},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
            {"mountPath": "/var/run/secrets/credential-uds", "name": "credential-socket"},
            {"mountPath": "/var/run/secrets/workload-spiffe-credentials", "name": "workload-certs"},
            {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
            {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
            {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
            {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
            {"mountPath": "/etc/istio/pod", "name": "istio-podinfo"},
        ],
    }
    if native:
        proxy["restartPolicy"] = "Always"
        proxy["startupProbe"] = {"failureThreshold": 600, "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                                 "periodSeconds": 1, "successThreshold": 1, "timeoutSeconds": 3}
    return init, proxy


def _volumes() -> list[dict[str, Any]]:
    return [
        {"name": "workload-socket", "emptyDir": {}},
        {"name": "credential-socket", "emptyDir": {}},
        {"name": "workload-certs", "emptyDir": {}},
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istio-data", "emptyDir": {}},
        {"name": "istio-podinfo", "downwardAPI": {"defaultMode": 420, "items": [
            {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}}]}},
        {"name": "istio-token", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
        {"name": "istiod-ca-cert", "configMap": {"defaultMode": 420, "name": "istio-ca-root-cert"}},
    ]


def _truthy(v: str | None) -> bool | None:
    if v is None:
        return None
    return v.strip().lower() in ("true", "1", "yes", "y", "on")


def inject(rt: Runtime, pod: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
    """Mutate ``pod`` as Istio's injector webhook would; returns it (no side effects)."""
    md = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    ns = md.get("namespace") or ""
    if ns in SKIP_NAMESPACES or spec.get("hostNetwork"):
        return pod
    annotations = md.get("annotations") or {}
    if "sidecar.istio.io/status" in annotations:
        return pod
    webhooks = [h for h in rt.store.list(MWCS) if (meta(h).get("name") or "").startswith(INJECTOR) or (meta(h).get("labels") or {}).get("istio.io/tag")]
    nsobj = rt.store.get(NAMESPACES, None, ns) or {}
    ns_labels = meta(nsobj).get("labels") or {}
    labels = md.get("labels") or {}
    selected = select_webhook(ns_labels, labels, annotations, webhooks)
    if selected is None:
        if ns_labels.get("istio.io/dataplane-mode") == "ambient" and labels.get("istio.io/dataplane-mode") != "none" \
                and rt.store.get(DAEMONSETS, ISTIO_NS, "ztunnel") is not None:
            md.setdefault("annotations", {})["ambient.istio.io/redirection"] = "enabled"
        return pod
    rev, config, prefix = selected
    hook = _hook(config, prefix)
    if hook is None:
        return pod
    failed = call_error(rt, hook)
    if failed is not None:
        if (hook.get("failurePolicy") or "Fail") == "Ignore":
            log.warning("kubesim: Failed calling webhook, failing open %s: %s", hook.get("name"), failed)
            return pod
        # the dispatcher's answer for a webhook that could not be called under failurePolicy Fail
        raise ApiError(500, "InternalError", f"Internal error occurred: {failed}", {"causes": [{"message": failed}]})
    native_ann = _truthy(annotations.get("sidecar.istio.io/nativeSidecar"))
    native = native_ann if native_ann is not None else rt.settings.sidecar_mode == "native"
    cni = rt.store.get(DAEMONSETS, ISTIO_NS, "istio-cni-node") is not None
    image = annotations.get("sidecar.istio.io/proxyImage") or proxy_image(rt, rev)
    templates = [t.strip() for t in (annotations.get("inject.istio.io/templates") or "sidecar").split(",")]
    gateway = "gateway" in templates and "sidecar" not in templates
    init, proxy = sidecar_containers(image, rev, pod, native and not gateway, cni)
    containers = spec.setdefault("containers", [])
    user_proxy = next((c for c in containers if c.get("name") == "istio-proxy"), None)
    if user_proxy is not None:
        # as Istio does: the pod's own istio-proxy fields override the template ("image: auto" is replaced)
        merged = dict(proxy)
        merged.update({k: v for k, v in user_proxy.items() if not (k == "image" and v == "auto")})
        proxy = merged
    app = [c.get("name") for c in containers if c.get("name") != "istio-proxy"]
    inits = spec.setdefault("initContainers", [])
    inits[:] = [c for c in inits if c.get("name") not in (init["name"], "istio-proxy")]
    if gateway:
        proxy.pop("restartPolicy", None)
        containers[:] = [c for c in containers if c.get("name") != "istio-proxy"] + [proxy]
        if not inits:
            spec.pop("initContainers")
    else:
        inits.insert(0, init)
        if native:
            inits.insert(1, proxy)
            containers[:] = [c for c in containers if c.get("name") != "istio-proxy"]
        else:
            containers[:] = [c for c in containers if c.get("name") != "istio-proxy"]
            containers.append(proxy)
    have = {v.get("name") for v in spec.get("volumes") or []}
    spec.setdefault("volumes", []).extend(v for v in _volumes() if v["name"] not in have)
    if gateway:
        init_names, container_names = None, ["istio-proxy"]
    else:
        init_names = [init["name"], "istio-proxy"] if native else [init["name"]]
        container_names = None if native else ["istio-proxy"]
    status = {"initContainers": init_names, "containers": container_names,
              "volumes": VOLUMES, "imagePullSecrets": None, "revision": rev}
    ann = md.setdefault("annotations", {})
    ann["sidecar.istio.io/status"] = json.dumps(status, separators=(",", ":"))
    ann.setdefault("istio.io/rev", rev)
    if app:
        ann.setdefault("kubectl.kubernetes.io/default-container", app[0])
        ann.setdefault("kubectl.kubernetes.io/default-logs-container", app[0])
    ann.setdefault("prometheus.io/path", "/stats/prometheus")
    ann.setdefault("prometheus.io/port", "15020")
    ann.setdefault("prometheus.io/scrape", "true")
    lb = md.setdefault("labels", {})
    lb["security.istio.io/tlsMode"] = "istio"
    lb.setdefault("service.istio.io/canonical-name", _workload_name(pod))
    lb.setdefault("service.istio.io/canonical-revision", lb.get("app.kubernetes.io/version") or lb.get("version") or "latest")
    lb.setdefault("istio.io/rev", rev)
    return pod


def admission(rt: Runtime, operation: str, key: str, obj: dict[str, Any], old: dict[str, Any] | None, request: dict[str, Any]) -> dict[str, Any]:
    if key != PODS or operation != "CREATE" or not isinstance(obj, dict):
        return obj
    return inject(rt, obj, dry_run=bool((request or {}).get("dry_run")))


AMBIENT = "ambient:namespaces"      # pseudo key: istio-cni's redirection of existing pods


def _ambient_wanted(rt: Runtime, ns_labels: dict[str, str], pod: dict[str, Any]) -> bool:
    md = meta(pod)
    return (ns_labels.get("istio.io/dataplane-mode") == "ambient"
            and (md.get("labels") or {}).get("istio.io/dataplane-mode") != "none"
            and "sidecar.istio.io/status" not in (md.get("annotations") or {})
            and not (pod.get("spec") or {}).get("hostNetwork")
            and rt.cache.get(DAEMONSETS, ISTIO_NS, "ztunnel") is not None)


def reconcile_ambient(rt: Runtime, _unused: str | None, ns: str) -> None:
    """Ambient needs no restart: the CNI node agent (re)annotates running pods when the namespace label changes."""
    nsobj = rt.cache.get(NAMESPACES, None, ns)
    ns_labels = meta(nsobj).get("labels") or {} if nsobj else {}
    for pod in rt.cache.list(PODS, ns):
        if meta(pod).get("deletionTimestamp"):
            continue
        want = _ambient_wanted(rt, ns_labels, pod)
        has = (meta(pod).get("annotations") or {}).get("ambient.istio.io/redirection") == "enabled"
        if want == has:
            continue

        def fix(cur: dict[str, Any], want: bool = want) -> bool:
            ann = cur["metadata"].setdefault("annotations", {})
            if want:
                ann["ambient.istio.io/redirection"] = "enabled"
            else:
                ann.pop("ambient.istio.io/redirection", None)
            return True

        rt.modify(PODS, ns, meta(pod)["name"], fix, uid=meta(pod).get("uid"))


def _ns_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if etype == "DELETED":
        return
    before = ((old or {}).get("metadata") or {}).get("labels") or {}
    after = meta(obj).get("labels") or {}
    if old is None or before.get("istio.io/dataplane-mode") != after.get("istio.io/dataplane-mode"):
        rt.mark(AMBIENT, None, meta(obj)["name"])


def _ds_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    md = meta(obj)
    if md.get("namespace") == ISTIO_NS and md.get("name") == "ztunnel" and (etype != "MODIFIED"):
        for ns in rt.cache.list(NAMESPACES):
            if (meta(ns).get("labels") or {}).get("istio.io/dataplane-mode") == "ambient":
                rt.mark(AMBIENT, None, meta(ns)["name"])


def register(rt: Runtime) -> None:
    rt.store.add_admission(lambda op, key, obj, old, request: admission(rt, op, key, obj, old, request))
    rt.reconcilers[AMBIENT] = reconcile_ambient
    rt.fanout[NAMESPACES].append(_ns_fanout)
    rt.fanout[DAEMONSETS].append(_ds_fanout)

# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure classification of Istio sidecar injection and mesh health.

Plain dicts in (Namespaces, Pods, MutatingWebhookConfigurations, Deployments, DaemonSets,
Services, EndpointSlices / Endpoints as the API returns them), findings out.  No Ansible and
no kubernetes imports: everything here is tested directly over pod manifests.

This is a private module_utils file: it may change at any time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

PROXY = "istio-proxy"

LABEL_INJECTION = "istio-injection"
LABEL_REV = "istio.io/rev"
LABEL_TAG = "istio.io/tag"
LABEL_DATAPLANE = "istio.io/dataplane-mode"
INJECT = "sidecar.istio.io/inject"
STATUS_ANNOTATION = "sidecar.istio.io/status"
AMBIENT_REDIRECTION = "ambient.istio.io/redirection"
TEMPLATES_ANNOTATION = "inject.istio.io/templates"

ERROR = "error"
WARNING = "warning"
OK = "ok"

MARK = {OK: u"\u221a", WARNING: u"\u203c", ERROR: u"\u00d7"}  # the marks `linkerd check` prints

# Namespace modes
MODE_SIDECAR = "sidecar"  # istio-injection=enabled (default revision / tag "default")
MODE_REVISION = "revision"  # istio.io/rev=<revision or tag>
MODE_AMBIENT = "ambient"  # istio.io/dataplane-mode=ambient
MODE_DISABLED = "disabled"  # istio-injection=disabled
MODE_NONE = "none"  # no injection label

# Pod statuses, each with the severity it carries in the summary
POD_STATUSES = (
    "injected",  # ok: a ready istio-proxy (classic or native sidecar)
    "gateway",  # ok: an Istio gateway pod (the proxy is the workload)
    "ambient",  # ok: captured by ambient (ztunnel)
    "excluded",  # ok: out of the mesh on purpose (hostNetwork, opted out)
    "completed",  # ok: a finished pod (Job), nothing to check
    "not_injected",  # ok/info: the namespace does not ask for injection (see IST0102)
    "not_ready",  # proxy (error) or application containers (warning) not ready
    "restart_needed",  # no proxy although namespace + injector ask now, or an old revision
    "missing_proxy",  # no proxy and no working injector for the revision asked for
    "version_skew",  # proxy version differs from the control plane's
    "ambient_not_captured",  # ambient namespace, pod not redirected to ztunnel
)

# Finding codes.  ISTxxxx are istioctl analyze's codes (same meaning); OKMxxxx are ours.
CODES = {
    "IST0102": "NamespaceNotInjected",
    "IST0103": "PodMissingProxy",
    "IST0123": "NamespaceMultipleInjectionLabels",
    "IST0158": "PodsIstioProxyImageMismatchInNamespace",
    "OKM0001": "IstiodMissing",
    "OKM0002": "IstiodNotReady",
    "OKM0003": "InjectorWebhookMissing",
    "OKM0004": "InjectorWebhookWithoutCABundle",
    "OKM0005": "InjectorServiceMissing",
    "OKM0006": "InjectorServiceWithoutReadyEndpoints",
    "OKM0007": "ZtunnelNotReady",
    "OKM0010": "NoNamespaceAsksForInjection",
    "OKM0011": "NamespaceNotFound",
    "OKM0012": "NamespaceRevisionUnexpected",
    "OKM0013": "NamespaceAmbientAndSidecar",
    "OKM0020": "ProxyNotReady",
    "OKM0021": "ApplicationNotReady",
    "OKM0022": "PodInjectedByOtherRevision",
    "OKM0023": "AmbientPodNotCaptured",
}


# --------------------------------------------------------------------------------------
# small accessors
# --------------------------------------------------------------------------------------
def _meta(obj):
    return obj.get("metadata") or {}


def _labels(obj):
    return _meta(obj).get("labels") or {}


def _annotations(obj):
    return _meta(obj).get("annotations") or {}


def image_version(image):
    """The version part of an image reference: ``docker.io/istio/proxyv2:1.28.0-distroless`` -> ``1.28.0``.

    Returns None when the reference has no tag (digest only or none).
    """
    if not image:
        return None
    ref = image.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon <= slash:
        return None
    return normalize_version(ref[colon + 1:])


def normalize_version(version):
    """Compare versions without image variants: ``v1.28.0-distroless`` -> ``1.28.0``."""
    if not version:
        return None
    version = str(version).strip()
    if version.startswith("v") and version[1:2].isdigit():
        version = version[1:]
    for suffix in ("-distroless", "-debug"):
        if version.endswith(suffix):
            version = version[: -len(suffix)]
    return version or None


# --------------------------------------------------------------------------------------
# namespaces
# --------------------------------------------------------------------------------------
def namespace_mode(namespace):
    """Injection mode of a Namespace object.

    Returns a dict: name, mode, revision (the webhook key: "default", a revision or a tag; None
    when no sidecar injection is asked for), labels (the Istio labels set) and conflicts (list
    of one-line texts).
    """
    name = _meta(namespace).get("name")
    labels = _labels(namespace)
    injection = labels.get(LABEL_INJECTION)
    rev = labels.get(LABEL_REV)
    dataplane = labels.get(LABEL_DATAPLANE)
    istio_labels = dict((k, v) for k, v in labels.items() if k in (LABEL_INJECTION, LABEL_REV, LABEL_DATAPLANE))
    conflicts = []
    revision = None
    if injection == "enabled":
        mode, revision = MODE_SIDECAR, "default"
        if rev:
            conflicts.append("both istio-injection=enabled and istio.io/rev=%s are set; istio-injection wins" % rev)
    elif injection == "disabled":
        mode = MODE_DISABLED
        if rev:
            conflicts.append("both istio-injection=disabled and istio.io/rev=%s are set; injection is disabled" % rev)
    elif rev:
        mode, revision = MODE_REVISION, rev
    elif dataplane == "ambient":
        mode = MODE_AMBIENT
    else:
        mode = MODE_NONE
    ambient_too = dataplane == "ambient" and mode in (MODE_SIDECAR, MODE_REVISION)
    return dict(name=name, mode=mode, revision=revision, labels=istio_labels, conflicts=conflicts, ambient_and_sidecar=ambient_too)


# --------------------------------------------------------------------------------------
# control plane
# --------------------------------------------------------------------------------------
def _is_injector(mwc):
    name = _meta(mwc).get("name") or ""
    return (
        name == "istio-sidecar-injector"
        or name.startswith("istio-sidecar-injector-")
        or name.startswith("istio-revision-tag-")
        or _labels(mwc).get("app") == "sidecar-injector"
    )


def injectors(webhook_configurations):
    """Index Istio injector MutatingWebhookConfigurations by the key a namespace label uses.

    A revision webhook (``istio-sidecar-injector[-<rev>]``) is keyed by its revision, a tag
    webhook (``istio-revision-tag-<tag>``) by its tag.  Returns {key: injector dict}.
    """
    found = {}
    for mwc in webhook_configurations or []:
        if not _is_injector(mwc):
            continue
        meta = _meta(mwc)
        name = meta.get("name") or ""
        labels = _labels(mwc)
        tag = labels.get(LABEL_TAG)
        if not tag and name.startswith("istio-revision-tag-"):
            tag = name[len("istio-revision-tag-"):]
        rev = labels.get(LABEL_REV)
        if not rev:
            rev = name[len("istio-sidecar-injector-"):] if name.startswith("istio-sidecar-injector-") else "default"
        hooks = mwc.get("webhooks") or []
        services = []
        missing_ca = []
        for hook in hooks:
            client = hook.get("clientConfig") or {}
            if not client.get("caBundle"):
                missing_ca.append(hook.get("name"))
            svc = client.get("service")
            if svc:
                key = (svc.get("namespace") or "default", svc.get("name"), svc.get("port") or 443)
                if key not in services:
                    services.append(key)
        entry = dict(
            name=name,
            revision=rev,
            tag=tag,
            webhooks=len(hooks),
            ca_bundle=bool(hooks) and not missing_ca,
            webhooks_without_ca=missing_ca,
            services=["%s/%s:%s" % s for s in services],
            _services=services,
            created=meta.get("creationTimestamp"),
        )
        key = tag or rev
        # a tag webhook wins over a revision webhook of the same name: it is what the label selects
        if key not in found or tag:
            found[key] = entry
    return found


def istiod_deployments(deployments):
    """Index istiod Deployments by revision: {revision: info dict}."""
    found = {}
    for dep in deployments or []:
        meta = _meta(dep)
        name = meta.get("name") or ""
        labels = _labels(dep)
        if not (labels.get("app") == "istiod" or name == "istiod" or name.startswith("istiod-")):
            continue
        rev = labels.get(LABEL_REV) or (name[len("istiod-"):] if name.startswith("istiod-") else "default")
        spec = dep.get("spec") or {}
        status = dep.get("status") or {}
        desired = spec.get("replicas")
        desired = 1 if desired is None else int(desired)
        ready = int(status.get("readyReplicas") or 0)
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        image = None
        for container in containers:
            if container.get("name") == "discovery" or image is None:
                image = container.get("image")
        found[rev] = dict(
            name=name,
            namespace=meta.get("namespace"),
            revision=rev,
            replicas=desired,
            ready_replicas=ready,
            ready=desired > 0 and ready >= desired,
            image=image,
            version=image_version(image),
        )
    return found


def ready_endpoint_counts(endpoint_slices=None, endpoints=None):
    """{(namespace, service): number of ready addresses} from EndpointSlices and/or Endpoints."""
    counts = {}
    for eps in endpoint_slices or []:
        meta = _meta(eps)
        svc = _labels(eps).get("kubernetes.io/service-name")
        if not svc:
            continue
        key = (meta.get("namespace"), svc)
        n = 0
        for ep in eps.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is not False:
                n += len(ep.get("addresses") or []) or 1
        counts[key] = counts.get(key, 0) + n
    for ep in endpoints or []:
        meta = _meta(ep)
        key = (meta.get("namespace"), meta.get("name"))
        n = sum(len(s.get("addresses") or []) for s in ep.get("subsets") or [])
        counts[key] = max(counts.get(key, 0), n)
    return counts


# --------------------------------------------------------------------------------------
# pods
# --------------------------------------------------------------------------------------
def owner_of(pod):
    """(kind, name) of the workload that owns a pod, following the ReplicaSet to its Deployment."""
    meta = _meta(pod)
    refs = meta.get("ownerReferences") or []
    ref = None
    for candidate in refs:
        if candidate.get("controller"):
            ref = candidate
            break
    if ref is None and refs:
        ref = refs[0]
    if ref is None:
        return "pod", meta.get("name")
    kind = (ref.get("kind") or "").lower()
    name = ref.get("name") or ""
    if kind == "replicaset":
        template_hash = _labels(pod).get("pod-template-hash")
        if template_hash and name.endswith("-" + template_hash):
            return "deployment", name[: -len(template_hash) - 1]
        return "replicaset", name
    return kind or "pod", name


def _statuses(status, key):
    return dict((s.get("name"), s) for s in (status.get(key) or []))


def _find_proxy(spec):
    for container in spec.get("containers") or []:
        if container.get("name") == PROXY:
            return "classic", container
    for container in spec.get("initContainers") or []:
        if container.get("name") == PROXY and container.get("restartPolicy") == "Always":
            return "native", container
    return None, None


def _opt_out(pod):
    for source in (_labels(pod), _annotations(pod)):
        value = source.get(INJECT)
        if value is not None and str(value).lower() == "false":
            return True
    return False


def _opt_in(pod):
    for source in (_labels(pod), _annotations(pod)):
        value = source.get(INJECT)
        if value is not None and str(value).lower() == "true":
            return True
    return False


def _injected_revision(pod):
    raw = _annotations(pod).get(STATUS_ANNOTATION)
    if not raw:
        return None
    try:
        return (json.loads(raw) or {}).get("revision")
    except (ValueError, TypeError, AttributeError):
        return None


def _is_gateway(pod, proxy_kind):
    if proxy_kind != "classic":
        return False
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    templates = _annotations(pod).get(TEMPLATES_ANNOTATION) or ""
    if "gateway" in templates:
        return True
    for container in containers:
        if container.get("name") == PROXY and "router" in (container.get("args") or []):
            return True
    return len(containers) == 1 and _labels(pod).get("istio") is not None


def expected_key(pod, ns_info):
    """What the pod asks for: ("sidecar", key), ("ambient", None) or (None, None)."""
    labels = _labels(pod)
    mode = ns_info["mode"]
    if mode == MODE_DISABLED:
        return None, None
    if mode in (MODE_SIDECAR, MODE_REVISION):
        return "sidecar", ns_info["revision"]
    if labels.get(LABEL_REV):
        return "sidecar", labels.get(LABEL_REV)
    if _opt_in(pod):
        return "sidecar", "default"
    if mode == MODE_AMBIENT:
        return "ambient", None
    return None, None


def classify_pod(pod, ns_info, injector_index, istiod_index, proxy_version=None):
    """Classify one pod.

    Returns a dict: namespace, name, owner, status, severity, proxy (classic|native|None),
    proxy_ready, app_ready, proxy_version, revision, reason, and ``issues`` (list of
    (code, severity, text) for the findings aggregation).
    """
    meta = _meta(pod)
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    owner_kind, owner_name = owner_of(pod)
    proxy_kind, proxy = _find_proxy(spec)
    result = dict(
        namespace=meta.get("namespace"),
        name=meta.get("name"),
        owner="%s/%s" % (owner_kind, owner_name),
        proxy=proxy_kind,
        proxy_ready=None,
        app_ready=None,
        proxy_version=image_version(proxy.get("image")) if proxy else None,
        revision=None,
        status=None,
        severity=OK,
        reason="",
        issues=[],
    )

    def done(state, severity, reason, *issues):
        result["status"] = state
        result["severity"] = severity
        result["reason"] = reason
        result["issues"] = list(issues)
        return result

    if phase in ("Succeeded", "Failed"):
        return done("completed", OK, "completed (%s)" % phase)
    if spec.get("hostNetwork"):
        return done("excluded", OK, "hostNetwork (never injected)")
    if _opt_out(pod):
        return done("excluded", OK, "opted out (sidecar.istio.io/inject=false)")
    if _is_control_plane(pod) and proxy_kind is None:
        return done("excluded", OK, "Istio control plane (%s)" % _labels(pod).get("app"))

    container_statuses = _statuses(status, "containerStatuses")
    app_names = [c.get("name") for c in spec.get("containers") or [] if c.get("name") != PROXY]
    app_ready = all(bool(container_statuses.get(n, {}).get("ready")) for n in app_names)
    result["app_ready"] = app_ready if app_names else None
    want, key = expected_key(pod, ns_info)

    if proxy_kind:
        if proxy_kind == "classic":
            proxy_status = container_statuses.get(PROXY) or {}
        else:
            proxy_status = _statuses(status, "initContainerStatuses").get(PROXY) or {}
        proxy_ready = bool(proxy_status.get("ready"))
        result["proxy_ready"] = proxy_ready
        injected_rev = _injected_revision(pod)
        result["revision"] = injected_rev
        gateway = _is_gateway(pod, proxy_kind)
        if not proxy_ready:
            return done("not_ready", ERROR, "istio-proxy (%s) is not ready (phase %s)" % (proxy_kind, phase),
                        ("OKM0020", ERROR, "istio-proxy not ready"))
        if app_names and not app_ready:
            waiting = [n for n in app_names if not container_statuses.get(n, {}).get("ready")]
            return done("not_ready", WARNING, "application container(s) not ready: %s" % ", ".join(waiting),
                        ("OKM0021", WARNING, "application container(s) not ready"))
        # revision the namespace (or pod) asks for, resolved through tags
        if want == "sidecar" and injected_rev:
            injector = injector_index.get(key)
            wanted_rev = injector["revision"] if injector else key
            if injected_rev not in (wanted_rev, key):
                return done("restart_needed", WARNING,
                            "injected by revision %s, the namespace now asks for %s" % (injected_rev, key),
                            ("OKM0022", WARNING, "injected by revision %s, namespace asks for %s" % (injected_rev, key)))
        control = normalize_version(proxy_version)
        if not control:
            rev_for_version = injected_rev
            if rev_for_version is None and key is not None:
                injector = injector_index.get(key)
                rev_for_version = injector["revision"] if injector else key
            istiod = istiod_index.get(rev_for_version or "default")
            control = istiod["version"] if istiod else None
        if control and control != "latest" and result["proxy_version"] and result["proxy_version"] != control:
            return done("version_skew", WARNING,
                        "proxy %s differs from the control plane %s" % (result["proxy_version"], control),
                        ("IST0158", WARNING, "proxy %s, control plane %s" % (result["proxy_version"], control)))
        if gateway:
            return done("gateway", OK, "Istio gateway pod (the proxy is the workload)")
        return done("injected", OK, "%s sidecar ready" % proxy_kind)

    if want == "sidecar":
        injector = injector_index.get(key)
        if injector is None:
            return done("missing_proxy", ERROR,
                        "no istio-proxy and no injector webhook serves %s" % _describe_key(key),
                        ("IST0103", ERROR, "no istio-proxy; no injector for %s" % _describe_key(key)))
        created = meta.get("creationTimestamp")
        if created and injector.get("created") and created < injector["created"]:
            why = "created before the injector webhook existed"
        else:
            why = "created before its namespace asked for injection (or while the injector was unavailable)"
        return done("restart_needed", ERROR, "no istio-proxy: %s; restart needed" % why,
                    ("IST0103", ERROR, "no istio-proxy, restart needed"))
    if want == "ambient":
        if phase != "Running":
            return done("not_ready", WARNING, "ambient pod not running yet (phase %s)" % phase,
                        ("OKM0021", WARNING, "pod not running"))
        if _annotations(pod).get(AMBIENT_REDIRECTION) == "enabled":
            if app_names and not app_ready:
                return done("not_ready", WARNING, "application container(s) not ready",
                            ("OKM0021", WARNING, "application container(s) not ready"))
            return done("ambient", OK, "captured by ambient (ztunnel)")
        if _labels(pod).get(LABEL_DATAPLANE) == "none":
            return done("excluded", OK, "opted out of ambient (istio.io/dataplane-mode=none)")
        return done("ambient_not_captured", ERROR, "ambient namespace but the pod is not redirected to ztunnel",
                    ("OKM0023", ERROR, "not captured by ambient"))
    if ns_info["mode"] == MODE_DISABLED:
        return done("excluded", OK, "namespace has istio-injection=disabled")
    return done("not_injected", OK, "namespace does not ask for injection")


def _describe_key(key):
    if key == "default":
        return "istio-injection=enabled (default revision)"
    return "istio.io/rev=%s" % key


# --------------------------------------------------------------------------------------
# the whole check
# --------------------------------------------------------------------------------------
CONTROL_PLANE_APPS = ("istiod", "ztunnel", "istio-cni-node")


def _is_control_plane(pod):
    return _labels(pod).get("app") in CONTROL_PLANE_APPS


def _asks(pod):
    labels = _labels(pod)
    if _is_control_plane(pod):
        return False
    return _opt_in(pod) or bool(labels.get(LABEL_REV)) or _find_proxy(pod.get("spec") or {})[0] is not None


def _remedy_restart(namespace, owner):
    kind, name = owner.split("/", 1)
    if kind in ("deployment", "statefulset", "daemonset"):
        return "kubectl rollout restart %s/%s -n %s" % (kind, name, namespace)
    if kind == "replicaset":
        return "kubectl delete pod -n %s <pods of replicaset %s> (the ReplicaSet recreates them)" % (namespace, name)
    if kind == "job":
        return "delete and re-create job/%s in %s" % (name, namespace)
    return "kubectl delete pod %s -n %s, then create it again" % (name, namespace)


def check(
    namespaces,
    pods,
    webhook_configurations,
    deployments,
    services=None,
    endpoint_slices=None,
    endpoints=None,
    daemonsets=None,
    requested_namespaces=None,
    istio_namespace="istio-system",
    revision=None,
    proxy_version=None,
):
    """Run every check over API objects; returns the result dict (see the module's RETURN)."""
    injector_index = injectors(webhook_configurations)
    istiod_index = istiod_deployments([d for d in deployments or [] if _meta(d).get("namespace") == istio_namespace])
    endpoint_counts = ready_endpoint_counts(endpoint_slices, endpoints)
    service_keys = set((_meta(s).get("namespace"), _meta(s).get("name")) for s in services or [])
    ns_objects = dict((_meta(n).get("name"), n) for n in namespaces or [])
    findings = []

    def finding(code, severity, obj, message, remedy=None, namespace=None, pods_=None):
        entry = dict(code=code, name=CODES.get(code, code), severity=severity, object=obj, namespace=namespace,
                     message=message, remedy=remedy)
        if pods_ is not None:
            entry["pods"] = pods_
        findings.append(entry)
        return entry

    # ---- namespaces in scope ----------------------------------------------------------
    pods_by_ns = {}
    for pod in pods or []:
        pods_by_ns.setdefault(_meta(pod).get("namespace"), []).append(pod)
    ns_infos = {}
    explicit = requested_namespaces is not None and len(requested_namespaces) > 0
    if explicit:
        scope = list(dict.fromkeys(requested_namespaces))
    else:
        scope = []
        for name in sorted(ns_objects):
            info = namespace_mode(ns_objects[name])
            if info["mode"] in (MODE_SIDECAR, MODE_REVISION, MODE_AMBIENT):
                scope.append(name)
            elif info["mode"] == MODE_NONE and any(_asks(p) for p in pods_by_ns.get(name, [])):
                scope.append(name)
    for name in scope:
        if name not in ns_objects:
            finding("OKM0011", ERROR, "namespace/%s" % name, "namespace %s does not exist" % name,
                    "create it or fix the namespaces option", namespace=name)
            continue
        info = namespace_mode(ns_objects[name])
        info["explicit"] = explicit
        ns_infos[name] = info
        for text in info["conflicts"]:
            remedy = "kubectl label namespace %s istio.io/rev-" % name
            finding("IST0123", WARNING, "namespace/%s" % name, text, remedy, namespace=name)
        if info["ambient_and_sidecar"]:
            finding("OKM0013", WARNING, "namespace/%s" % name,
                    "namespace asks for both ambient and sidecar injection; sidecar pods bypass ztunnel",
                    "remove one of istio.io/dataplane-mode or the injection label on namespace %s" % name, namespace=name)
        if info["mode"] in (MODE_NONE, MODE_DISABLED) and explicit:
            finding("IST0102", WARNING, "namespace/%s" % name,
                    "namespace is not enabled for Istio injection (%s)" % info["mode"],
                    "kubectl label namespace %s istio-injection=enabled" % name, namespace=name)
        if revision and info["revision"] is not None:
            injector = injector_index.get(info["revision"])
            resolved = injector["revision"] if injector else info["revision"]
            if revision not in (info["revision"], resolved):
                finding("OKM0012", WARNING, "namespace/%s" % name,
                        "namespace asks for revision %s, expected %s" % (info["revision"], revision),
                        "kubectl label namespace %s istio.io/rev=%s --overwrite (and drop istio-injection)" % (name, revision),
                        namespace=name)
    if not explicit and not scope:
        finding("OKM0010", WARNING, "cluster", "no namespace asks for injection",
                "kubectl label namespace <ns> istio-injection=enabled (or istio.io/rev=<rev>)")

    # ---- pods -------------------------------------------------------------------------
    pod_results = []
    keys_needed = set()
    ambient_needed = False
    for name in scope:
        info = ns_infos.get(name)
        if info is None:
            continue
        if info["revision"]:
            keys_needed.add(info["revision"])
        if info["mode"] == MODE_AMBIENT:
            ambient_needed = True
        for pod in sorted(pods_by_ns.get(name, []), key=lambda p: _meta(p).get("name") or ""):
            if info["mode"] == MODE_NONE and not explicit and not _asks(pod):
                continue
            res = classify_pod(pod, info, injector_index, istiod_index, proxy_version)
            want, key = expected_key(pod, info)
            if want == "sidecar":
                keys_needed.add(key)
            pod_results.append(res)
    if revision:
        keys_needed.add(revision)

    # ---- control plane ----------------------------------------------------------------
    control_plane = dict(namespace=istio_namespace, istiod=sorted(istiod_index.values(), key=lambda d: d["name"]),
                         injectors=[], ztunnel=None)
    if not istiod_index:
        finding("OKM0001", ERROR, "deployment/istiod", "no istiod Deployment in %s" % istio_namespace,
                "install the istiod chart (helm install istiod istio/istiod -n %s)" % istio_namespace,
                namespace=istio_namespace)
    revisions_needed = set()
    for key in sorted(keys_needed):
        injector = injector_index.get(key)
        if injector is None:
            finding("OKM0003", ERROR, "mutatingwebhookconfiguration/%s" % _injector_name(key),
                    "no injector webhook serves %s" % _describe_key(key),
                    "install istiod for this revision or create the tag (istioctl tag set %s --revision <rev>)" % key
                    if key != "default" else
                    "install istiod without a revision, or set a default tag (istioctl tag set default --revision <rev>)")
            revisions_needed.add(key)
            continue
        revisions_needed.add(injector["revision"])
        view = dict((k, v) for k, v in injector.items() if not k.startswith("_"))
        view["key"] = key
        view["service_endpoints"] = {}
        if not injector["ca_bundle"]:
            finding("OKM0004", ERROR, "mutatingwebhookconfiguration/%s" % injector["name"],
                    "injector webhook has no CA bundle (%s)" % ", ".join(injector["webhooks_without_ca"] or ["no webhooks"]),
                    "check istiod logs: istiod patches the caBundle when it starts")
        for svc_ns, svc_name, _port in injector["_services"]:
            ready = endpoint_counts.get((svc_ns, svc_name), 0)
            view["service_endpoints"]["%s/%s" % (svc_ns, svc_name)] = ready
            if (svc_ns, svc_name) not in service_keys:
                finding("OKM0005", ERROR, "service/%s" % svc_name,
                        "injector service %s/%s does not exist" % (svc_ns, svc_name),
                        "re-install the istiod chart for revision %s" % injector["revision"], namespace=svc_ns)
            elif ready == 0:
                finding("OKM0006", ERROR, "service/%s" % svc_name,
                        "injector service %s/%s has no ready endpoints" % (svc_ns, svc_name),
                        "kubectl -n %s get pods -l app=istiod; kubectl -n %s describe deployment istiod" % (svc_ns, svc_ns),
                        namespace=svc_ns)
        control_plane["injectors"].append(view)
    if not revisions_needed and istiod_index:
        revisions_needed = set(istiod_index)
    for rev in sorted(revisions_needed):
        istiod = istiod_index.get(rev)
        if istiod is None:
            if istiod_index:
                finding("OKM0001", ERROR, "deployment/%s" % ("istiod" if rev == "default" else "istiod-" + rev),
                        "no istiod Deployment for revision %s in %s" % (rev, istio_namespace),
                        "install the istiod chart with revision=%s" % rev, namespace=istio_namespace)
            continue
        if not istiod["ready"]:
            finding("OKM0002", ERROR, "deployment/%s" % istiod["name"],
                    "istiod is not ready (%s, %d/%d)" % (istio_namespace, istiod["ready_replicas"], istiod["replicas"]),
                    "kubectl -n %s describe deployment %s" % (istio_namespace, istiod["name"]), namespace=istio_namespace)
    if ambient_needed:
        ztunnel = None
        for ds in daemonsets or []:
            if _meta(ds).get("name") == "ztunnel" and _meta(ds).get("namespace") == istio_namespace:
                status = ds.get("status") or {}
                desired = int(status.get("desiredNumberScheduled") or 0)
                ready = int(status.get("numberReady") or 0)
                ztunnel = dict(name="ztunnel", desired=desired, ready=ready, ok=desired > 0 and ready >= desired)
        control_plane["ztunnel"] = ztunnel
        if ztunnel is None or not ztunnel["ok"]:
            finding("OKM0007", ERROR, "daemonset/ztunnel",
                    "ztunnel is %s in %s" % ("missing" if ztunnel is None else "not ready (%d/%d)" % (ztunnel["ready"], ztunnel["desired"]),
                                             istio_namespace),
                    "install the cni and ztunnel charts (profile=ambient)", namespace=istio_namespace)

    # ---- pod findings, aggregated per workload ----------------------------------------
    groups = {}
    order = []
    for res in pod_results:
        for code, severity, text in res["issues"]:
            gkey = (code, res["namespace"], res["owner"])
            if gkey not in groups:
                groups[gkey] = dict(severity=severity, texts=[], pods=[])
                order.append(gkey)
            group = groups[gkey]
            if severity == ERROR:
                group["severity"] = ERROR
            if text not in group["texts"]:
                group["texts"].append(text)
            group["pods"].append(res["name"])
    skew_by_ns = {}
    for gkey in order:
        code, namespace, owner = gkey
        group = groups[gkey]
        count = len(group["pods"])
        what = "%d pod%s" % (count, "" if count == 1 else "s")
        if code == "IST0158":
            skew_by_ns.setdefault(namespace, []).append((owner, group))
            continue
        if code == "IST0103" and "restart needed" in group["texts"][0]:
            message = "%s: %s without istio-proxy, restart needed" % (owner, what)
            remedy = _remedy_restart(namespace, owner)
        elif code == "IST0103":
            message = "%s: %s without istio-proxy (%s)" % (owner, what, "; ".join(group["texts"]))
            remedy = "fix the injector webhook, then %s" % _remedy_restart(namespace, owner)
        elif code == "OKM0022":
            message = "%s: %s %s" % (owner, what, "; ".join(group["texts"]))
            remedy = _remedy_restart(namespace, owner)
        elif code == "OKM0020":
            message = "%s: istio-proxy not ready in %s" % (owner, what)
            remedy = "kubectl -n %s logs %s -c istio-proxy" % (namespace, group["pods"][0])
        elif code == "OKM0021":
            message = "%s: application not ready in %s" % (owner, what)
            remedy = "kubectl -n %s describe pod %s" % (namespace, group["pods"][0])
        elif code == "OKM0023":
            message = "%s: %s not captured by ambient" % (owner, what)
            remedy = "check istio-cni and ztunnel on the pod's node; then %s" % _remedy_restart(namespace, owner)
        else:
            message = "%s: %s %s" % (owner, what, "; ".join(group["texts"]))
            remedy = None
        finding(code, group["severity"], owner, message, remedy, namespace=namespace, pods_=group["pods"])
    for namespace in sorted(skew_by_ns):
        items = skew_by_ns[namespace]
        pods_ = [p for _o, g in items for p in g["pods"]]
        owners = [o for o, _g in items]
        detail = "; ".join(sorted(set(t for _o, g in items for t in g["texts"])))
        finding("IST0158", WARNING, "namespace/%s" % namespace,
                "%d pod%s a proxy that differs from the control plane (%s): %s" % (
                    len(pods_), " runs" if len(pods_) == 1 else "s run", detail, ", ".join(owners)),
                "; ".join(_remedy_restart(namespace, o) for o in owners), namespace=namespace, pods_=pods_)

    # ---- summary ----------------------------------------------------------------------
    by_status = dict((s, 0) for s in POD_STATUSES)
    by_namespace = {}
    for name in scope:
        info = ns_infos.get(name)
        if info is not None:
            by_namespace[name] = dict(mode=info["mode"], revision=info["revision"], pods=0, by_status={})
    for res in pod_results:
        by_status[res["status"]] = by_status.get(res["status"], 0) + 1
        entry = by_namespace[res["namespace"]]
        entry["pods"] += 1
        entry["by_status"][res["status"]] = entry["by_status"].get(res["status"], 0) + 1
    errors = sum(1 for f in findings if f["severity"] == ERROR)
    warnings = sum(1 for f in findings if f["severity"] == WARNING)
    summary = dict(
        namespaces=len(by_namespace),
        pods=len(pod_results),
        by_status=dict((k, v) for k, v in by_status.items() if v),
        by_namespace=by_namespace,
        errors=errors,
        warnings=warnings,
    )
    for res in pod_results:
        res.pop("issues", None)
    namespaces_out = [dict((k, v) for k, v in ns_infos[n].items()) for n in scope if n in ns_infos]
    return dict(
        summary=summary,
        namespaces=namespaces_out,
        control_plane=control_plane,
        pods=pod_results,
        findings=findings,
    )


def _injector_name(key):
    if key == "default":
        return "istio-sidecar-injector"
    return "istio-sidecar-injector-%s" % key


def verdict(result, fail_on):
    """True when the result fails for ``fail_on`` (error | warning | never)."""
    summary = result["summary"]
    if fail_on == "never":
        return False
    if fail_on == "warning":
        return bool(summary["errors"] or summary["warnings"])
    return bool(summary["errors"])


def converged(result, fail_on):
    """True when the state has settled: no pod is still not ready, and the check passes at the
    fail_on threshold (``never`` uses the ``error`` threshold)."""
    if result["summary"]["by_status"].get("not_ready"):
        return False
    return not verdict(result, "error" if fail_on == "never" else fail_on)


# --------------------------------------------------------------------------------------
# human-readable report, `linkerd check` style
# --------------------------------------------------------------------------------------
def _header(lines, title):
    if lines:
        lines.append("")
    lines.append(title)
    lines.append("-" * len(title))


def _line(lines, severity, text, remedy=None):
    lines.append(u"%s %s" % (MARK[severity], text))
    if remedy and severity != OK:
        lines.append(u"    remedy: %s" % remedy)


def _code_suffix(finding):
    return " [%s]" % finding["code"]


def report_lines(result, fail_on="error"):
    """One line per check with a mark (√ pass, ‼ warning, × error), grouped, then a summary line."""
    lines = []
    findings = result["findings"]
    cp = result["control_plane"]
    istio_ns = cp["namespace"]
    by_object = {}
    for f in findings:
        by_object.setdefault(f["object"], []).append(f)

    _header(lines, "control plane (%s)" % istio_ns)
    cp_codes = ("OKM0001", "OKM0002", "OKM0003", "OKM0004", "OKM0005", "OKM0006", "OKM0007")
    for istiod in cp["istiod"]:
        if not istiod["ready"]:
            continue
        version = (", version %s" % istiod["version"]) if istiod["version"] else ""
        counts = (istiod["name"], istio_ns, istiod["ready_replicas"], istiod["replicas"], version)
        _line(lines, OK, "%s is ready (%s, %d/%d%s)" % counts)
    seen_services = set()
    for injector in cp["injectors"]:
        label = "revision %s" % injector["revision"] + (", tag %s" % injector["tag"] if injector["tag"] else "")
        _line(lines, OK, "injector webhook %s is present (%s)" % (injector["name"], label))
        if injector["ca_bundle"]:
            _line(lines, OK, "injector webhook %s has a CA bundle" % injector["name"])
        for svc, count in sorted(injector["service_endpoints"].items()):
            if count and svc not in seen_services:
                seen_services.add(svc)
                _line(lines, OK, "injector service %s has ready endpoints (%d)" % (svc, count))
    if cp.get("ztunnel") and cp["ztunnel"]["ok"]:
        _line(lines, OK, "ztunnel is ready (%s, %d/%d)" % (istio_ns, cp["ztunnel"]["ready"], cp["ztunnel"]["desired"]))
    for f in findings:
        if f["code"] in cp_codes:
            _line(lines, f["severity"], f["message"] + _code_suffix(f), f["remedy"])

    _header(lines, "namespaces")
    ns_codes = ("IST0102", "IST0123", "OKM0010", "OKM0011", "OKM0012", "OKM0013")
    for info in result["namespaces"]:
        problems = [f for f in by_object.get("namespace/%s" % info["name"], []) if f["code"] in ns_codes]
        labels = ", ".join("%s=%s" % kv for kv in sorted(info["labels"].items())) or "no injection label"
        if info["mode"] in (MODE_SIDECAR, MODE_REVISION):
            text = "%s: sidecar injection, revision %s (%s)" % (info["name"], info["revision"], labels)
        elif info["mode"] == MODE_AMBIENT:
            text = "%s: ambient (%s)" % (info["name"], labels)
        elif info["mode"] == MODE_DISABLED:
            text = "%s: injection disabled (%s)" % (info["name"], labels)
        else:
            text = "%s: no injection label; only pods that ask are injected" % info["name"]
        if not any(f["code"] == "IST0102" for f in problems):
            _line(lines, OK, text)
        for f in problems:
            _line(lines, f["severity"], "%s: %s%s" % (info["name"], f["message"], _code_suffix(f)), f["remedy"])
    for f in findings:
        if f["code"] in ("OKM0010", "OKM0011"):
            _line(lines, f["severity"], f["message"] + _code_suffix(f), f["remedy"])

    pods_by_ns = {}
    for res in result["pods"]:
        pods_by_ns.setdefault(res["namespace"], []).append(res)
    for info in result["namespaces"]:
        name = info["name"]
        _header(lines, "pods in %s" % name)
        entries = pods_by_ns.get(name, [])
        counts = result["summary"]["by_namespace"][name]["by_status"]
        meshed = counts.get("injected", 0) + counts.get("gateway", 0)
        if not entries:
            _line(lines, OK, "no pods to check")
        if meshed:
            kinds = {}
            for res in entries:
                if res["status"] in ("injected", "gateway"):
                    kinds[res["proxy"]] = kinds.get(res["proxy"], 0) + 1
            detail = ", ".join("%s %d" % kv for kv in sorted(kinds.items()))
            gw = (", %d gateway" % counts["gateway"]) if counts.get("gateway") else ""
            _line(lines, OK, "%d pod%s a ready istio-proxy (%s%s)" % (meshed, " carries" if meshed == 1 else "s carry", detail, gw))
        if counts.get("ambient"):
            _line(lines, OK, "%d pod%s captured by ambient" % (counts["ambient"], "" if counts["ambient"] == 1 else "s"))
        quiet = [r for r in entries if r["status"] in ("excluded", "completed")]
        if quiet:
            reasons = {}
            for r in quiet:
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
            detail = "; ".join("%s: %d" % (k, v) for k, v in sorted(reasons.items()))
            _line(lines, OK, "%d pod%s out of the mesh on purpose (%s)" % (len(quiet), "" if len(quiet) == 1 else "s", detail))
        if counts.get("not_injected"):
            n = counts["not_injected"]
            _line(lines, WARNING if info.get("explicit") and info["mode"] == MODE_NONE else OK,
                  "%d pod%s not injected: the namespace does not ask for it" % (n, "" if n == 1 else "s"))
        for f in findings:
            if f["namespace"] == name and "pods" in f:
                _line(lines, f["severity"], f["message"] + _code_suffix(f), f["remedy"])

    summary = result["summary"]
    failed = verdict(result, fail_on)
    overall = ERROR if summary["errors"] else (WARNING if summary["warnings"] else OK)
    statuses = ", ".join("%s %d" % kv for kv in sorted(summary["by_status"].items())) or "no pods"
    lines.append("")
    lines.append(u"Status check results are %s (%d error%s, %d warning%s; %d pods in %d namespaces: %s)%s" % (
        MARK[overall], summary["errors"], "" if summary["errors"] == 1 else "s",
        summary["warnings"], "" if summary["warnings"] == 1 else "s",
        summary["pods"], summary["namespaces"], statuses,
        " - failed (fail_on=%s)" % fail_on if failed else ""))
    return lines


# --------------------------------------------------------------------------------------
# the service the module calls: LIST, classify, and with ``wait`` WATCH until converged
# --------------------------------------------------------------------------------------
CONTROL_PLANE_KEYS = ("webhooks", "deployments", "daemonsets", "services", "endpointslices")
CONTROL_PLANE_CODES = ("OKM0001", "OKM0002", "OKM0003", "OKM0004", "OKM0005", "OKM0006", "OKM0007")


def resource_plan(namespaces=None, label_selector=None, istio_namespace="istio-system"):
    """The collections to LIST (and maybe WATCH): dicts for ``_k8s.Resource(**spec)``.

    Pods: one LIST per requested namespace, or one cluster-wide LIST when the namespaces are
    found from their labels.  Everything else is one LIST each.
    """
    plan = [dict(key="namespaces", path="/api/v1/namespaces")]
    if namespaces:
        for name in dict.fromkeys(namespaces):
            plan.append(dict(key="pods", path="/api/v1/namespaces/%s/pods" % name, label_selector=label_selector))
    else:
        plan.append(dict(key="pods", path="/api/v1/pods", label_selector=label_selector))
    ns = istio_namespace
    plan += [
        dict(key="webhooks", path="/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"),
        dict(key="deployments", path="/apis/apps/v1/namespaces/%s/deployments" % ns),
        dict(key="daemonsets", path="/apis/apps/v1/namespaces/%s/daemonsets" % ns, optional=True),
        dict(key="services", path="/api/v1/namespaces/%s/services" % ns),
        dict(key="endpointslices", path="/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices" % ns,
             fallback=dict(key="endpoints", path="/api/v1/namespaces/%s/endpoints" % ns, optional=True)),
    ]
    return plan


def _evaluate(cache, options):
    return check(
        namespaces=cache.get("namespaces"),
        pods=cache.get("pods"),
        webhook_configurations=cache.get("webhooks"),
        deployments=cache.get("deployments"),
        services=cache.get("services"),
        endpoint_slices=cache.get("endpointslices"),
        endpoints=cache.get("endpoints"),
        daemonsets=cache.get("daemonsets"),
        requested_namespaces=options.get("namespaces"),
        istio_namespace=options.get("istio_namespace") or "istio-system",
        revision=options.get("revision"),
        proxy_version=options.get("proxy_version"),
    )


def run(cache, options, clock):
    """LIST everything, classify; with ``wait`` > 0 watch and re-classify until the result
    converges (passes at the fail_on threshold) or the deadline passes.

    ``cache`` is a ``_k8s.Cache`` (duck-typed: list_all, get, start_watches, wait_for_changes,
    close); ``clock`` returns seconds (time.time).  Returns the result dict with summary,
    namespaces, control_plane, pods, findings, report_lines, converged, failed, elapsed and
    ``stats`` (LIST/WATCH counts).
    """
    fail_on = options.get("fail_on") or "error"
    wait = float(options.get("wait") or 0)
    start = clock()
    deadline = start + wait
    cache.list_all()
    result = _evaluate(cache, options)
    rounds = 1
    if wait > 0 and not converged(result, fail_on):
        watching = set(["pods", "namespaces"])
        try:
            while True:
                if any(f["code"] in CONTROL_PLANE_CODES for f in result["findings"]):
                    watching.update(CONTROL_PLANE_KEYS + ("endpoints",))
                cache.start_watches(watching, deadline)
                if not cache.wait_for_changes(deadline):
                    break
                result = _evaluate(cache, options)
                rounds += 1
                if converged(result, fail_on):
                    break
        finally:
            cache.close()
    result["converged"] = converged(result, fail_on)
    result["failed"] = verdict(result, fail_on)
    result["elapsed"] = round(clock() - start, 3)
    result["stats"] = dict(
        evaluations=rounds,
        lists=sum(getattr(r, "lists", 0) for r in getattr(cache, "resources", [])),
        watch_events=getattr(cache, "events_seen", 0),
        relists=getattr(cache, "relists", 0),
        watch_restarts=getattr(cache, "watch_restarts", 0),
    )
    result["report_lines"] = report_lines(result, fail_on)
    details = options.get("pod_details") or "all"
    if details == "problems":
        result["pods"] = [p for p in result["pods"] if p["severity"] != OK]
    elif details == "none":
        result["pods"] = []
    return result

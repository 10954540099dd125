# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading Istio's objects and classifying one pod: the building blocks of the injection check.

Plain dicts in (Namespaces, Pods, MutatingWebhookConfigurations, Deployments, EndpointSlices /
Endpoints as the API returns them), plain dicts out.  No Ansible and no kubernetes imports:
everything here is tested directly over pod manifests.

This is a private module_utils file: it may change at any time.
"""

from __future__ import annotations

import json
from collections import namedtuple

from ansible_collections.okemesh.istio.plugins.module_utils._injection_codes import OK, severity

PROXY = "istio-proxy"

LABEL_INJECTION = "istio-injection"
LABEL_REV = "istio.io/rev"
LABEL_TAG = "istio.io/tag"
LABEL_DATAPLANE = "istio.io/dataplane-mode"
INJECT = "sidecar.istio.io/inject"
STATUS_ANNOTATION = "sidecar.istio.io/status"
AMBIENT_REDIRECTION = "ambient.istio.io/redirection"
TEMPLATES_ANNOTATION = "inject.istio.io/templates"

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


# A pod's problem, for the findings stage: its code, the code's variant and the facts its
# texts are formatted with (see CODES in _injection_codes.py).  ``issue[0]`` is the code.
PodIssue = namedtuple("PodIssue", "code variant facts")


def describe_key(key):
    """How a namespace asks for a revision: the text IST0103 and OKM0003 print."""
    if key == "default":
        return "istio-injection=enabled (default revision)"
    return "istio.io/rev=%s" % key


def classify_pod(pod, ns_info, injector_index, istiod_index, proxy_version=None):
    """Classify one pod.

    Returns a dict: namespace, name, owner, status, severity, proxy (classic|native|None),
    proxy_ready, app_ready, proxy_version, revision, reason, and ``issues`` (a list of
    PodIssue for the findings stage; the pod's severity is its issue code's severity).
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

    def done(state, reason, code=None, variant="", **facts):
        result["status"] = state
        result["severity"] = severity(code) if code else OK
        result["reason"] = reason
        result["issues"] = [PodIssue(code, variant, facts)] if code else []
        return result

    if phase in ("Succeeded", "Failed"):
        return done("completed", "completed (%s)" % phase)
    if spec.get("hostNetwork"):
        return done("excluded", "hostNetwork (never injected)")
    if _opt_out(pod):
        return done("excluded", "opted out (sidecar.istio.io/inject=false)")
    if is_control_plane(pod) and proxy_kind is None:
        return done("excluded", "Istio control plane (%s)" % _labels(pod).get("app"))

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
            return done("not_ready", "istio-proxy (%s) is not ready (phase %s)" % (proxy_kind, phase), "OKM0020")
        if app_names and not app_ready:
            waiting = [n for n in app_names if not container_statuses.get(n, {}).get("ready")]
            return done("not_ready", "application container(s) not ready: %s" % ", ".join(waiting), "OKM0021")
        # revision the namespace (or pod) asks for, resolved through tags
        if want == "sidecar" and injected_rev:
            injector = injector_index.get(key)
            wanted_rev = injector["revision"] if injector else key
            if injected_rev not in (wanted_rev, key):
                return done("restart_needed", "injected by revision %s, the namespace now asks for %s" % (injected_rev, key),
                            "OKM0022", injected=injected_rev, asked=key)
        control = normalize_version(proxy_version)
        if not control:
            rev_for_version = injected_rev
            if rev_for_version is None and key is not None:
                injector = injector_index.get(key)
                rev_for_version = injector["revision"] if injector else key
            istiod = istiod_index.get(rev_for_version or "default")
            control = istiod["version"] if istiod else None
        if control and control != "latest" and result["proxy_version"] and result["proxy_version"] != control:
            return done("version_skew", "proxy %s differs from the control plane %s" % (result["proxy_version"], control),
                        "IST0158", proxy_version=result["proxy_version"], control_version=control)
        if gateway:
            return done("gateway", "Istio gateway pod (the proxy is the workload)")
        return done("injected", "%s sidecar ready" % proxy_kind)

    if want == "sidecar":
        injector = injector_index.get(key)
        if injector is None:
            return done("missing_proxy", "no istio-proxy and no injector webhook serves %s" % describe_key(key),
                        "IST0103", "no_injector", wanted=describe_key(key))
        created = meta.get("creationTimestamp")
        if created and injector.get("created") and created < injector["created"]:
            why = "created before the injector webhook existed"
        else:
            why = "created before its namespace asked for injection (or while the injector was unavailable)"
        return done("restart_needed", "no istio-proxy: %s; restart needed" % why, "IST0103", "restart")
    if want == "ambient":
        if phase != "Running":
            return done("not_ready", "ambient pod not running yet (phase %s)" % phase, "OKM0021", "not_running")
        if _annotations(pod).get(AMBIENT_REDIRECTION) == "enabled":
            if app_names and not app_ready:
                return done("not_ready", "application container(s) not ready", "OKM0021")
            return done("ambient", "captured by ambient (ztunnel)")
        if _labels(pod).get(LABEL_DATAPLANE) == "none":
            return done("excluded", "opted out of ambient (istio.io/dataplane-mode=none)")
        return done("ambient_not_captured", "ambient namespace but the pod is not redirected to ztunnel", "OKM0023")
    if ns_info["mode"] == MODE_DISABLED:
        return done("excluded", "namespace has istio-injection=disabled")
    return done("not_injected", "namespace does not ask for injection")


CONTROL_PLANE_APPS = ("istiod", "ztunnel", "istio-cni-node")


def is_control_plane(pod):
    """An istiod, ztunnel or istio-cni pod (never a workload to inject)."""
    return _labels(pod).get("app") in CONTROL_PLANE_APPS


def asks_for_injection(pod):
    """The pod itself asks to be in the mesh (opt-in label, revision label, or it carries a proxy)."""
    if is_control_plane(pod):
        return False
    return _opt_in(pod) or bool(_labels(pod).get(LABEL_REV)) or _find_proxy(pod.get("spec") or {})[0] is not None

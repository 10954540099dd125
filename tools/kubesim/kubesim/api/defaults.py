"""What the real API server does to objects before storing them: defaulting (namespace
finalizers and phase, Service cluster IPs and node ports, Secret stringData, Deployment
replicas, CRD status), validation (names, kind/apiVersion), and CRD -> served kinds."""

from __future__ import annotations

import base64
import ipaddress
import itertools
import re
import threading
from typing import Any

from .errors import ApiError, invalid
from .registry import Registry, ResourceType
from .store import now_rfc3339

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"


class Allocator:
    """Cluster IPs from 10.96.0.0/12 and node ports from 30000-32767."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ips = (str(ipaddress.ip_address("10.96.0.10") + i) for i in itertools.count())
        self._ports = itertools.cycle(range(30000, 32768))

    def ip(self) -> str:
        with self._lock:
            return next(self._ips)

    def node_port(self) -> int:
        with self._lock:
            return next(self._ports)


def validate_name(rt: ResourceType, obj: dict) -> None:
    md = obj.get("metadata") or {}
    name = md.get("name")
    if not name:
        if md.get("generateName"):
            return
        raise invalid(rt.kind, "", rt.group, [{"field": "metadata.name", "message": "Required value: name or generateName is required"}])
    if rt.key in ("namespaces",):
        pattern, what = DNS1123_LABEL, ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                                        "and must start and end with an alphanumeric character")
    elif rt.key == "services":
        pattern, what = DNS1035_LABEL, ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                                        "start with an alphabetic character, and end with an alphanumeric character")
    elif rt.key in ("roles.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io",
                    "clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io"):
        pattern, what = re.compile(r"^[^/%]+$"), "may not contain '/' or '%'"
    else:
        pattern, what = DNS1123_SUBDOMAIN, ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                                            "and must start and end with an alphanumeric character")
    limit = 63 if pattern in (DNS1123_LABEL, DNS1035_LABEL) else 253
    if len(name) > limit or not pattern.match(name):
        raise invalid(rt.kind, name, rt.group, [{"field": "metadata.name", "message": f'Invalid value: "{name}": {what}'}])


def check_type(rt: ResourceType, version: str, obj: dict) -> None:
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", "the body of the request was not a JSON object")
    want = rt.api_version(version)
    av, kind = obj.get("apiVersion"), obj.get("kind")
    if av and av != want and not (rt.group and av.split("/")[0] == rt.group and av.split("/")[-1] in rt.versions):
        raise ApiError(400, "BadRequest", f"the API version in the data ({av}) does not match the expected API version ({want})")
    if kind and kind != rt.kind:
        raise ApiError(400, "BadRequest", f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
    obj["apiVersion"] = want
    obj["kind"] = rt.kind


def apply_defaults(rt: ResourceType, obj: dict, old: dict | None, alloc: Allocator) -> dict:
    key = rt.key
    md = obj.setdefault("metadata", {})
    if key == "namespaces":
        name = md.get("name") or ""
        md.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        if old is None:
            obj["status"] = {"phase": "Active"}
    elif key == "services":
        _default_service(obj, old, alloc)
    elif key == "secrets":
        obj.setdefault("type", "Opaque")
        sd = obj.pop("stringData", None)
        if sd:
            data = obj.setdefault("data", {}) or {}
            for k, v in sd.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            obj["data"] = data
    elif key in WORKLOAD_KEYS:
        default_workload(key, obj)
    elif key == "pods":
        if old is None:
            pod_defaults(obj)
    elif key == "nodes":
        # NodeSpec's lists are `omitempty`: an empty list (all taints removed) is not stored or served
        spec = obj.get("spec")
        for field in ("taints", "podCIDRs"):
            if isinstance(spec, dict) and spec.get(field) == []:
                del spec[field]
    elif key == CRD_KEY:
        _default_crd(obj)
    return obj


WORKLOAD_KEYS = ("deployments.apps", "replicasets.apps", "statefulsets.apps", "daemonsets.apps", "jobs.batch")


def default_workload(key: str, obj: dict[str, Any]) -> dict[str, Any]:
    """API-server defaulting of the workload kinds (apps/v1, batch/v1) and their pod templates."""
    spec = obj.setdefault("spec", {})
    if key in ("deployments.apps", "replicasets.apps"):
        spec.setdefault("replicas", 1)
    if key == "deployments.apps":
        strat = spec.setdefault("strategy", {"type": "RollingUpdate"})
        strat.setdefault("type", "RollingUpdate")
        if strat["type"] == "RollingUpdate":
            ru = strat.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    elif key == "statefulsets.apps":
        spec.setdefault("replicas", 1)
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
    elif key == "daemonsets.apps":
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
    elif key == "jobs.batch":
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        name = (obj.get("metadata") or {}).get("name") or ""
        if not spec.get("manualSelector") and name:   # generated selector, kept on every update (it is immutable)
            tmd = spec.setdefault("template", {}).setdefault("metadata", {})
            tl = tmd.setdefault("labels", {})
            tl.setdefault("batch.kubernetes.io/job-name", name)
            tl.setdefault("job-name", name)
            spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/job-name": name}})
    tspec = (spec.get("template") or {}).get("spec")
    if isinstance(tspec, dict):
        tspec.setdefault("restartPolicy", "Always" if key != "jobs.batch" else "Never")
        tspec.setdefault("dnsPolicy", "ClusterFirst")
        tspec.setdefault("schedulerName", "default-scheduler")
        tspec.setdefault("terminationGracePeriodSeconds", 30)
        tspec.setdefault("securityContext", {})
    return obj


def pod_defaults(pod: dict[str, Any]) -> dict[str, Any]:
    """API-server defaulting of a Pod (the fields clients commonly read back)."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        image = c.get("image") or ""
        tag = image.rsplit("/", 1)[-1]
        c.setdefault("imagePullPolicy", "Always" if (":" not in tag and "@" not in tag) or tag.endswith(":latest") else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            p.setdefault("protocol", "TCP")
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(spec))
    return pod


def qos_class(spec: dict[str, Any]) -> str:
    res = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    if all((r.get("limits") or {}).get("cpu") and (r.get("limits") or {}).get("memory")
           and (r.get("requests") or r.get("limits")) == r.get("limits") for r in res):
        return "Guaranteed"
    return "Burstable"


def _default_service(obj: dict, old: dict | None, alloc: Allocator) -> None:
    spec = obj.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    typ = spec.setdefault("type", "ClusterIP")
    if typ != "ExternalName":
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec.get("clusterIP") or alloc.ip()
        if spec["clusterIP"] != "None":
            spec["clusterIPs"] = [spec["clusterIP"]]
        else:
            spec["clusterIPs"] = ["None"]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    old_ports = {(p.get("port"), p.get("protocol") or "TCP"): p for p in old_spec.get("ports") or []}
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        if typ != "ExternalName":
            p.setdefault("targetPort", p.get("port"))
        if typ in ("NodePort", "LoadBalancer") and not p.get("nodePort"):
            prev = old_ports.get((p.get("port"), p["protocol"]))
            p["nodePort"] = (prev or {}).get("nodePort") or alloc.node_port()
    if typ in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if typ == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    obj.setdefault("status", (old or {}).get("status") or {"loadBalancer": {}})


def _default_crd(obj: dict) -> None:
    spec = obj.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", (names.get("kind") or "").lower())
    names.setdefault("listKind", (names.get("kind") or "") + "List")
    versions = spec.get("versions") or []
    stored = [v["name"] for v in versions if v.get("storage")] or [v.get("name") for v in versions[:1]]
    now = now_rfc3339()
    status = obj.get("status") or {}
    status["acceptedNames"] = names
    status["storedVersions"] = sorted(set((status.get("storedVersions") or []) + stored))
    old = {c.get("type"): c for c in status.get("conditions") or []}
    wanted = [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted",
         "lastTransitionTime": now},
    ]
    status["conditions"] = [old[c["type"]] if old.get(c["type"], {}).get("status") == "True" else c for c in wanted]
    obj["status"] = status


def validate_crd(obj: dict) -> None:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    name = (obj.get("metadata") or {}).get("name", "")
    causes = []
    if not spec.get("group"):
        causes.append({"field": "spec.group", "message": "Required value"})
    if not names.get("plural") or not names.get("kind"):
        causes.append({"field": "spec.names", "message": "Required value: plural and kind are required"})
    elif name != f"{names['plural']}.{spec.get('group')}":
        causes.append({"field": "metadata.name", "message": f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'})
    if not spec.get("versions"):
        causes.append({"field": "spec.versions", "message": "Required value: must have exactly one version marked as storage version"})
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append({"field": "spec.scope", "message": 'Unsupported value: must be "Cluster" or "Namespaced"'})
    if causes:
        raise invalid("CustomResourceDefinition", name, "apiextensions.k8s.io", causes)


def crd_resource(crd: dict) -> ResourceType | None:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    if not versions or not names.get("plural"):
        return None
    versions.sort(key=lambda v: (not v.get("storage"),))
    sub = []
    first = versions[0]
    subres = first.get("subresources") or spec.get("subresources") or {}
    if "status" in subres:
        sub.append("status")
    if "scale" in subres:
        sub.append("scale")
    rt = ResourceType(
        group=spec.get("group", ""), versions=[v["name"] for v in versions], plural=names["plural"], kind=names.get("kind", ""),
        namespaced=spec.get("scope") == "Namespaced", short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []), subresources=sub, singular=names.get("singular") or "",
        list_kind=names.get("listKind") or "", crd=True,
    )
    rt.printer_columns = {v["name"]: v.get("additionalPrinterColumns") or spec.get("additionalPrinterColumns") or [] for v in versions}
    return rt


def sync_crd(registry: Registry, event: str, crd: dict, old: dict | None) -> None:
    """Keep the registry in step with the stored CRDs (called for every CRD event)."""
    if old is not None:
        ort = crd_resource(old)
        if ort is not None and (event == "DELETED" or (crd_resource(crd) or ort).key != ort.key):
            registry.remove(ort.key)
    if event != "DELETED":
        rt = crd_resource(crd)
        if rt is not None:
            registry.add(rt)


def as_dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}

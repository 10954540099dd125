"""Resource registry: which kinds are served, under which group/version/plural, with which scope.

A resource key is ``plural`` for the core group and ``plural.group`` otherwise
(``pods``, ``deployments.apps``, ``gateways.networking.istio.io``).  Built-in kinds are
registered at start; CustomResourceDefinitions add and remove entries at run time.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclasses.dataclass
class ResourceType:
    group: str
    versions: list[str]                 # served versions, preferred (storage) first
    plural: str
    kind: str
    namespaced: bool
    short_names: list[str] = dataclasses.field(default_factory=list)
    categories: list[str] = dataclasses.field(default_factory=list)
    verbs: list[str] = dataclasses.field(default_factory=lambda: list(ALL_VERBS))
    subresources: list[str] = dataclasses.field(default_factory=list)   # "status", "scale"
    singular: str = ""
    list_kind: str = ""
    crd: bool = False
    printer_columns: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)  # version -> additionalPrinterColumns

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()
        self.list_kind = self.list_kind or self.kind + "List"

    @property
    def key(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str | None = None) -> str:
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v


def _r(group, versions, plural, kind, namespaced, short=(), cats=(), sub=(), verbs=None):
    return ResourceType(group, list(versions), plural, kind, namespaced, list(short), list(cats),
                        list(verbs or ALL_VERBS), list(sub))


BUILTINS: list[ResourceType] = [
    _r("", ["v1"], "namespaces", "Namespace", False, ["ns"], sub=["status"],
       verbs=["create", "delete", "get", "list", "patch", "update", "watch"]),
    _r("", ["v1"], "nodes", "Node", False, ["no"], sub=["status"]),
    _r("", ["v1"], "pods", "Pod", True, ["po"], ["all"], ["status"]),
    _r("", ["v1"], "services", "Service", True, ["svc"], ["all"], ["status"],
       verbs=["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]),
    _r("", ["v1"], "endpoints", "Endpoints", True, ["ep"]),
    _r("", ["v1"], "serviceaccounts", "ServiceAccount", True, ["sa"]),
    _r("", ["v1"], "configmaps", "ConfigMap", True, ["cm"]),
    _r("", ["v1"], "secrets", "Secret", True),
    _r("", ["v1"], "events", "Event", True, ["ev"]),
    _r("", ["v1"], "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], sub=["status"]),
    _r("", ["v1"], "resourcequotas", "ResourceQuota", True, ["quota"], sub=["status"]),
    _r("", ["v1"], "limitranges", "LimitRange", True, ["limits"]),
    _r("apps", ["v1"], "deployments", "Deployment", True, ["deploy"], ["all"], ["status", "scale"]),
    _r("apps", ["v1"], "replicasets", "ReplicaSet", True, ["rs"], ["all"], ["status", "scale"]),
    _r("apps", ["v1"], "statefulsets", "StatefulSet", True, ["sts"], ["all"], ["status", "scale"]),
    _r("apps", ["v1"], "daemonsets", "DaemonSet", True, ["ds"], ["all"], ["status"]),
    _r("apps", ["v1"], "controllerrevisions", "ControllerRevision", True),
    _r("batch", ["v1"], "jobs", "Job", True, [], ["all"], ["status"]),
    _r("batch", ["v1"], "cronjobs", "CronJob", True, ["cj"], ["all"], ["status"]),
    _r("autoscaling", ["v2", "v1"], "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ["hpa"], ["all"], ["status"]),
    _r("policy", ["v1"], "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], sub=["status"]),
    _r("rbac.authorization.k8s.io", ["v1"], "roles", "Role", True),
    _r("rbac.authorization.k8s.io", ["v1"], "rolebindings", "RoleBinding", True),
    _r("rbac.authorization.k8s.io", ["v1"], "clusterroles", "ClusterRole", False),
    _r("rbac.authorization.k8s.io", ["v1"], "clusterrolebindings", "ClusterRoleBinding", False),
    _r("admissionregistration.k8s.io", ["v1"], "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False, [], ["api-extensions"]),
    _r("admissionregistration.k8s.io", ["v1"], "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False, [], ["api-extensions"]),
    _r("apiextensions.k8s.io", ["v1"], "customresourcedefinitions", "CustomResourceDefinition", False, ["crd", "crds"], ["api-extensions"], ["status"]),
    _r("coordination.k8s.io", ["v1"], "leases", "Lease", True),
    _r("discovery.k8s.io", ["v1"], "endpointslices", "EndpointSlice", True),
    _r("events.k8s.io", ["v1"], "events", "Event", True, ["ev"]),
    _r("networking.k8s.io", ["v1"], "ingresses", "Ingress", True, ["ing"], sub=["status"]),
    _r("networking.k8s.io", ["v1"], "networkpolicies", "NetworkPolicy", True, ["netpol"]),
    _r("networking.k8s.io", ["v1"], "ingressclasses", "IngressClass", False),
    _r("storage.k8s.io", ["v1"], "storageclasses", "StorageClass", False, ["sc"]),
    _r("scheduling.k8s.io", ["v1"], "priorityclasses", "PriorityClass", False, ["pc"]),
    # review APIs: create-only, never stored; kubesim allows everything (``kubectl auth can-i`` says yes)
    _r("authorization.k8s.io", ["v1"], "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, verbs=["create"]),
    _r("authorization.k8s.io", ["v1"], "subjectaccessreviews", "SubjectAccessReview", False, verbs=["create"]),
    _r("authorization.k8s.io", ["v1"], "selfsubjectrulesreviews", "SelfSubjectRulesReview", False, verbs=["create"]),
    _r("authentication.k8s.io", ["v1"], "selfsubjectreviews", "SelfSubjectReview", False, verbs=["create"]),
    _r("authentication.k8s.io", ["v1"], "tokenreviews", "TokenReview", False, verbs=["create"]),
]
REVIEW_KEYS = {"selfsubjectaccessreviews.authorization.k8s.io", "subjectaccessreviews.authorization.k8s.io",
               "selfsubjectrulesreviews.authorization.k8s.io", "selfsubjectreviews.authentication.k8s.io",
               "tokenreviews.authentication.k8s.io"}


class Registry:
    """Thread-safe lookup of served resource types."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_key: dict[str, ResourceType] = {}
        self.generation = 0      # bumped on every change (discovery caches / OpenAPI hashes)
        for rt in BUILTINS:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        with self._lock:
            self._by_key[rt.key] = rt
            self.generation += 1

    def remove(self, key: str) -> ResourceType | None:
        with self._lock:
            self.generation += 1
            return self._by_key.pop(key, None)

    def by_key(self, key: str) -> ResourceType | None:
        return self._by_key.get(key)

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self._by_key.get(f"{plural}.{group}" if group else plural)
        if rt is None or version not in rt.versions:
            return None
        return rt

    def by_gvk(self, group: str, version: str, kind: str) -> ResourceType | None:
        with self._lock:
            for rt in self._by_key.values():
                if rt.group == group and rt.kind == kind and version in rt.versions:
                    return rt
        return None

    def by_kind(self, kind: str, group: str | None = None) -> ResourceType | None:
        with self._lock:
            for rt in self._by_key.values():
                if rt.kind == kind and (group is None or rt.group == group):
                    return rt
        return None

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._by_key.values())

    def group_versions(self) -> dict[str, list[str]]:
        """group -> served versions (preferred first), core group excluded."""
        out: dict[str, list[str]] = {}
        with self._lock:
            for rt in self._by_key.values():
                if not rt.group:
                    continue
                vs = out.setdefault(rt.group, [])
                for v in rt.versions:
                    if v not in vs:
                        vs.append(v)
        for vs in out.values():
            vs.sort(key=_version_priority)
        return out

    def resources_in(self, group: str, version: str) -> list[ResourceType]:
        with self._lock:
            return [rt for rt in self._by_key.values() if rt.group == group and version in rt.versions]


def _version_priority(v: str) -> tuple:
    """Kubernetes version priority: GA > beta > alpha, higher numbers first."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0, v)
    major, stage, minor = int(m[1]), m[2], int(m[3] or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, v)

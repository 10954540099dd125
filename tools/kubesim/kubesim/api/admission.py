"""What the real API server does to a write between decoding and storage, for built-in kinds:

- decoding into typed structs: explicit ``null`` values vanish (custom resources are unstructured
  and keep them, as the real server does);
- built-in admission: ServiceAccount admission refuses a pod that names a missing service account;
- validation clients observe: Service ports (names required with more than one port, unique),
  immutable fields (Service ``clusterIP``, Job ``selector`` and ``template``, StatefulSet fields
  other than replicas/template/updateStrategy/..., Secret and ConfigMap ``immutable``);
- which kinds carry ``metadata.generation`` and what bumps it.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError, invalid
from .registry import ResourceType

# built-in kinds whose strategy sets metadata.generation (1 on create, +1 on a spec change);
# the others (ConfigMap, Secret, Service, Namespace, ServiceAccount, RBAC, ...) carry none
GENERATION_KEYS = frozenset({
    "pods", "deployments.apps", "replicasets.apps", "statefulsets.apps", "daemonsets.apps", "jobs.batch", "cronjobs.batch",
    "poddisruptionbudgets.policy", "networkpolicies.networking.k8s.io", "ingresses.networking.k8s.io",
    "ingressclasses.networking.k8s.io", "customresourcedefinitions.apiextensions.k8s.io",
    "mutatingwebhookconfigurations.admissionregistration.k8s.io", "validatingwebhookconfigurations.admissionregistration.k8s.io",
    "horizontalpodautoscalers.autoscaling", "endpointslices.discovery.k8s.io",
})


def drop_nulls(v: Any) -> Any:
    """A typed decode: map entries whose value is null are absent (recursively)."""
    if isinstance(v, dict):
        return {k: drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_nulls(x) for x in v]
    return v


def has_generation(rt: ResourceType | None) -> bool:
    return rt is None or rt.crd or rt.key in GENERATION_KEYS


def generation_part(rt: ResourceType | None, obj: dict[str, Any]) -> Any:
    """The part of an object whose change bumps metadata.generation."""
    skip = {"metadata", "apiVersion", "kind"}
    if rt is None or not rt.crd or "status" in rt.subresources:
        skip.add("status")
    return {k: v for k, v in obj.items() if k not in skip}


def service_account_admission(store: Any, pod: dict[str, Any]) -> None:
    """The ServiceAccount admission plugin: the pod's service account must exist."""
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ns = md.get("namespace") or ""
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    if store.get_ref("serviceaccounts", ns, sa) is None:
        name = md.get("name") or md.get("generateName") or "Unknown"
        raise ApiError(403, "Forbidden",
                       f'pods "{name}" is forbidden: error looking up service account {ns}/{sa}: serviceaccount "{sa}" not found',
                       {"name": name, "kind": "pods"})


def validate(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Validation a real API server does that clients observe (422 Invalid)."""
    name = (obj.get("metadata") or {}).get("name") or ""
    causes: list[dict[str, str]] = []
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    old_spec = (old or {}).get("spec") or {}
    if rt.key == "services":
        ports = spec.get("ports") or []
        if len(ports) > 1:
            seen: set[str] = set()
            for i, p in enumerate(ports):
                pname = p.get("name")
                if not pname:
                    causes.append({"field": f"spec.ports[{i}].name", "message": "Required value"})
                elif pname in seen:
                    causes.append({"field": f"spec.ports[{i}].name", "message": f'Duplicate value: "{pname}"'})
                seen.add(pname or "")
        if old is not None and old_spec.get("clusterIP") and spec.get("clusterIP") and spec["clusterIP"] != old_spec["clusterIP"] \
                and spec.get("type") != "ExternalName" and old_spec.get("type") != "ExternalName":
            causes.append({"field": "spec.clusterIPs[0]", "message": "Invalid value: []string{" + f'"{spec["clusterIP"]}"' + "}: may not change once set"})
    elif rt.key == "jobs.batch" and old is not None:
        if spec.get("selector") != old_spec.get("selector") and old_spec.get("selector") is not None:
            causes.append({"field": "spec.selector", "message": "Invalid value: field is immutable"})
        if (spec.get("template") or {}).get("spec") != (old_spec.get("template") or {}).get("spec"):
            causes.append({"field": "spec.template", "message": "Invalid value: field is immutable"})
        if spec.get("completions") != old_spec.get("completions") and spec.get("completionMode") != "Indexed":
            causes.append({"field": "spec.completions", "message": "Invalid value: field is immutable"})
    elif rt.key in ("secrets", "configmaps") and old is not None and old.get("immutable"):
        for field in ("data", "binaryData") + (("type",) if rt.key == "secrets" else ()):
            if (obj.get(field) or {}) != (old.get(field) or {}):
                causes.append({"field": field, "message": "Forbidden: field is immutable when `immutable` is set"})
        if not obj.get("immutable"):
            causes.append({"field": "immutable", "message": "Forbidden: field is immutable when `immutable` is set"})
    elif rt.key == "configmaps":
        for field in ("data", "binaryData"):
            for k in (obj.get(field) or {}):
                if not k or len(k) > 253 or not all(c.isalnum() or c in "-._" for c in k):
                    causes.append({"field": f"{field}[{k}]", "message": f"Invalid value: \"{k}\": a valid config key must consist of "
                                   "alphanumeric characters, '-', '_' or '.'"})
    elif rt.key == "statefulsets.apps" and old is not None:
        mutable = ("replicas", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy", "minReadySeconds", "ordinals",
                   "revisionHistoryLimit")
        if {k: v for k, v in spec.items() if k not in mutable} != {k: v for k, v in old_spec.items() if k not in mutable}:
            causes.append({"field": "spec", "message": "Forbidden: updates to statefulset spec for fields other than 'replicas', "
                                                       "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' "
                                                       "and 'minReadySeconds' are forbidden"})
    elif rt.key == "deployments.apps":
        strat = spec.get("strategy") or {}
        if strat.get("type") == "Recreate" and strat.get("rollingUpdate"):
            causes.append({"field": "spec.strategy.rollingUpdate",
                           "message": "Forbidden: may not be specified when strategy `type` is 'Recreate'"})
    if causes:
        raise invalid(rt.kind, name, rt.group, causes)

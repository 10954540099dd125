"""Helpers shared by the simulated controllers: names, owner references, conditions, hashes."""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

from .runtime import (
    DAEMONSETS,
    DEPLOYMENTS,
    JOBS,
    REPLICASETS,
    STATEFULSETS,
    Runtime,
    controller_ref,
    meta,
)

log = logging.getLogger("kubesim.workloads")
PVCS = "persistentvolumeclaims"
SAFE = "bcdfghjklmnpqrstvwxz2456789"          # the alphabet Kubernetes uses for generated names
CONTAINERD = "containerd://1.7.27"
OWNER_KEYS = {"ReplicaSet": REPLICASETS, "StatefulSet": STATEFULSETS, "DaemonSet": DAEMONSETS, "Job": JOBS, "Deployment": DEPLOYMENTS}
API_VERSIONS = {DEPLOYMENTS: "apps/v1", REPLICASETS: "apps/v1", STATEFULSETS: "apps/v1", DAEMONSETS: "apps/v1", JOBS: "batch/v1"}
KINDS = {DEPLOYMENTS: "Deployment", REPLICASETS: "ReplicaSet", STATEFULSETS: "StatefulSet", DAEMONSETS: "DaemonSet", JOBS: "Job"}


# ------------------------------------------------------------------------------------- helpers
def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def suffix(n: int = 5) -> str:
    return "".join(random.choices(SAFE, k=n))


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def _normalize(o: Any) -> Any:
    """Drop nulls and empty maps/lists, as decoding into typed objects does (``creationTimestamp: null``...)."""
    if isinstance(o, dict):
        out = {k: _normalize(v) for k, v in o.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(o, list):
        return [_normalize(v) for v in o]
    return o


def template_hash(template: dict[str, Any]) -> str:
    """pod-template-hash: FNV-32a of the template, rendered in the safe alphabet (as Kubernetes does)."""
    t = _normalize(dict(template or {}))
    md = dict(t.get("metadata") or {})
    labels = {k: v for k, v in (md.get("labels") or {}).items() if k not in ("pod-template-hash", "controller-revision-hash")}
    md["labels"] = labels
    t["metadata"] = md
    digits = str(fnv32a(json.dumps(t, sort_keys=True, separators=(",", ":")).encode()))
    return "".join(SAFE[int(c) % len(SAFE)] for c in digits)


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return meta(obj).get("labels") or {}


def is_ready(pod: dict[str, Any]) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def is_active(pod: dict[str, Any]) -> bool:
    return not meta(pod).get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def owned_by(rt: Runtime, owner: dict[str, Any], key: str) -> list[dict[str, Any]]:
    uid = meta(owner).get("uid")
    return [o for o in rt.cache.dependents(uid, key) if (controller_ref(o) or {}).get("uid") == uid]


def owner_ref(key: str, owner: dict[str, Any]) -> dict[str, Any]:
    md = meta(owner)
    return {"apiVersion": API_VERSIONS[key], "kind": KINDS[key], "name": md["name"], "uid": md["uid"],
            "controller": True, "blockOwnerDeletion": True}


def orphaned(rt: Runtime, obj: dict[str, Any]) -> bool:
    """True when the object's controller is gone (the store's GC is about to delete it)."""
    ref = controller_ref(obj)
    if not ref:
        return False
    key = OWNER_KEYS.get(ref.get("kind", ""))
    if key is None:
        return False
    owner = rt.cache.get(key, meta(obj).get("namespace"), ref.get("name", ""))
    return owner is None or meta(owner).get("uid") != ref.get("uid") or bool(meta(owner).get("deletionTimestamp"))


def set_condition(conds: list[dict[str, Any]], ctype: str, status: str, reason: str, message: str, *, update_time: bool = True) -> list[dict[str, Any]]:
    """Upsert a workload condition keeping lastTransitionTime when the status does not change."""
    out = [dict(c) for c in conds]
    ts = now()
    for c in out:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["lastTransitionTime"] = ts
                c["lastUpdateTime"] = ts
            elif update_time and (c.get("reason") != reason or c.get("message") != message):
                c["lastUpdateTime"] = ts
            c.update(status=status, reason=reason, message=message)
            return out
    out.append({"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": ts, "lastUpdateTime": ts})
    return out


def write_status(rt: Runtime, key: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
    if (obj.get("status") or {}) != status:
        rt.update_status(key, obj, status)


def resolve_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value.endswith("%"):
        pct = int(value[:-1] or 0)
        raw = pct * total / 100.0
        return int(-(-raw // 1)) if round_up else int(raw // 1)
    return int(value)


def self_fanout(key: str):
    """A fan-out that marks the changed object itself dirty for its reconciler."""
    def fan(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        md = meta(obj)
        rt.mark(key, md.get("namespace"), md.get("name"))
    return fan


def owner_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """A change of a dependent (pod, ReplicaSet) wakes its controller up."""
    ref = controller_ref(obj)
    if ref and ref.get("kind") in OWNER_KEYS:
        rt.mark(OWNER_KEYS[ref["kind"]], meta(obj).get("namespace"), ref.get("name", ""))

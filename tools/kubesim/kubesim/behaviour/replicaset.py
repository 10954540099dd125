"""The ReplicaSet controller: keeps spec.replicas pods from the template, reports status."""

from __future__ import annotations

from typing import Any

from .common import (
    is_active,
    is_ready,
    now,
    orphaned,
    owned_by,
    owner_fanout,
    self_fanout,
    suffix,
    write_status,
)
from .kubelet import create_errors, emit_event, new_pod
from .runtime import (
    PODS,
    REPLICASETS,
    Runtime,
    meta,
)


# ------------------------------------------------------------------------------------- ReplicaSets / Deployments
def reconcile_replicaset(rt: Runtime, ns: str | None, name: str) -> None:
    rs = rt.cache.get(REPLICASETS, ns, name)
    if rs is None or meta(rs).get("deletionTimestamp") or orphaned(rt, rs):
        return
    spec = rs.get("spec") or {}
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    template = spec.get("template") or {}
    pods = owned_by(rt, rs, PODS)
    active = [p for p in pods if is_active(p)]
    diff = want - len(active)
    failure = None
    if diff > 0:
        base = meta(rs)["name"]
        for _i in range(diff):
            if new_pod(rt, REPLICASETS, rs, template, f"{base}-{suffix()}") is None:
                failure = create_errors(rt).get(meta(rs)["uid"])
                if failure:
                    break
    elif diff < 0:
        def rank(p: dict[str, Any]) -> tuple[int, int, str]:
            st = p.get("status") or {}
            return (0 if not (p.get("spec") or {}).get("nodeName") else 1, 0 if st.get("phase") == "Pending" else 1 if not is_ready(p) else 2,
                    "".join(chr(255 - ord(ch)) for ch in meta(p).get("creationTimestamp", "")))
        for p in sorted(active, key=rank)[: -diff]:
            rt.delete(PODS, ns, meta(p)["name"])
    pods = [p for p in owned_by(rt, rs, PODS) if is_active(p)]
    ready = sum(1 for p in pods if is_ready(p))
    status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
              "observedGeneration": meta(rs).get("generation", 1)}
    if not ready:
        status.pop("readyReplicas")
        status.pop("availableReplicas")
    if not pods:
        status.pop("fullyLabeledReplicas")
    conds = [c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if failure:
        # what kube-controller-manager's ReplicaSet controller reports when the API refuses its pods
        emit_event(rt, rs, "Warning", "FailedCreate", f"Error creating: {failure}", component="replicaset-controller")
        prev = next((c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
        conds.append(prev if prev and prev.get("message") == failure else
                     {"type": "ReplicaFailure", "status": "True", "lastTransitionTime": now(), "reason": "FailedCreate", "message": failure})
        retry_key = "retry:" + meta(rs)["uid"]
        if retry_key not in create_errors(rt):           # one pending retry per ReplicaSet
            create_errors(rt)[retry_key] = ""
            rt.after(RETRY_FAILED_CREATE, _retry, ns, name, meta(rs)["uid"])
    if conds:
        status["conditions"] = conds
    write_status(rt, REPLICASETS, rs, status)


RETRY_FAILED_CREATE = 2.0


def _retry(rt: Runtime, ns: str | None, name: str, uid: str) -> None:
    create_errors(rt).pop("retry:" + uid, None)
    rs = rt.cache.get(REPLICASETS, ns, name)
    if rs is not None and meta(rs).get("uid") == uid:
        reconcile_replicaset(rt, ns, name)


def _rs_counts(rs: dict[str, Any]) -> tuple[int, int, int]:
    st = rs.get("status") or {}
    return int(st.get("replicas") or 0), int(st.get("readyReplicas") or 0), int(st.get("availableReplicas") or 0)


def register(rt: Runtime) -> None:
    rt.reconcilers[REPLICASETS] = reconcile_replicaset
    rt.fanout[REPLICASETS].append(self_fanout(REPLICASETS))
    rt.fanout[REPLICASETS].append(owner_fanout)

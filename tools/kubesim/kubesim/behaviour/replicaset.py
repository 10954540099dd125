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
from .kubelet import new_pod
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
            if new_pod(rt, REPLICASETS, rs, template, f"{base}-{suffix()}") is None and (REPLICASETS, ns, name) in rt.create_failures:
                break     # as the controller's slow-start batches: stop at the first refused create, retry later
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
    failure = rt.create_failures.get((REPLICASETS, ns, name))
    if failure is not None and len(pods) < want:
        # kube-controller-manager's calculateStatus: the refused create, kept until a sync succeeds
        old = next((c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
        conds.append(old or {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": failure[1],
                             "lastTransitionTime": now()})
    if conds:
        status["conditions"] = conds
    write_status(rt, REPLICASETS, rs, status)


def _rs_counts(rs: dict[str, Any]) -> tuple[int, int, int]:
    st = rs.get("status") or {}
    return int(st.get("replicas") or 0), int(st.get("readyReplicas") or 0), int(st.get("availableReplicas") or 0)


def register(rt: Runtime) -> None:
    rt.reconcilers[REPLICASETS] = reconcile_replicaset
    rt.fanout[REPLICASETS].append(self_fanout(REPLICASETS))
    rt.fanout[REPLICASETS].append(owner_fanout)

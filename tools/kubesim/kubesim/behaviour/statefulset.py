"""The StatefulSet controller: ordinal pods, PVCs from volumeClaimTemplates, ordered rollout, status."""

from __future__ import annotations

import json
import random
from typing import Any

from .common import (
    PVCS,
    is_active,
    is_ready,
    labels_of,
    owned_by,
    self_fanout,
    template_hash,
    write_status,
)
from .kubelet import new_pod
from .runtime import (
    PODS,
    STATEFULSETS,
    Runtime,
    meta,
)


# ------------------------------------------------------------------------------------- StatefulSets
def _ordinal(sts_name: str, pod_name: str) -> int | None:
    if not pod_name.startswith(sts_name + "-"):
        return None
    tail = pod_name[len(sts_name) + 1:]
    return int(tail) if tail.isdigit() else None


def reconcile_statefulset(rt: Runtime, ns: str | None, name: str) -> None:
    sts = rt.cache.get(STATEFULSETS, ns, name)
    if sts is None or meta(sts).get("deletionTimestamp"):
        return
    spec = sts.get("spec") or {}
    want = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    template = spec.get("template") or {}
    update_rev = f"{name}-{template_hash(template)}"
    parallel = spec.get("podManagementPolicy") == "Parallel"
    strategy = spec.get("updateStrategy") or {}
    partition = int(((strategy.get("rollingUpdate") or {}).get("partition")) or 0)
    pods = {}
    for p in owned_by(rt, sts, PODS):
        o = _ordinal(name, meta(p)["name"])
        if o is not None and is_active(p):
            pods[o] = p
    old_status = sts.get("status") or {}
    current_rev = old_status.get("currentRevision") or update_rev
    # scale down: highest ordinal first (one at a time unless Parallel)
    excess = sorted((o for o in pods if o >= want), reverse=True)
    for o in excess[: None if parallel else 1]:
        rt.delete(PODS, ns, meta(pods.pop(o))["name"])
    # create missing ordinals
    for o in range(want):
        if o in pods:
            continue
        if not parallel and not all(o2 in pods and is_ready(pods[o2]) for o2 in range(o)):
            break
        rev = update_rev if o >= partition or current_rev == update_rev else current_rev
        tmpl = template
        pname = f"{name}-{o}"
        labels = {"controller-revision-hash": rev, "statefulset.kubernetes.io/pod-name": pname, "apps.kubernetes.io/pod-index": str(o)}
        extra: dict[str, Any] = {"hostname": pname}
        if spec.get("serviceName"):
            extra["subdomain"] = spec["serviceName"]
        claims = _statefulset_claims(rt, sts, pname)
        if claims:
            extra["volumes"] = [v for v in ((template.get("spec") or {}).get("volumes") or []) if v.get("name") not in {c["name"] for c in claims}] + claims
        p = new_pod(rt, STATEFULSETS, sts, tmpl, pname, labels, spec_extra=extra)
        if p is not None:
            pods[o] = p
        if not parallel:
            break
    # rolling update: replace the highest outdated ordinal >= partition once everything is ready
    if (strategy.get("type") or "RollingUpdate") == "RollingUpdate" and len(pods) == want and all(is_ready(p) for p in pods.values()):
        outdated = sorted((o for o, p in pods.items() if o >= partition and labels_of(p).get("controller-revision-hash") != update_rev), reverse=True)
        if outdated:
            rt.delete(PODS, ns, meta(pods.pop(outdated[0]))["name"])
    ready = sum(1 for p in pods.values() if is_ready(p))
    updated = sum(1 for p in pods.values() if labels_of(p).get("controller-revision-hash") == update_rev)
    if updated == want and ready == want and len(pods) == want:
        current_rev = update_rev
    current = sum(1 for p in pods.values() if labels_of(p).get("controller-revision-hash") == current_rev)
    status = {"observedGeneration": meta(sts).get("generation", 1), "replicas": len(pods), "readyReplicas": ready, "currentReplicas": current,
              "updatedReplicas": updated, "availableReplicas": ready, "currentRevision": current_rev, "updateRevision": update_rev, "collisionCount": 0}
    for k in ("readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"):
        if not status[k] and k != "availableReplicas":
            del status[k]
    write_status(rt, STATEFULSETS, sts, status)


def _statefulset_claims(rt: Runtime, sts: dict[str, Any], pod_name: str) -> list[dict[str, Any]]:
    """PVCs from volumeClaimTemplates, created once and bound at once (a simulated provisioner)."""
    ns = meta(sts).get("namespace")
    volumes = []
    for vct in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
        tname = (vct.get("metadata") or {}).get("name") or "data"
        claim = f"{tname}-{pod_name}"
        volumes.append({"name": tname, "persistentVolumeClaim": {"claimName": claim}})
        if rt.store.get(PVCS, ns, claim) is not None:
            continue
        pspec = json.loads(json.dumps(vct.get("spec") or {}))
        pspec.setdefault("accessModes", ["ReadWriteOnce"])
        pspec.setdefault("volumeMode", "Filesystem")
        pspec.setdefault("storageClassName", "oci-bv")
        pspec["volumeName"] = f"pvc-{random.getrandbits(64):016x}"
        storage = ((pspec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        labels = dict(((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": claim, "namespace": ns, "labels": labels,
                            "annotations": {"pv.kubernetes.io/bind-completed": "yes", "volume.kubernetes.io/storage-provisioner": "kubesim"}},
               "spec": pspec, "status": {"phase": "Bound", "accessModes": pspec["accessModes"], "capacity": {"storage": storage}}}
        out = rt.create(PVCS, pvc)
        if out is not None and (out.get("status") or {}).get("phase") != "Bound":
            rt.update_status(PVCS, out, pvc["status"])
    return volumes


def register(rt: Runtime) -> None:
    rt.reconcilers[STATEFULSETS] = reconcile_statefulset
    rt.fanout[STATEFULSETS].append(self_fanout(STATEFULSETS))

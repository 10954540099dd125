"""The DaemonSet controller: one pod per matching node, status."""

from __future__ import annotations

from typing import Any

from .common import (
    is_active,
    is_ready,
    labels_of,
    owned_by,
    self_fanout,
    suffix,
    template_hash,
    write_status,
)
from .kubelet import new_pod
from .nodes import node_fits, ready_nodes
from .runtime import (
    DAEMONSETS,
    NODES,
    PODS,
    Runtime,
    meta,
)


# ------------------------------------------------------------------------------------- DaemonSets
def reconcile_daemonset(rt: Runtime, ns: str | None, name: str) -> None:
    ds = rt.cache.get(DAEMONSETS, ns, name)
    if ds is None or meta(ds).get("deletionTimestamp"):
        return
    spec = ds.get("spec") or {}
    template = spec.get("template") or {}
    h = template_hash(template)
    gen = meta(ds).get("generation", 1)
    # DaemonSet pods tolerate node.kubernetes.io/unschedulable: a cordoned node keeps (and gets) its pod
    nodes = [meta(n)["name"] for n in ready_nodes(rt, cordoned=True) if node_fits(n, template.get("spec") or {})]
    by_node: dict[str, list[dict[str, Any]]] = {}
    for p in owned_by(rt, ds, PODS):
        if is_active(p):
            by_node.setdefault((p.get("spec") or {}).get("nodeName") or "", []).append(p)
    for node, ps in list(by_node.items()):
        extra = ps if node in nodes else ps
        keep = 1 if node in nodes else 0
        for p in extra[keep:]:
            rt.delete(PODS, ns, meta(p)["name"])
        by_node[node] = ps[:keep]
        if not keep:
            del by_node[node]
    for node in nodes:
        if node not in by_node:
            p = new_pod(rt, DAEMONSETS, ds, template, f"{name}-{suffix()}",
                        {"controller-revision-hash": h, "pod-template-generation": str(gen)}, node=node)
            if p is not None:
                by_node[node] = [p]
    pods = [ps[0] for ps in by_node.values() if ps]
    if ((spec.get("updateStrategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate":
        outdated = [p for p in pods if labels_of(p).get("controller-revision-hash") != h]
        if outdated and all(is_ready(p) for p in pods if p not in outdated):
            victim = outdated[0]
            rt.delete(PODS, ns, meta(victim)["name"])
            pods.remove(victim)
    ready = sum(1 for p in pods if is_ready(p))
    updated = sum(1 for p in pods if labels_of(p).get("controller-revision-hash") == h)
    status = {"observedGeneration": gen, "desiredNumberScheduled": len(nodes), "currentNumberScheduled": len(pods), "numberMisscheduled": 0,
              "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": updated}
    if len(nodes) - ready > 0:
        status["numberUnavailable"] = len(nodes) - ready
    if not ready:
        del status["numberAvailable"]
    write_status(rt, DAEMONSETS, ds, status)


def _node_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    for ds in rt.cache.list(DAEMONSETS):
        rt.mark(DAEMONSETS, meta(ds).get("namespace"), meta(ds)["name"])


def register(rt: Runtime) -> None:
    rt.reconcilers[DAEMONSETS] = reconcile_daemonset
    rt.fanout[DAEMONSETS].append(self_fanout(DAEMONSETS))
    rt.fanout[NODES].append(_node_fanout)

"""Simulated nodes (what kubelets register): kubesim-node-N, Ready, with the Kubernetes version of the settings."""

from __future__ import annotations

import re
import time
from typing import Any

from .common import (
    CONTAINERD,
    labels_of,
    now,
)
from .runtime import (
    NODES,
    PODS,
    Runtime,
    meta,
)


# ------------------------------------------------------------------------------------- nodes
def node_object(i: int, version: str) -> dict[str, Any]:
    name = f"kubesim-node-{i}"
    ts = now()
    cond = [
        {"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": ts, "lastTransitionTime": ts}
        for t, r, m in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))
    ]
    cond.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status (simulated by kubesim)",
                 "lastHeartbeatTime": ts, "lastTransitionTime": ts})
    resources = {"cpu": "4", "memory": "16Gi", "pods": "2000", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                       "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                       "node.kubernetes.io/instance-type": "VM.Standard.E4.Flex",
                       "topology.kubernetes.io/zone": f"KUBESIM-AD-{(i - 1) % 3 + 1}"},
            "annotations": {"kubesim.okemesh.io/simulated": "true"},
        },
        "spec": {"podCIDR": f"10.244.{i}.0/24", "podCIDRs": [f"10.244.{i}.0/24"], "providerID": f"kubesim://{name}"},
        "status": {
            "conditions": cond,
            "addresses": [{"type": "InternalIP", "address": node_ip(i)}, {"type": "Hostname", "address": name}],
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version, "containerRuntimeVersion": CONTAINERD,
                         "operatingSystem": "linux", "architecture": "amd64", "osImage": "kubesim simulated node",
                         "kernelVersion": "6.8.0-kubesim", "machineID": f"kubesim{i:024d}", "systemUUID": f"kubesim-{i}", "bootID": f"kubesim-{i}"},
            "phase": "Running",
        },
    }


def node_ip(i: int) -> str:
    return f"10.0.10.{10 + i}"


def ensure_nodes(rt: Runtime) -> None:
    want = max(0, int(rt.settings.nodes))
    for i in range(1, want + 1):
        name = f"kubesim-node-{i}"
        if rt.store.get(NODES, None, name) is None:
            node = node_object(i, rt.settings.kubernetes_version)
            out = rt.create(NODES, node)
            if out is not None and not out.get("status"):
                rt.update_status(NODES, out, node["status"])
    for node in rt.cache.list(NODES):
        m = re.fullmatch(r"kubesim-node-(\d+)", meta(node).get("name", ""))
        if m and int(m.group(1)) > want:
            rt.delete(NODES, None, meta(node)["name"])


def ready_nodes(rt: Runtime, *, cordoned: bool = False) -> list[dict[str, Any]]:
    """Ready nodes; cordoned (unschedulable) ones too with ``cordoned=True`` (DaemonSet pods tolerate that taint)."""
    out = []
    for n in rt.cache.list(NODES):
        if meta(n).get("deletionTimestamp") or ((n.get("spec") or {}).get("unschedulable") and not cordoned):
            continue
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in (n.get("status") or {}).get("conditions") or []):
            out.append(n)
    out.sort(key=lambda n: meta(n)["name"])
    return out


def pick_node(rt: Runtime, pod_spec: dict[str, Any]) -> str | None:
    nodes = [n for n in ready_nodes(rt) if node_fits(n, pod_spec)]
    if not nodes:
        return None
    rt.rr += 1
    return meta(nodes[rt.rr % len(nodes)])["name"]


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """A toleration matches a taint (k8s.io/api/core/v1 Toleration.ToleratesTaint)."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return True
    return toleration.get("operator", "Equal") == "Equal" and bool(toleration.get("key")) and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated(node: dict[str, Any], pod_spec: dict[str, Any], effects: tuple[str, ...]) -> list[dict[str, Any]]:
    tols = pod_spec.get("tolerations") or []
    return [t for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") in effects and not any(tolerates(tol, t) for tol in tols)]


def node_fits(node: dict[str, Any], pod_spec: dict[str, Any]) -> bool:
    """Taints (NoSchedule, NoExecute), nodeSelector and required node affinity (matchExpressions on labels,
    matchFields on metadata.name)."""
    if untolerated(node, pod_spec, ("NoSchedule", "NoExecute")):
        return False
    sel = pod_spec.get("nodeSelector") or {}
    labels = labels_of(node)
    if not all(labels.get(k) == v for k, v in sel.items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    fields = {"metadata.name": meta(node).get("name", "")}
    return not required or any(_term_matches(t, labels, fields) for t in required)


def _term_matches(term: dict[str, Any], labels: dict[str, str], fields: dict[str, str]) -> bool:
    checks = [(r, labels) for r in term.get("matchExpressions") or []] + [(r, fields) for r in term.get("matchFields") or []]
    if not checks:
        return False
    for req, values in checks:
        key, op, want = req.get("key", ""), req.get("operator", ""), [str(v) for v in req.get("values") or []]
        have = values.get(key)
        ok = {"In": have is not None and have in want, "NotIn": have is None or have not in want,
              "Exists": have is not None, "DoesNotExist": have is None,
              "Gt": have is not None and have.isdigit() and bool(want) and int(have) > int(want[0]),
              "Lt": have is not None and have.isdigit() and bool(want) and int(have) < int(want[0])}.get(op, False)
        if not ok:
            return False
    return True


def taint_eviction(rt: Runtime) -> None:
    """The taint eviction controller: pods on a node with a NoExecute taint they do not tolerate are deleted
    (gracefully, as kube-controller-manager does); a toleration with tolerationSeconds delays that."""
    from .kubelet import emit_event   # noqa: PLC0415 - kubelet imports this module
    due = rt.taint_due
    seen = set()
    for node in rt.cache.list(NODES):
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        if not taints:
            continue
        for pod in rt.cache.list(PODS):
            spec, md = pod.get("spec") or {}, meta(pod)
            if spec.get("nodeName") != meta(node).get("name") or md.get("deletionTimestamp"):
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            tols = spec.get("tolerations") or []
            evict_in = 0.0 if untolerated(node, spec, ("NoExecute",)) else min(
                (float(tol["tolerationSeconds"]) for t in taints for tol in tols
                 if tolerates(tol, t) and tol.get("tolerationSeconds") is not None), default=-1.0)
            if evict_in < 0:
                continue
            uid = md.get("uid", "")
            seen.add(uid)
            when = due.setdefault(uid, time.monotonic() + max(0.0, evict_in))
            if time.monotonic() >= when:
                message = f"Marking for deletion Pod {md.get('namespace')}/{md.get('name')}"
                emit_event(rt, {**pod, "kind": "Pod", "apiVersion": "v1"}, "Normal", "TaintManagerEviction", message,
                           component="taint-eviction-controller")
                rt.delete(PODS, md.get("namespace"), md.get("name"))
    for uid in [u for u in due if u not in seen]:
        del due[uid]


def periodic(rt: Runtime) -> None:
    if len([n for n in rt.cache.list(NODES) if re.fullmatch(r"kubesim-node-\d+", meta(n).get("name", ""))]) != int(rt.settings.nodes):
        ensure_nodes(rt)


def _node_fanout(rt: Runtime, etype: str, node: dict[str, Any], old: dict[str, Any] | None) -> None:
    """The scheduler retries unscheduled pods when a node changes (a taint removed, a node uncordoned)."""
    if etype == "DELETED" or (old is not None and old.get("spec") == node.get("spec") and labels_of(old) == labels_of(node)):
        return
    for pod in rt.cache.list(PODS):
        if not (pod.get("spec") or {}).get("nodeName") and not meta(pod).get("deletionTimestamp"):
            rt.mark(PODS, meta(pod).get("namespace"), meta(pod)["name"])


def register(rt: Runtime) -> None:
    rt.fanout[NODES].append(_node_fanout)
    rt.periodic.append(periodic)
    rt.periodic.append(taint_eviction)

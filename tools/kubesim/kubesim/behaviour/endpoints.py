"""The endpoints controllers: Endpoints and EndpointSlices of Services from ready pods."""

from __future__ import annotations

import json
from typing import Any

from .common import (
    is_active,
    is_ready,
    labels_of,
    self_fanout,
    suffix,
)
from .runtime import (
    ENDPOINTS,
    PODS,
    SERVICES,
    SLICES,
    Runtime,
    meta,
)


def _resolve_port(pod: dict[str, Any], target: Any) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return p.get("containerPort")
    return None


def service_pods(rt: Runtime, svc: dict[str, Any]) -> list[dict[str, Any]]:
    sel = (svc.get("spec") or {}).get("selector") or {}
    if not sel:
        return []
    ns = meta(svc).get("namespace")
    return [p for p in rt.cache.list(PODS, ns) if is_active(p) and (p.get("status") or {}).get("podIP")
            and all(labels_of(p).get(k) == v for k, v in sel.items())]


def reconcile_endpoints(rt: Runtime, ns: str | None, name: str) -> None:
    svc = rt.cache.get(SERVICES, ns, name)
    slices = [s for s in rt.cache.list(SLICES, ns) if labels_of(s).get("kubernetes.io/service-name") == name
              and labels_of(s).get("endpointslice.kubernetes.io/managed-by") == "endpointslice-controller.k8s.io"]
    if svc is None:
        ep = rt.cache.get(ENDPOINTS, ns, name)
        if ep is not None and labels_of(ep).get("endpoints.kubernetes.io/managed-by") == "endpoint-controller":
            rt.delete(ENDPOINTS, ns, name)
        for s in slices:
            rt.delete(SLICES, ns, meta(s)["name"])
        return
    spec = svc.get("spec") or {}
    if not spec.get("selector") or spec.get("type") == "ExternalName":
        return
    pods = sorted(service_pods(rt, svc), key=lambda p: meta(p)["name"])
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple, dict[str, list]] = {}
    slice_eps = []
    slice_ports = None
    for p in pods:
        ports = []
        for sp in spec.get("ports") or []:
            tp = _resolve_port(p, sp.get("targetPort", sp.get("port")))
            if tp is None:
                continue
            e = {"port": tp, "protocol": sp.get("protocol", "TCP")}
            if sp.get("name"):
                e["name"] = sp["name"]
            if sp.get("appProtocol"):
                e["appProtocol"] = sp["appProtocol"]
            ports.append(e)
        if not ports and spec.get("ports"):
            continue
        key = tuple(json.dumps(x, sort_keys=True) for x in ports)
        g = groups.setdefault(key, {"ports": ports, "ready": [], "not": []})
        pmd = meta(p)
        addr = {"ip": p["status"]["podIP"], "nodeName": (p.get("spec") or {}).get("nodeName"),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": pmd["name"], "uid": pmd["uid"]}}
        if (p.get("spec") or {}).get("hostname") and (p.get("spec") or {}).get("subdomain") == name:
            addr["hostname"] = p["spec"]["hostname"]
        ready = is_ready(p) or publish_all
        g["ready" if ready else "not"].append(addr)
        if slice_ports is None:
            slice_ports = ports
        if key == tuple(json.dumps(x, sort_keys=True) for x in slice_ports):
            slice_eps.append({"addresses": [addr["ip"]], "conditions": {"ready": ready, "serving": ready, "terminating": False},
                              "nodeName": addr["nodeName"], "targetRef": addr["targetRef"]})
    subsets = []
    for g in groups.values():
        s: dict[str, Any] = {}
        if g["ready"]:
            s["addresses"] = g["ready"]
        if g["not"]:
            s["notReadyAddresses"] = g["not"]
        s["ports"] = g["ports"]
        subsets.append(s)
    labels = dict(labels_of(svc))
    labels["endpoints.kubernetes.io/managed-by"] = "endpoint-controller"
    if spec.get("clusterIP") == "None":
        labels["service.kubernetes.io/headless"] = ""
    ep = rt.cache.get(ENDPOINTS, ns, name)
    if ep is None:
        body = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns, "labels": labels}}
        if subsets:
            body["subsets"] = subsets
        rt.create(ENDPOINTS, body)
    elif (ep.get("subsets") or []) != subsets or labels_of(ep) != labels:
        def set_subsets(cur: dict[str, Any]) -> bool:
            cur["metadata"]["labels"] = labels
            if subsets:
                cur["subsets"] = subsets
            else:
                cur.pop("subsets", None)
            return True
        rt.modify(ENDPOINTS, ns, name, set_subsets)
    slabels = {k: v for k, v in labels.items() if k != "endpoints.kubernetes.io/managed-by"}
    slabels.update({"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
    sports = slice_ports if slice_ports is not None else [
        {k: v for k, v in (("name", sp.get("name")), ("protocol", sp.get("protocol", "TCP"))) if v is not None} for sp in spec.get("ports") or []]
    desired = {"addressType": "IPv4", "endpoints": slice_eps, "ports": sports}
    if not slices:
        body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-{suffix()}", "namespace": ns, "labels": slabels,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": meta(svc)["uid"],
                                                  "controller": True, "blockOwnerDeletion": True}]},
                **desired}
        rt.create(SLICES, body)
    else:
        s0 = slices[0]
        if any(s0.get(k) != v for k, v in desired.items()) or labels_of(s0) != slabels:
            def set_slice(cur: dict[str, Any]) -> bool:
                cur["metadata"]["labels"] = slabels
                cur.update(desired)
                return True
            rt.modify(SLICES, ns, meta(s0)["name"], set_slice)
        for extra in slices[1:]:
            rt.delete(SLICES, ns, meta(extra)["name"])


def _pod_fanout(rt: Runtime, etype: str, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
    """A pod whose readiness, labels or IP changed (or that went away) changes its Services' endpoints."""
    if old is not None and (old.get("status") or {}).get("conditions") == (pod.get("status") or {}).get("conditions") \
            and labels_of(old) == labels_of(pod) and (old.get("status") or {}).get("podIP") == (pod.get("status") or {}).get("podIP") \
            and etype != "DELETED":
        return
    ns = meta(pod).get("namespace")
    for lbls in (labels_of(pod), labels_of(old) if old else None):
        if lbls is None:
            continue
        for svc in rt.cache.list(SERVICES, ns):
            sel = (svc.get("spec") or {}).get("selector")
            if sel and all(lbls.get(k) == v for k, v in sel.items()):
                rt.mark(SERVICES, ns, meta(svc)["name"])


def _endpoints_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if etype == "DELETED" and labels_of(obj).get("endpoints.kubernetes.io/managed-by") == "endpoint-controller":
        rt.mark(SERVICES, meta(obj).get("namespace"), meta(obj)["name"])


def register(rt: Runtime) -> None:
    rt.reconcilers[SERVICES] = reconcile_endpoints
    rt.fanout[SERVICES].append(self_fanout(SERVICES))
    rt.fanout[PODS].append(_pod_fanout)
    rt.fanout[ENDPOINTS].append(_endpoints_fanout)

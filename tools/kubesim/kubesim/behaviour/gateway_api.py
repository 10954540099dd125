"""The Kubernetes Gateway API as istiod implements it: a Deployment and LoadBalancer Service per
Gateway of an Istio class (or a manual Service via spec.addresses), HTTPRoute status. The
GatewayClasses themselves are created by istiod's class controller (``istiod.py``)."""

from __future__ import annotations

import json
import random
import re
import time
from typing import Any

from . import ingress, istiod
from .common import (
    labels_of,
)
from .runtime import (
    SERVICES,
    Runtime,
    meta,
)

# ------------------------------------------------------------------------------------- Kubernetes Gateway API
K8S_GATEWAYS = "gateways.gateway.networking.k8s.io"
HTTPROUTES = "httproutes.gateway.networking.k8s.io"
GATEWAYCLASSES = "gatewayclasses.gateway.networking.k8s.io"
ISTIO_CONTROLLER = "istio.io/gateway-controller"
GW_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


def _path_match(m: dict[str, Any], path: str) -> bool:
    p = (m or {}).get("path") or {"type": "PathPrefix", "value": "/"}
    value, kind = p.get("value", "/"), p.get("type", "PathPrefix")
    path = path.split("?", 1)[0]
    if kind == "Exact":
        return path == value
    if kind == "RegularExpression":
        return re.fullmatch(value, path) is not None
    value = value.rstrip("/") or "/"
    return value == "/" or path == value or path.startswith(value + "/")


def _manual_service(gw: dict[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) of the existing Service a Gateway binds to through ``spec.addresses``
    (Istio's "manual deployment": a Hostname ``<svc>.<ns>.svc[.cluster.local]``), else None."""
    for addr in (gw.get("spec") or {}).get("addresses") or []:
        if (addr.get("type") or "IPAddress") != "Hostname":
            continue
        parts = (addr.get("value") or "").split(".")
        if len(parts) >= 3 and parts[2] == "svc":
            return parts[1], parts[0]
    return None


def _gateways_of_service(rt: Runtime, svc: dict[str, Any]) -> list[dict[str, Any]]:
    """Gateway API Gateways served by this Service: deployed for it (label) or bound to it (addresses)."""
    ns = meta(svc).get("namespace") or ""
    gw_name = labels_of(svc).get(GW_NAME_LABEL)
    if gw_name:
        gw = rt.cache.get(K8S_GATEWAYS, ns, gw_name)
        return [gw] if gw is not None else []
    return [gw for gw in rt.cache.list(K8S_GATEWAYS) if _manual_service(gw) == (ns, meta(svc).get("name"))]


def _route_k8s_gateway(rt: Runtime, svc: dict[str, Any], svc_port: int, host: str, method: str, path: str,
                       headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """A Service serving a gateway.networking.k8s.io Gateway: listeners + attached HTTPRoutes."""
    envoy = {"server": "istio-envoy"}
    with rt.cache.lock:
        gateways = _gateways_of_service(rt, svc)
        routes = rt.cache.list(HTTPROUTES)
    for gw in gateways:
        answer = _route_one_k8s_gateway(gw, routes, rt, svc_port, host, method, path, headers)
        if answer is not None:
            return answer
    return 404, envoy, b""


def _route_one_k8s_gateway(gw: dict[str, Any], routes: list[dict[str, Any]], rt: Runtime, svc_port: int, host: str, method: str,
                           path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes] | None:
    envoy = {"server": "istio-envoy"}
    ns = meta(gw).get("namespace") or ""
    gw_name = meta(gw)["name"]
    listeners = [ln for ln in (gw.get("spec") or {}).get("listeners") or []
                 if int(ln.get("port") or -1) == svc_port and ln.get("protocol", "HTTP") in ("HTTP", "HTTPS")
                 and (not ln.get("hostname") or ingress._host_match(ln["hostname"], host))]
    if not listeners:
        return None
    for route in sorted(routes, key=lambda r: meta(r).get("creationTimestamp", "")):
        rns = meta(route).get("namespace") or ""
        rspec = route.get("spec") or {}
        attached = False
        for ref in rspec.get("parentRefs") or []:
            if ref.get("name") != gw_name or (ref.get("namespace") or rns) != ns:
                continue
            for ln in listeners:
                if ref.get("sectionName") and ref["sectionName"] != ln.get("name"):
                    continue
                if ref.get("port") and int(ref["port"]) != int(ln.get("port")):
                    continue
                allowed = (((ln.get("allowedRoutes") or {}).get("namespaces") or {}).get("from")) or "Same"
                if allowed == "All" or (allowed == "Same" and rns == ns):
                    attached = True
        if not attached:
            continue
        hostnames = rspec.get("hostnames") or []
        if hostnames and not any(ingress._host_match(h, host) for h in hostnames):
            continue
        for rule in rspec.get("rules") or []:
            matches = rule.get("matches") or [{}]
            if not any(_path_match(m, path) and (not m.get("method") or m["method"] == method)
                       and all(headers.get((h.get("name") or "").lower()) == h.get("value") for h in m.get("headers") or [])
                       for m in matches):
                continue
            backends = [b for b in rule.get("backendRefs") or [] if (b.get("kind") or "Service") == "Service"]
            if not backends:
                return 500, envoy, b""
            weights = [int(b.get("weight", 1)) for b in backends]
            b = random.choices(backends, weights=weights)[0] if sum(weights) else backends[0]
            return ingress._answer(rt, b.get("namespace") or rns, b["name"], path, f"{ns}/{gw_name}")
    return None


def reconcile_k8s_gateway(rt: Runtime, ns: str | None, name: str) -> None:
    """What istiod's gateway deployment controller does for a Gateway of class ``istio``."""
    gw = rt.cache.get(K8S_GATEWAYS, ns, name)
    if gw is None or meta(gw).get("deletionTimestamp"):
        return
    cls = (gw.get("spec") or {}).get("gatewayClassName")
    gwc = rt.cache.get(GATEWAYCLASSES, None, cls or "")
    if gwc is None or (gwc.get("spec") or {}).get("controllerName") != ISTIO_CONTROLLER:
        return
    if not istiod.istiod_present(rt):
        return
    listeners = (gw.get("spec") or {}).get("listeners") or []
    manual = _manual_service(gw)
    dep_name = manual[1] if manual else f"{name}-{cls}"
    owner = [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": name, "uid": meta(gw)["uid"]}]
    labels = {GW_NAME_LABEL: name, "gateway.istio.io/managed": "istio.io-gateway-controller", "istio.io/gateway-name": name}
    pod_labels = {**labels, "sidecar.istio.io/inject": "true", "service.istio.io/canonical-name": dep_name}
    ports = [{"name": f"{(ln.get('protocol') or 'HTTP').lower()}-{ln.get('port')}", "port": int(ln["port"]), "protocol": "TCP",
              "targetPort": int(ln["port"])} for ln in listeners if ln.get("port")]
    ports.insert(0, {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021})
    if manual:  # bound to an existing Service (e.g. a Helm-installed gateway): nothing is deployed
        svc = rt.cache.get(SERVICES, manual[0], manual[1])
    else:
        svc = _deploy_k8s_gateway(rt, ns, dep_name, name, owner, labels, pod_labels, ports)
    _write_k8s_gateway_status(rt, gw, ns, name, dep_name, manual, listeners, ports, svc)


def _deploy_k8s_gateway(rt: Runtime, ns: str | None, dep_name: str, name: str, owner: list[dict[str, Any]],
                        labels: dict[str, str], pod_labels: dict[str, str], ports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The Deployment and LoadBalancer Service istiod creates for a Gateway (automated deployment)."""
    if rt.store.get_ref("serviceaccounts", ns, dep_name) is None:
        # istiod creates the gateway's ServiceAccount too (its pods name it)
        rt.create("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                      "metadata": {"name": dep_name, "namespace": ns, "labels": labels, "ownerReferences": owner}})
    if rt.store.get("deployments.apps", ns, dep_name) is None:
        rt.create("deployments.apps", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": dep_name, "namespace": ns, "labels": labels, "ownerReferences": owner},
            "spec": {"replicas": 1, "selector": {"matchLabels": {GW_NAME_LABEL: name}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                     "template": {"metadata": {"labels": pod_labels, "annotations": {"inject.istio.io/templates": "gateway"}},
                                  "spec": {"containers": [{"name": "istio-proxy", "image": "auto",
                                                           "ports": [{"containerPort": p["targetPort"], "name": p["name"], "protocol": "TCP"} for p in ports]}],
                                           "serviceAccountName": dep_name, "restartPolicy": "Always"}}},
        })
    svc = rt.cache.get(SERVICES, ns, dep_name)
    if svc is None:
        body = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": dep_name, "namespace": ns, "labels": labels, "ownerReferences": owner},
                "spec": {"type": "LoadBalancer", "selector": {GW_NAME_LABEL: name}, "ports": ports}}
        svc = rt.create(SERVICES, rt.defaulted(SERVICES, body))
    elif [(p.get("port"), p.get("name")) for p in (svc.get("spec") or {}).get("ports") or []] != [(p["port"], p["name"]) for p in ports]:
        def set_ports(cur: dict[str, Any]) -> bool:
            old = {p.get("port"): p.get("nodePort") for p in cur["spec"].get("ports") or []}
            cur["spec"]["ports"] = [{**p, **({"nodePort": old[p["port"]]} if old.get(p["port"]) else {})} for p in ports]
            return True
        svc = rt.modify(SERVICES, ns, dep_name, lambda cur: set_ports(cur) and bool(rt.defaulted(SERVICES, cur, cur))) or svc
    return svc


def _write_k8s_gateway_status(rt: Runtime, gw: dict[str, Any], ns: str | None, name: str, dep_name: str,
                              manual: tuple[str, str] | None, listeners: list[dict[str, Any]], ports: list[dict[str, Any]],
                              svc: dict[str, Any] | None) -> None:
    ingress = (((svc or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addresses = [{"type": "IPAddress", "value": i["ip"]} for i in ingress if i.get("ip")]
    gen = meta(gw).get("generation", 1)
    programmed = bool(addresses)
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    routes = [r for r in rt.cache.list(HTTPROUTES)
              if any(ref.get("name") == name and (ref.get("namespace") or meta(r).get("namespace")) == ns
                     for ref in (r.get("spec") or {}).get("parentRefs") or [])]

    def cond(ctype: str, ok: bool, reason: str, message: str, prev: list[dict[str, Any]]) -> dict[str, Any]:
        old = next((c for c in prev if c.get("type") == ctype), None)
        status = "True" if ok else "False"
        return {"type": ctype, "status": status, "reason": reason, "message": message, "observedGeneration": gen,
                "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == status else ts}

    prev = (gw.get("status") or {}).get("conditions") or []
    svc_fqdn = f"{dep_name}.{manual[0] if manual else ns}.svc.cluster.local"
    status: dict[str, Any] = {
        "conditions": [cond("Accepted", True, "Accepted", "Resource accepted", prev),
                       cond("Programmed", programmed, "Programmed" if programmed else "AddressNotAssigned",
                            f"Resource programmed, assigned to service(s) {svc_fqdn}:{','.join(str(p['port']) for p in ports[1:])}"
                            if programmed else "Assigned to service(s) but no address assigned yet (simulated load balancer pending)", prev)],
        "listeners": [{"name": ln.get("name"), "attachedRoutes": sum(1 for r in routes if meta(r).get("namespace") == ns),
                       "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                       "conditions": [cond("Accepted", True, "Accepted", "No errors found", []),
                                      cond("Programmed", True, "Programmed", "No errors found", []),
                                      cond("ResolvedRefs", True, "ResolvedRefs", "No errors found", [])]} for ln in listeners],
    }
    if addresses:
        status["addresses"] = addresses
    old_status = gw.get("status") or {}

    def strip(st: dict[str, Any]) -> str:
        def conds(cs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in cs or []]
        return json.dumps({**st, "conditions": conds(st.get("conditions") or []),
                           "listeners": [{**ln, "conditions": conds(ln.get("conditions") or [])} for ln in st.get("listeners") or []]}, sort_keys=True)

    if strip(old_status) != strip(status):
        rt.update_status(K8S_GATEWAYS, gw, status)
    for r in routes:
        rt.mark(HTTPROUTES, meta(r).get("namespace"), meta(r)["name"])


def reconcile_httproute(rt: Runtime, ns: str | None, name: str) -> None:
    route = rt.cache.get(HTTPROUTES, ns, name)
    if route is None:
        return
    parents = []
    for ref in (route.get("spec") or {}).get("parentRefs") or []:
        gw = rt.cache.get(K8S_GATEWAYS, ref.get("namespace") or ns, ref.get("name", ""))
        if gw is None:
            continue
        gwc = rt.cache.get(GATEWAYCLASSES, None, (gw.get("spec") or {}).get("gatewayClassName") or "")
        if gwc is None or (gwc.get("spec") or {}).get("controllerName") != ISTIO_CONTROLLER:
            continue
        missing = [b.get("name") for rule in (route.get("spec") or {}).get("rules") or [] for b in rule.get("backendRefs") or []
                   if rt.cache.get(SERVICES, b.get("namespace") or ns, b.get("name", "")) is None]
        gen = meta(route).get("generation", 1)
        parents.append({"parentRef": ref, "controllerName": ISTIO_CONTROLLER, "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "Route was valid", "observedGeneration": gen,
             "lastTransitionTime": "1970-01-01T00:00:00Z"},
            {"type": "ResolvedRefs", "status": "False" if missing else "True", "reason": "BackendNotFound" if missing else "ResolvedRefs",
             "message": f"backend(s) not found: {', '.join(missing)}" if missing else "All references resolved", "observedGeneration": gen,
             "lastTransitionTime": "1970-01-01T00:00:00Z"}]})
    if ((route.get("status") or {}).get("parents") or []) != parents:
        rt.update_status(HTTPROUTES, route, {"parents": parents})


def _gw_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if etype != "DELETED":
        rt.mark(K8S_GATEWAYS, meta(obj).get("namespace"), meta(obj)["name"])


def _gw_service_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    for gw in _gateways_of_service(rt, obj):
        rt.mark(K8S_GATEWAYS, meta(gw).get("namespace"), meta(gw)["name"])


def _route_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if etype == "DELETED":
        return
    rt.mark(HTTPROUTES, meta(obj).get("namespace"), meta(obj)["name"])
    for ref in (obj.get("spec") or {}).get("parentRefs") or []:
        rt.mark(K8S_GATEWAYS, ref.get("namespace") or meta(obj).get("namespace"), ref.get("name", ""))


def _class_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    for gw in rt.cache.list(K8S_GATEWAYS):
        rt.mark(K8S_GATEWAYS, meta(gw).get("namespace"), meta(gw)["name"])


def register(rt: Runtime) -> None:
    rt.reconcilers[K8S_GATEWAYS] = reconcile_k8s_gateway
    rt.reconcilers[HTTPROUTES] = reconcile_httproute
    rt.fanout[K8S_GATEWAYS].append(_gw_fanout)
    rt.fanout[HTTPROUTES].append(_route_fanout)
    rt.fanout[GATEWAYCLASSES].append(_class_fanout)
    rt.fanout[SERVICES].append(_gw_service_fanout)

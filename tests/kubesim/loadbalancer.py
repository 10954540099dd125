"""kubesim: the cloud load balancer (as the OCI cloud controller manager does it) and a simulated
Istio ingress data path.

A Service of type LoadBalancer gets ``status.loadBalancer.ingress[0].ip`` after the setting
``lb_delay`` (never, while ``lb_assign`` is false).  The IP is a free loopback address
(127.x.y.z).  With ``lb_serve`` the simulator listens with plain HTTP on ``<ip>:<service port>``
and answers like an Istio ingress gateway would, from the Gateway/VirtualService objects in the
store:

* the Service's pods are the gateway workload; a ``networking.istio.io`` Gateway applies when
  its ``spec.selector`` matches their labels and it has a server whose ``port.number`` is the
  Service port's targetPort (the container port) — otherwise Envoy has no route: 404 with
  ``server: istio-envoy`` (the gateway selector/port trap is observable);
* VirtualServices bound to that Gateway (``<ns>/<name>`` or ``<name>`` in the same namespace)
  whose hosts match, first matching http route (uri exact/prefix/regex, method, headers);
* the destination Service needs ready endpoints, else 503 ``no healthy upstream``;
* destination ``productpage``: the bookinfo page (title ``Simple Bookstore App``), served by
  the kubesim simulator; other destinations: a small JSON naming the service.

Nothing here runs Envoy; it is a simulator and says so in every body.
"""

from __future__ import annotations

import errno
import fnmatch
import http.server
import json
import logging
import random
import re
import socket
import threading
import time
from typing import Any

from .controllers import ISTIO_GATEWAYS, SERVICES, VIRTUALSERVICES, Runtime, meta
from .workloads import is_ready, labels_of, service_pods

log = logging.getLogger("kubesim.loadbalancer")
LB = "lb:services"            # pseudo key of the load-balancer reconciler

PRODUCTPAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Simple Bookstore App</title>
</head>
<body>
<h1>The Comedy of Errors</h1>
<p>Bookinfo product page, served by the kubesim simulator (no real application runs here):
request {path} reached Service {service}.{namespace} through the simulated Istio ingress gateway {gateway}.</p>
</body>
</html>
"""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False


class Listener:
    """One plain-HTTP listener on <ip>:<port> for a LoadBalancer Service port."""

    def __init__(self, rt: Runtime, ns: str, svc: str, ip: str, port: int) -> None:
        self.key = (ns, svc, port)
        handler = _handler_class(rt, ns, svc, port)
        self.server = _Server((ip, port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name=f"kubesim-lb-{ip}:{port}", daemon=True)
        self.thread.start()

    def close(self) -> None:
        def _stop() -> None:
            try:
                self.server.shutdown()
            finally:
                self.server.server_close()
        threading.Thread(target=_stop, daemon=True).start()


class LBState:
    def __init__(self, uid: str, ip: str) -> None:
        self.uid = uid
        self.ip = ip
        self.listeners: dict[int, Listener] = {}


# ------------------------------------------------------------------------------------- routing
def _host_match(pattern: str, host: str) -> bool:
    pattern = pattern.split("/", 1)[1] if "/" in pattern else pattern
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern.lower() == host.lower()


def _string_match(m: dict[str, Any], value: str) -> bool:
    if "exact" in m:
        return value == m["exact"]
    if "prefix" in m:
        return value.startswith(m["prefix"])
    if "regex" in m:
        return re.fullmatch(m["regex"], value) is not None
    return True


def _route_matches(match: dict[str, Any], method: str, path: str, headers: dict[str, str]) -> bool:
    if "uri" in match and not _string_match(match["uri"], path.split("?", 1)[0]):
        return False
    if "method" in match and not _string_match(match["method"], method):
        return False
    for name, m in (match.get("headers") or {}).items():
        v = headers.get(name.lower())
        if v is None or not _string_match(m or {}, v):
            return False
    return True


def _split_host(host: str, default_ns: str) -> tuple[str, str]:
    parts = host.split(".")
    if len(parts) == 1:
        return default_ns, parts[0]
    return parts[1], parts[0]


def route(rt: Runtime, ns: str, svc_name: str, svc_port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Answer one request as the gateway would: (status, headers, body)."""
    envoy = {"server": "istio-envoy"}
    with rt.cache.lock:
        svc = rt.cache.get(SERVICES, ns, svc_name)
        if svc is None:
            return 503, envoy, b"no healthy upstream"
        gw_pods = [p for p in service_pods(rt, svc) if is_ready(p)]
        gateways = rt.cache.list(ISTIO_GATEWAYS)
        vss = rt.cache.list(VIRTUALSERVICES)
    if not gw_pods:
        return 502, {"server": "kubesim-lb"}, b"load balancer: no healthy backends (no ready gateway pods)\n"
    port_entry = next((p for p in (svc.get("spec") or {}).get("ports") or [] if p.get("port") == svc_port), None)
    if port_entry is None:
        return 404, envoy, b""
    from .workloads import _resolve_port

    target = _resolve_port(gw_pods[0], port_entry.get("targetPort", svc_port))
    host = (headers.get("host") or "").rsplit(":", 1)[0] if not (headers.get("host") or "").startswith("[") else headers.get("host", "")
    host = host or "*"
    bound: list[tuple[str, str]] = []
    for gw in gateways:
        sel = (gw.get("spec") or {}).get("selector") or {}
        if not sel or not any(all(labels_of(p).get(k) == v for k, v in sel.items()) for p in gw_pods):
            continue
        for server in (gw.get("spec") or {}).get("servers") or []:
            if int(((server.get("port") or {}).get("number")) or -1) != target:
                continue
            if any(_host_match(h, host) for h in server.get("hosts") or []):
                bound.append((meta(gw).get("namespace") or "", meta(gw)["name"]))
                break
    if not bound:
        return _route_k8s_gateway(rt, svc, svc_port, host, method, path, headers)
    for vs in sorted(vss, key=lambda v: meta(v).get("creationTimestamp", "")):
        vspec = vs.get("spec") or {}
        vns = meta(vs).get("namespace") or ""
        refs = vspec.get("gateways") or []
        hit = None
        for gns, gname in bound:
            if f"{gns}/{gname}" in refs or (gname in refs and vns == gns):
                hit = f"{gns}/{gname}"
                break
        if hit is None or not any(fnmatch.fnmatch(host.lower(), h.lower()) or h == "*" for h in vspec.get("hosts") or []):
            continue
        for http_route in vspec.get("http") or []:
            matches = http_route.get("match") or [{}]
            if not any(_route_matches(m, method, path, headers) for m in matches):
                continue
            if http_route.get("directResponse"):
                dr = http_route["directResponse"]
                return int(dr.get("status", 200)), envoy, (((dr.get("body") or {}).get("string")) or "").encode()
            if http_route.get("redirect"):
                rd = http_route["redirect"]
                loc = f"http://{rd.get('authority') or headers.get('host', host)}{rd.get('uri') or path}"
                return int(rd.get("redirectCode", 301)), {**envoy, "location": loc}, b""
            abort = ((http_route.get("fault") or {}).get("abort") or {})
            if abort.get("httpStatus") and random.random() * 100 < float(((abort.get("percentage") or {}).get("value", 100))):
                return int(abort["httpStatus"]), envoy, b"fault filter abort"
            dests = http_route.get("route") or []
            if not dests:
                return 404, envoy, b""
            weights = [int(d.get("weight", 100 if len(dests) == 1 else 0) or 0) for d in dests]
            dest = random.choices(dests, weights=weights)[0] if sum(weights) else dests[0]
            dhost = (dest.get("destination") or {}).get("host") or ""
            dns, dname = _split_host(dhost, vns)
            return _answer(rt, dns, dname, path, hit)
    return 404, envoy, b""


# ------------------------------------------------------------------------------------- Kubernetes Gateway API
K8S_GATEWAYS = "gateways.gateway.networking.k8s.io"
HTTPROUTES = "httproutes.gateway.networking.k8s.io"
GATEWAYCLASSES = "gatewayclasses.gateway.networking.k8s.io"
ISTIO_CONTROLLER = "istio.io/gateway-controller"
GW_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


def _answer(rt: Runtime, dns: str, dname: str, path: str, gateway: str) -> tuple[int, dict[str, str], bytes]:
    envoy = {"server": "istio-envoy"}
    with rt.cache.lock:
        target_svc = rt.cache.get(SERVICES, dns, dname)
        ready = [p for p in service_pods(rt, target_svc) if is_ready(p)] if target_svc else []
    if not ready:
        return 503, {**envoy, "content-type": "text/plain"}, b"no healthy upstream"
    hdrs = {**envoy, "x-envoy-upstream-service-time": str(random.randint(2, 12)), "x-kubesim-simulated": "true"}
    if dname == "productpage" and not path.startswith("/api/"):
        body = PRODUCTPAGE.format(path=path.split("?", 1)[0], service=dname, namespace=dns, gateway=gateway)
        return 200, {**hdrs, "content-type": "text/html; charset=utf-8"}, body.encode()
    body = json.dumps({"service": dname, "namespace": dns, "path": path, "gateway": gateway, "served_by": "kubesim simulator (no real workload runs)"})
    return 200, {**hdrs, "content-type": "application/json"}, body.encode()


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
                 and (not ln.get("hostname") or _host_match(ln["hostname"], host))]
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
        if hostnames and not any(_host_match(h, host) for h in hostnames):
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
            return _answer(rt, b.get("namespace") or rns, b["name"], path, f"{ns}/{gw_name}")
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
    if not _istiod_present(rt):
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
        from .workloads import service_admission

        body = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": dep_name, "namespace": ns, "labels": labels, "ownerReferences": owner},
                "spec": {"type": "LoadBalancer", "selector": {GW_NAME_LABEL: name}, "ports": ports}}
        svc = rt.create(SERVICES, service_admission(rt, "CREATE", body, None))
    elif [(p.get("port"), p.get("name")) for p in (svc.get("spec") or {}).get("ports") or []] != [(p["port"], p["name"]) for p in ports]:
        def set_ports(cur: dict[str, Any]) -> bool:
            old = {p.get("port"): p.get("nodePort") for p in cur["spec"].get("ports") or []}
            cur["spec"]["ports"] = [{**p, **({"nodePort": old[p["port"]]} if old.get(p["port"]) else {})} for p in ports]
            return True
        from .workloads import service_admission

        svc = rt.modify(SERVICES, ns, dep_name, lambda cur: set_ports(cur) and bool(service_admission(rt, "UPDATE", cur, cur))) or svc
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


def _istiod_present(rt: Runtime) -> bool:
    return any(meta(d).get("name", "").startswith("istiod") for d in rt.cache.list("deployments.apps", "istio-system"))


def _ensure_gateway_class(rt: Runtime) -> None:
    """istiod creates the ``istio`` GatewayClass once the Gateway API CRDs are served."""
    reg = getattr(rt.cluster, "registry", None)
    if reg is None or reg.by_key(GATEWAYCLASSES) is None or not _istiod_present(rt):
        return
    if rt.store.get(GATEWAYCLASSES, None, "istio") is None:
        out = rt.create(GATEWAYCLASSES, {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                                         "metadata": {"name": "istio"},
                                         "spec": {"controllerName": ISTIO_CONTROLLER, "description": "The default Istio GatewayClass"}})
        if out is not None:
            rt.update_status(GATEWAYCLASSES, out, {"conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "Handled by Istio controller",
                 "observedGeneration": 1, "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]})


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


def _handler_class(rt: Runtime, ns: str, svc: str, port: int) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return "istio-envoy"

        def log_message(self, fmt: str, *args: Any) -> None:   # quiet
            return

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            hdrs = {k.lower(): v for k, v in self.headers.items()}
            try:
                code, out_headers, body = route(rt, ns, svc, port, self.command, self.path, hdrs)
            except Exception:   # noqa: BLE001 - a simulator bug shows as an upstream error, not a hang
                log.exception("kubesim lb route failed")
                code, out_headers, body = 500, {"server": "istio-envoy"}, b"kubesim: internal error in the simulated gateway"
            self.send_response_only(code)
            self.send_header("date", self.date_time_string())
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _serve

    return Handler


# ------------------------------------------------------------------------------------- controller
def _bind_listeners(rt: Runtime, state: LBState, ns: str, name: str, ports: list[int]) -> bool:
    """Open listeners for ports not yet served; False if the IP is taken on some port."""
    for port in ports:
        if port in state.listeners:
            continue
        try:
            state.listeners[port] = Listener(rt, ns, name, state.ip, port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            log.warning("kubesim: cannot serve %s:%s for %s/%s: %s", state.ip, port, ns, name, exc)
    return True


def _free_ip(taken: set[str]) -> str:
    while True:
        ip = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        if ip in taken:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((ip, 0))
            return ip
        except OSError:
            continue
        finally:
            s.close()


def _close(state: LBState) -> None:
    for lst in state.listeners.values():
        lst.close()
    state.listeners.clear()


def reconcile_lb(rt: Runtime, ns: str | None, name: str) -> None:
    svc = rt.cache.get(SERVICES, ns, name)
    key = (ns, name)
    state: LBState | None = rt.lbs.get(key)
    is_lb = svc is not None and (svc.get("spec") or {}).get("type") == "LoadBalancer"
    if state is not None and (not is_lb or meta(svc).get("uid") != state.uid):
        _close(state)
        del rt.lbs[key]
        state = None
    if svc is None:
        rt.lb_due.pop(key, None)
        return
    ingress = (((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")) or []
    if not is_lb:
        rt.lb_due.pop(key, None)
        if ingress:
            rt.update_status(SERVICES, svc, {**(svc.get("status") or {}), "loadBalancer": {}})
        return
    ports = [int(p["port"]) for p in (svc.get("spec") or {}).get("ports") or [] if p.get("port") and p.get("protocol", "TCP") == "TCP"]
    if ingress and ingress[0].get("ip"):
        ip = ingress[0]["ip"]
        if state is None:
            state = rt.lbs[key] = LBState(meta(svc)["uid"], ip)
        if rt.settings.lb_serve and ip.startswith("127."):
            _bind_listeners(rt, state, ns or "", name, ports)
            for port in [p for p in state.listeners if p not in ports]:
                state.listeners.pop(port).close()
        elif state.listeners:
            _close(state)
        return
    if not rt.settings.lb_assign:
        return
    due = rt.lb_due.get(key)
    now = time.monotonic()
    if due is None:
        due = rt.lb_due[key] = now + max(0.0, float(rt.settings.lb_delay))
        if due > now:
            rt.after(due - now, lambda rt_, k=key: rt_.mark(LB, *k))
            return
    if now < due:
        return
    taken = {s.ip for s in rt.lbs.values()}
    ip = ""
    for _attempt in range(20):
        ip = _free_ip(taken)
        state = LBState(meta(svc)["uid"], ip)
        if not rt.settings.lb_serve or _bind_listeners(rt, state, ns or "", name, ports):
            break
        _close(state)
        taken.add(ip)
    assert state is not None
    rt.lbs[key] = state
    out = rt.update_status(SERVICES, svc, {**(svc.get("status") or {}), "loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}})
    if out is None:
        _close(state)
        del rt.lbs[key]
        rt.mark(LB, ns, name)
    else:
        rt.lb_due.pop(key, None)


def _svc_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    md = meta(obj)
    if (obj.get("spec") or {}).get("type") == "LoadBalancer" or (md.get("namespace"), md.get("name")) in rt.lbs or etype == "DELETED":
        rt.mark(LB, md.get("namespace"), md["name"])


def _periodic(rt: Runtime) -> None:
    """Settings may change at run time (lb_assign/lb_serve): revisit every LoadBalancer Service."""
    _ensure_gateway_class(rt)
    for svc in rt.cache.list(SERVICES):
        if (svc.get("spec") or {}).get("type") == "LoadBalancer":
            rt.mark(LB, meta(svc).get("namespace"), meta(svc)["name"])


def _stop_all(rt: Runtime) -> None:
    for state in list(rt.lbs.values()):
        _close(state)
    rt.lbs.clear()


def register(rt: Runtime) -> None:
    rt.reconcilers[LB] = reconcile_lb
    rt.fanout[SERVICES].append(_svc_fanout)
    rt.periodic.append(_periodic)
    rt.on_stop.append(lambda: _stop_all(rt))
    rt.reconcilers[K8S_GATEWAYS] = reconcile_k8s_gateway
    rt.reconcilers[HTTPROUTES] = reconcile_httproute
    rt.fanout[K8S_GATEWAYS].append(_gw_fanout)
    rt.fanout[HTTPROUTES].append(_route_fanout)
    rt.fanout[GATEWAYCLASSES].append(_class_fanout)
    rt.fanout[SERVICES].append(_gw_service_fanout)

"""The simulated Istio ingress data path: a request reaching a LoadBalancer address is answered as
the ingress gateway's Envoy would, from the Gateway/VirtualService objects in the store."""

from __future__ import annotations

import fnmatch
import json
import random
import re
from typing import Any

from . import gateway_api, telemetry
from .bookinfo import PAGE_HEAD
from .common import (
    is_ready,
    labels_of,
)
from .endpoints import _resolve_port, service_pods
from .runtime import (
    ISTIO_GATEWAYS,
    SERVICES,
    VIRTUALSERVICES,
    Runtime,
    meta,
)

PRODUCTPAGE = PAGE_HEAD + """<p>Bookinfo product page, served by the kubesim simulator (no real application runs here):
request {path} reached Service {service}.{namespace} through the simulated Istio ingress gateway {gateway}.</p>
</body>
</html>
"""


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
        return gateway_api._route_k8s_gateway(rt, svc, svc_port, host, method, path, headers)
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
            destination = dest.get("destination") or {}
            dns, dname = _split_host(destination.get("host") or "", vns)
            # the gateway's Envoy forwards through the simulated mesh: sidecar metrics, spans, bookinfo's calls
            return telemetry.from_gateway(rt, random.choice(gw_pods), {**destination, "host": f"{dname}.{dns}"}, vns, method, path,
                                          headers, hit)
    return 404, envoy, b""


def _answer(rt: Runtime, dns: str, dname: str, path: str, gateway: str) -> tuple[int, dict[str, str], bytes]:
    envoy = {"server": "istio-envoy"}
    with rt.cache.lock:
        target_svc = rt.cache.get(SERVICES, dns, dname)
        ready = [p for p in service_pods(rt, target_svc) if is_ready(p)] if target_svc else []
    if not ready:
        return 503, {**envoy, "content-type": "text/plain"}, b"no healthy upstream"
    return generic(dns, dname, path, gateway)


def generic(dns: str, dname: str, path: str, gateway: str) -> tuple[int, dict[str, str], bytes]:
    """What a destination that runs no simulated application answers (the bookinfo page for productpage)."""
    hdrs = {"server": "istio-envoy", "x-envoy-upstream-service-time": str(random.randint(2, 12)), "x-kubesim-simulated": "true"}
    if dname == "productpage" and not path.startswith("/api/"):
        body = PRODUCTPAGE.format(path=path.split("?", 1)[0], service=dname, namespace=dns, gateway=gateway)
        return 200, {**hdrs, "content-type": "text/html; charset=utf-8"}, body.encode()
    body = json.dumps({"service": dname, "namespace": dns, "path": path, "gateway": gateway, "served_by": "kubesim simulator (no real workload runs)"})
    return 200, {**hdrs, "content-type": "application/json"}, body.encode()

"""The ``services/proxy`` and ``pods/proxy`` subresources, answered as the API server does.

``/api/v1/namespaces/<ns>/services/[<scheme>:]<name>[:<port>]/proxy/<path>`` and
``/api/v1/namespaces/<ns>/pods/[<scheme>:]<name>[:<port>]/proxy/<path>``, any method, the query
string passed through.  Resolution follows kube-apiserver's ``ResourceLocation``:

* ``<scheme>:<name>:<port>`` / ``<name>:<port>`` / ``<name>`` (``SplitSchemeNamePort``; scheme
  ``http`` or ``https``; anything else is 400 ``invalid service request``);
* the Service must exist (404 ``services "x" not found``); a port *number* is mapped to the
  Service port's name (503 ``no service port N found for service "x"``); then the Endpoints
  (404 when missing) must have a ready address carrying that port name (503 ``no endpoints
  available for service "x"``); the target is ``<pod IP>:<endpoint port>``;
* pods: the pod must exist (404) and have an IP; without a port the first declared container
  port is used;
* an empty proxy path on GET/HEAD is redirected (301) to the same path with a trailing slash.

Nothing listens on pod IPs here: the behaviour half (``cluster.proxy_backend(pod, port, scheme)``)
says what "listens" on a pod's port: a Python handler (simulated add-ons, sidecar metrics,
bookinfo) or the URL of a real local process (the add-on Prometheus).  When nothing does, the
client sees what the API server's proxy answers for a refused dial: 503 ``error trying to
reach service``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any
from urllib.parse import unquote

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from .errors import ApiError, not_found

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding",
              "upgrade", "content-length", "host", "authorization"}


def split_scheme_name_port(ident: str) -> tuple[str, str, str] | None:
    """kube's utilnet.SplitSchemeNamePort: (scheme, name, port) or None when invalid."""
    parts = ident.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
        if scheme not in ("", "http", "https"):
            return None
    else:
        return None
    if not name:
        return None
    return scheme, name, port


def _unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def _tail(request: web.Request, kind: str, raw_ident: str) -> str:
    """The proxied path (still percent-encoded, as the client sent it) after ``.../<kind>/<ident>/proxy``."""
    segs = request.raw_path.split("?", 1)[0].split("/")
    for i in range(len(segs) - 2):
        if segs[i] == kind and unquote(segs[i + 1]) == raw_ident and segs[i + 2] == "proxy":
            rest = segs[i + 3:]
            if not rest:
                return ""
            return "/" + "/".join(rest)
    return "/"


def _resolve_service(store: Any, ns: str, name: str, port: str) -> tuple[dict, int]:
    svc = store.get_ref("services", ns, name)
    if svc is None:
        raise not_found("services", name)
    if port.isdigit():
        wanted = next((p for p in (svc.get("spec") or {}).get("ports") or [] if int(p.get("port") or -1) == int(port)), None)
        if wanted is None:
            raise _unavailable(f'no service port {int(port)} found for service "{name}"')
        port = wanted.get("name") or ""
    eps = store.get_ref("endpoints", ns, name)
    if eps is None:
        raise not_found("endpoints", name)
    subsets = list(eps.get("subsets") or [])
    random.shuffle(subsets)
    for ss in subsets:
        addrs = list(ss.get("addresses") or [])
        if not addrs:
            continue
        for p in ss.get("ports") or []:
            if (p.get("name") or "") != port:
                continue
            random.shuffle(addrs)
            for addr in addrs:
                ref = addr.get("targetRef") or {}
                pod = store.get_ref("pods", ref.get("namespace") or ns, ref.get("name") or "") if ref.get("kind") == "Pod" else None
                if pod is None:          # the API server only proxies to addresses that are pods
                    continue
                return pod, int(p.get("port"))
    raise _unavailable(f'no endpoints available for service "{name}"')


def _resolve_pod(store: Any, ns: str, name: str, port: str) -> tuple[dict, int | str]:
    pod = store.get_ref("pods", ns, name)
    if pod is None:
        raise not_found("pods", name)
    if not (pod.get("status") or {}).get("podIP"):
        raise ApiError(400, "BadRequest", f"address not allowed: pod {name} has no IP address yet")
    if not port:
        for c in (pod.get("spec") or {}).get("containers") or []:
            if c.get("ports"):
                port = str(c["ports"][0].get("containerPort"))
                break
    return pod, (int(port) if port.isdigit() else port)


async def handle(api: Any, request: web.Request, kind: str, ns: str, ident: str) -> web.StreamResponse:
    parsed = split_scheme_name_port(ident)
    if parsed is None:
        raise ApiError(400, "BadRequest", f"invalid {kind[:-1]} request {ident!r}")
    scheme, name, port = parsed
    path = _tail(request, kind, ident)
    if path == "" and request.method in ("GET", "HEAD"):
        loc = request.raw_path.split("?", 1)[0] + "/" + (("?" + request.query_string) if request.query_string else "")
        return web.Response(status=301, headers={"Location": loc}, text=f'<a href="{loc}">Moved Permanently</a>.\n\n',
                            content_type="text/html")
    path = path or "/"
    store = api.store
    if kind == "services":
        pod, target_port = _resolve_service(store, ns, name, port)
    else:
        pod, target_port = _resolve_pod(store, ns, name, port)
    ip = (pod.get("status") or {}).get("podIP") or ""
    dial = f"{ip}:{target_port}" if target_port not in ("", None) else ip
    resolver = getattr(api.cluster, "proxy_backend", None)
    backend = resolver(pod, target_port, scheme or "http") if resolver is not None and isinstance(target_port, int) else None
    if backend is None:
        raise _unavailable(f"error trying to reach service: dial tcp {dial}: connect: connection refused")
    body = await request.read()
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    query = request.query_string
    if isinstance(backend, str):
        if backend.startswith("unavailable:"):
            raise _unavailable(f"error trying to reach service: dial tcp {dial}: connect: connection refused "
                               f"({backend[len('unavailable:'):].strip()})")
        return await _forward(backend, request.method, path, query, headers, body, dial)
    status, out_headers, out_body = await asyncio.to_thread(backend, request.method, unquote(path), query, headers, body)
    resp_headers = {k: v for k, v in out_headers.items() if k.lower() not in HOP_BY_HOP}
    return web.Response(status=status, body=out_body if request.method != "HEAD" else b"", headers=resp_headers)


async def _forward(base: str, method: str, path: str, query: str, headers: dict[str, str], body: bytes, dial: str) -> web.Response:
    url = base.rstrip("/") + path + (("?" + query) if query else "")
    try:
        async with ClientSession(timeout=ClientTimeout(total=60)) as session:
            async with session.request(method, url, data=body or None, headers=headers, allow_redirects=False) as resp:
                payload = await resp.read()
                out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"}
                return web.Response(status=resp.status, body=payload, headers=out)
    except (ClientError, OSError, asyncio.TimeoutError) as exc:
        raise _unavailable(f"error trying to reach service: dial tcp {dial}: {exc}")

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
import http.server
import logging
import random
import socket
import threading
import time
from typing import Any

from . import ingress
from .runtime import (
    SERVICES,
    Runtime,
    meta,
)

log = logging.getLogger("kubesim.cloud_lb")

LB = "lb:services"            # pseudo key of the load-balancer reconciler


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
                code, out_headers, body = ingress.route(rt, ns, svc, port, self.command, self.path, hdrs)
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

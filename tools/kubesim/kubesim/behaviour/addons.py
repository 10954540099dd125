"""kubesim: what "listens" on pod ports for the API server's proxy, and Istio's telemetry add-ons.

``cluster.proxy_backend(pod, port, scheme)`` (used by ``kubesim/api/proxy.py``) answers with a
handler ``fn(method, path, query, headers, body) -> (status, headers, body)``, the URL of a real
local process, or None (nothing listens: the proxy answers 503 like a refused dial):

* a pod with an Istio proxy, port 15020 (or 15090): its sidecar's metrics
  (``/stats/prometheus``, :func:`kubesim.behaviour.telemetry.exposition`);
* istiod (label ``app=istiod``), port 15014: a few pilot metrics (``/metrics``);
* bookinfo pods, port 9080: the app itself, called from outside the mesh;
* **Prometheus** (pods labelled ``app.kubernetes.io/name=prometheus`` or ``app=prometheus``), port
  9090: a REAL Prometheus server (the ``prometheus_binary`` setting) that kubesim starts on a free
  loopback port once such a pod is ready, with a configuration derived from the add-on's ConfigMap
  (the ``prometheus.yml`` key of the ConfigMap the pod mounts, else ``prometheus``): every
  ``kubernetes_sd_configs`` entry becomes an ``http_sd_configs`` entry served by kubesim
  (:func:`discover` returns the targets and ``__meta_kubernetes_pod_*`` labels Prometheus'
  ``role: pod`` discovery would find; Debian builds Prometheus without the Kubernetes discovery),
  ``scrape_interval`` becomes the ``scrape_interval`` setting, and a final relabelling sends each
  scrape to kubesim's loopback metrics endpoint with the original ``<pod IP>:<port>`` as the
  ``target`` parameter (and as ``instance``). It is stopped when no ready pod is left; the
  configuration is reloaded when the ConfigMap changes. Without the binary, the proxy answers 503
  saying so;
* **Grafana** (``app.kubernetes.io/name=grafana``), 3000: simulated ``/api/health`` and
  ``/api/search`` over the dashboards (JSON ``title``) of the ConfigMaps the pod mounts and of
  ``istio-grafana-dashboards`` / ``istio-services-grafana-dashboards``, read live from the store;
* **Jaeger** (``app=jaeger``), 16686: simulated query API (``/api/services``, ``/api/traces``,
  under the base path: env ``QUERY_BASE_PATH``, ``--query.base-path``, or a mounted Jaeger v2
  configuration's ``extensions.jaeger_query.base_path``) over the spans the simulated proxies reported;
* **Kiali** (``app=kiali``), 20001: simulated ``/kiali/api/status``.

Every simulated answer carries ``x-kubesim-simulated: true``.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import http.server
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

import yaml

from . import bookinfo, telemetry
from .common import is_ready, labels_of
from .runtime import CONFIGMAPS, PODS, Runtime, meta

log = logging.getLogger("kubesim.addons")
SIM = {"x-kubesim-simulated": "true"}
DASHBOARD_CONFIGMAPS = ("istio-grafana-dashboards", "istio-services-grafana-dashboards")
Answer = tuple[int, dict[str, str], bytes]
Handler = Callable[[str, str, str, dict[str, str], bytes], Answer]


def _json(code: int, obj: Any) -> Answer:
    return code, {"content-type": "application/json", **SIM}, json.dumps(obj).encode()


def _addon(pod: dict[str, Any]) -> str | None:
    lb = labels_of(pod)
    for name in (lb.get("app.kubernetes.io/name"), lb.get("app")):
        if name in ("prometheus", "grafana", "jaeger", "kiali", "istiod"):
            return name
    return None


# ------------------------------------------------------------------------------------- Prometheus
def _free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _die_with_parent() -> None:   # pragma: no cover - runs in the child
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except OSError:
        pass


class PromServer:
    """One real Prometheus process behind a prometheus add-on (one per namespace)."""

    def __init__(self, rt: Runtime, ns: str) -> None:
        self.rt = rt
        self.ns = ns
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.dir = ""
        self.config_hash = ""
        self.error = ""
        self.warned = ""

    def ensure(self, config_text: str) -> None:
        binary = self.rt.settings.prometheus_binary
        exe = shutil.which(binary) if binary else None
        if not exe:
            self.error = (f"the prometheus binary {binary!r} is not installed: kubesim cannot run the add-on's Prometheus "
                          "(install Debian's prometheus package: apt-get install prometheus)") if binary else \
                "kubesim's prometheus_binary setting is empty: no Prometheus is started"
            if self.error != self.warned:
                self.warned = self.error
                log.warning("kubesim: %s", self.error)
            self.stop()
            return
        self.error = ""
        digest = hashlib.sha256(config_text.encode()).hexdigest()
        if not self.dir:
            self.dir = tempfile.mkdtemp(prefix=f"kubesim-prometheus-{self.ns}-")
        cfg = os.path.join(self.dir, "prometheus.yml")
        if digest != self.config_hash:
            tmp = cfg + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(config_text)
            os.replace(tmp, cfg)
        if self.proc is not None and self.proc.poll() is None:
            if digest != self.config_hash:
                self.proc.send_signal(signal.SIGHUP)     # Prometheus reloads its configuration on SIGHUP
                self.config_hash = digest
            return
        self.config_hash = digest
        self.port = _free_port()
        logf = open(os.path.join(self.dir, "prometheus.log"), "ab")   # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(  # noqa: S603 - the configured binary with our arguments
            [exe, f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn", "--storage.tsdb.retention.time=2h"],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)  # noqa: PLW1509
        logf.close()
        log.info("kubesim: started prometheus (pid %s) on 127.0.0.1:%s for %s", self.proc.pid, self.port, self.ns)

    def url(self) -> str | None:
        if self.proc is not None and self.proc.poll() is None:
            return f"http://127.0.0.1:{self.port}"
        return None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.config_hash = ""

    def close(self) -> None:
        self.stop()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""


def derive_config(source: dict[str, Any], own_namespace: str, metrics_addr: str, interval: str, sd_path: str = "/kubesim/sd") -> dict[str, Any]:
    """The add-on's prometheus.yml adapted to kubesim (see the module docstring)."""
    cfg = dict(source or {})
    glob = dict(cfg.get("global") or {})
    glob["scrape_interval"] = interval
    glob["evaluation_interval"] = interval
    glob.pop("scrape_timeout", None)
    cfg["global"] = glob
    cfg.pop("rule_files", None)
    cfg.pop("alerting", None)
    cfg.pop("remote_write", None)
    jobs = []
    for job in cfg.get("scrape_configs") or []:
        job = dict(job)
        sds = job.get("kubernetes_sd_configs")
        if not sds:
            continue                # static targets point at addresses that do not exist here
        http_sds = []
        for sd in sds:
            sd = dict(sd)
            ns_cfg = sd.get("namespaces") or {}
            names = list(ns_cfg.get("names") or [])
            if ns_cfg.get("own_namespace"):
                names.append(own_namespace)
            query = urlencode([("role", sd.get("role") or "pod"), ("namespaces", ",".join(names))])
            http_sds.append({"url": f"http://{metrics_addr}{sd_path}?{query}", "refresh_interval": interval})
        job.pop("kubernetes_sd_configs", None)
        job["http_sd_configs"] = http_sds
        for k in ("bearer_token", "bearer_token_file", "authorization", "tls_config", "scrape_timeout", "scrape_interval"):
            job.pop(k, None)
        job["scheme"] = "http"
        job["relabel_configs"] = list(job.get("relabel_configs") or []) + [
            {"source_labels": ["__address__"], "target_label": "instance"},
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"target_label": "__address__", "replacement": metrics_addr},
        ]
        jobs.append(job)
    cfg["scrape_configs"] = jobs
    return cfg


def _configmap_for(rt: Runtime, pod: dict[str, Any]) -> dict[str, Any] | None:
    ns = meta(pod).get("namespace")
    names = [((v.get("configMap") or {}).get("name")) for v in (pod.get("spec") or {}).get("volumes") or [] if v.get("configMap")]
    for name in [n for n in names if n] + ["prometheus"]:
        cm = rt.store.get(CONFIGMAPS, ns, name)
        if cm and any(k in (cm.get("data") or {}) for k in ("prometheus.yml", "prometheus.yaml")):
            return cm
    return None


def reconcile_prometheus(rt: Runtime) -> None:
    servers: dict[str, PromServer] = rt.prometheus     # type: ignore[attr-defined]
    with rt.cache.lock:
        ready = [p for p in rt.cache.list(PODS) if _addon(p) == "prometheus" and is_ready(p) and not meta(p).get("deletionTimestamp")]
    wanted: dict[str, dict[str, Any]] = {}
    for p in sorted(ready, key=lambda p: meta(p)["name"]):
        wanted.setdefault(meta(p).get("namespace") or "", p)
    for ns in [n for n in servers if n not in wanted]:
        servers.pop(ns).close()
        log.info("kubesim: stopped prometheus for %s (no ready prometheus pod)", ns)
    if not wanted:
        return
    metrics = metrics_server(rt)
    for ns, pod in wanted.items():
        cm = _configmap_for(rt, pod)
        try:
            data = cm.get("data") or {} if cm else {}
            source = yaml.safe_load(data.get("prometheus.yml") or data.get("prometheus.yaml") or "") or {}
        except yaml.YAMLError as exc:
            log.warning("kubesim: the prometheus ConfigMap in %s is not YAML: %s", ns, exc)
            source = {}
        srv = servers.get(ns) or servers.setdefault(ns, PromServer(rt, ns))
        if not srv.dir:
            srv.dir = tempfile.mkdtemp(prefix=f"kubesim-prometheus-{ns}-")
        cfg = derive_config(source, ns, f"127.0.0.1:{metrics.server_address[1]}", rt.settings.scrape_interval, metrics.sd_path)
        srv.ensure(yaml.safe_dump(cfg, sort_keys=True))


# ------------------------------------------------------------------------------------- service discovery
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _label(name: str) -> str:
    return _INVALID.sub("_", name)


def discover(rt: Runtime, role: str, namespaces: list[str]) -> list[dict[str, Any]]:
    """The target groups Prometheus' kubernetes_sd ``role: pod`` would find (one target per container port,
    ``podIP`` alone for a pod without ports), with its ``__meta_kubernetes_pod_*`` labels."""
    if role != "pod":
        return []
    with rt.cache.lock:
        pods = [p for p in rt.cache.list(PODS) if not namespaces or meta(p).get("namespace") in namespaces]
    groups = []
    for pod in sorted(pods, key=lambda p: (meta(p).get("namespace") or "", meta(p)["name"])):
        md, spec, st = meta(pod), pod.get("spec") or {}, pod.get("status") or {}
        ip = st.get("podIP")
        if not ip:
            continue
        base = {"__meta_kubernetes_namespace": md.get("namespace") or "", "__meta_kubernetes_pod_name": md["name"],
                "__meta_kubernetes_pod_ip": ip, "__meta_kubernetes_pod_uid": md.get("uid") or "",
                "__meta_kubernetes_pod_node_name": spec.get("nodeName") or "", "__meta_kubernetes_pod_host_ip": st.get("hostIP") or "",
                "__meta_kubernetes_pod_ready": "true" if is_ready(pod) else "false", "__meta_kubernetes_pod_phase": st.get("phase") or ""}
        ref = next((r for r in md.get("ownerReferences") or [] if r.get("controller")), None)
        if ref:
            base["__meta_kubernetes_pod_controller_kind"] = ref.get("kind") or ""
            base["__meta_kubernetes_pod_controller_name"] = ref.get("name") or ""
        for k, v in (md.get("labels") or {}).items():
            base[f"__meta_kubernetes_pod_label_{_label(k)}"] = v
            base[f"__meta_kubernetes_pod_labelpresent_{_label(k)}"] = "true"
        for k, v in (md.get("annotations") or {}).items():
            base[f"__meta_kubernetes_pod_annotation_{_label(k)}"] = v
            base[f"__meta_kubernetes_pod_annotationpresent_{_label(k)}"] = "true"
        targets = []
        for init, containers in ((False, spec.get("containers") or []), (True, spec.get("initContainers") or [])):
            for c in containers:
                cl = {"__meta_kubernetes_pod_container_name": c.get("name") or "", "__meta_kubernetes_pod_container_image": c.get("image") or "",
                      "__meta_kubernetes_pod_container_init": "true" if init else "false"}
                for p in c.get("ports") or []:
                    targets.append((f"{ip}:{p.get('containerPort')}", {**cl, "__meta_kubernetes_pod_container_port_name": p.get("name") or "",
                                                                       "__meta_kubernetes_pod_container_port_number": str(p.get("containerPort")),
                                                                       "__meta_kubernetes_pod_container_port_protocol": p.get("protocol") or "TCP"}))
                if not c.get("ports") and not init:
                    targets.append((ip, cl))
        for addr, extra in targets:
            groups.append({"targets": [addr], "labels": {**base, **extra}})
    return groups


# ------------------------------------------------------------------------------------- loopback metrics endpoint
def metrics_server(rt: Runtime) -> http.server.ThreadingHTTPServer:
    srv = getattr(rt, "metrics_http", None)
    if srv is not None:
        return srv

    sd_secret = secrets.token_hex(16)      # the discovery answer lists pod metadata: only the Prometheus we configure knows the path

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:    # noqa: N802 - http.server's naming
            path, _sep, query = self.path.partition("?")
            if path == f"/kubesim/sd/{sd_secret}":
                q = parse_qs(query)
                groups = discover(rt, (q.get("role") or ["pod"])[0], [n for n in (q.get("namespaces") or [""])[0].split(",") if n])
                self._reply(200, {"content-type": "application/json"}, json.dumps(groups).encode())
                return
            target = (parse_qs(query).get("target") or [""])[0]
            ip, _s, port = target.rpartition(":")
            code, headers, body = 404, {"content-type": "text/plain"}, f"kubesim: nothing listens on {target}\n".encode()
            if port.isdigit():
                with rt.cache.lock:
                    pod = next((p for p in rt.cache.list(PODS) if (p.get("status") or {}).get("podIP") == ip
                                and not meta(p).get("deletionTimestamp") and (p.get("status") or {}).get("phase") == "Running"), None)
                handler = backend(rt, pod, int(port), "http") if pod is not None else None
                if callable(handler):
                    code, headers, body = handler("GET", path, "", {k.lower(): v for k, v in self.headers.items()}, b"")
                elif handler is not None:
                    code, headers, body = 503, {"content-type": "text/plain"}, b"kubesim: that target is a real process, not a metrics endpoint\n"
            self._reply(code, headers, body)

        def _reply(self, code: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response_only(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, name="kubesim-pod-metrics", daemon=True).start()
    srv.sd_path = f"/kubesim/sd/{sd_secret}"     # type: ignore[attr-defined]
    rt.metrics_http = srv       # type: ignore[attr-defined]
    return srv


# ------------------------------------------------------------------------------------- simulated add-ons
def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def dashboards(rt: Runtime, pod: dict[str, Any]) -> list[dict[str, Any]]:
    ns = meta(pod).get("namespace")
    names = [(v.get("configMap") or {}).get("name") for v in (pod.get("spec") or {}).get("volumes") or [] if v.get("configMap")]
    out = []
    seen = set()
    for name in [n for n in names if n] + list(DASHBOARD_CONFIGMAPS):
        if name in seen:
            continue
        seen.add(name)
        cm = rt.store.get(CONFIGMAPS, ns, name)
        for key, text in sorted(((cm or {}).get("data") or {}).items()):
            if not key.endswith(".json"):
                continue
            try:
                doc = json.loads(text)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("title"):
                uid = doc.get("uid") or hashlib.sha1(f"{name}/{key}".encode()).hexdigest()[:9]  # noqa: S324 - an id, not security
                out.append({"title": str(doc["title"]), "uid": uid, "tags": doc.get("tags") or [], "configmap": name, "file": key})
    return sorted(out, key=lambda d: d["title"].lower())


def grafana(rt: Runtime, pod: dict[str, Any]) -> Handler:
    def handle(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Answer:
        q = parse_qs(query)
        if path == "/api/health":
            return _json(200, {"commit": "kubesim", "database": "ok", "version": "12.1.0", "simulated": True})
        if path == "/api/search":
            text = (q.get("query") or [""])[0].lower()
            types = q.get("type") or []
            if types and "dash-db" not in types:
                return _json(200, [])
            hits = []
            for i, d in enumerate(dashboards(rt, pod), start=1):
                if text in d["title"].lower():
                    hits.append({"id": i, "uid": d["uid"], "title": d["title"], "uri": f"db/{_slug(d['title'])}",
                                 "url": f"/d/{d['uid']}/{_slug(d['title'])}", "slug": "", "type": "dash-db", "tags": d["tags"],
                                 "isStarred": False, "sortMeta": 0, "folderTitle": "istio"})
            return _json(200, hits)
        if path in ("/", "/login"):
            return 200, {"content-type": "text/html", **SIM}, b"<html><title>Grafana</title><body>Grafana (kubesim simulation)</body></html>"
        return _json(404, {"message": "Not found"})
    return handle


def _base_path(pod: dict[str, Any], env_name: str, arg: str) -> str:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for e in c.get("env") or []:
            if e.get("name") == env_name and e.get("value"):
                return "/" + str(e["value"]).strip("/")
        for a in (c.get("args") or []) + (c.get("command") or []):
            if str(a).startswith(arg + "="):
                return "/" + str(a).split("=", 1)[1].strip("/")
    return ""


def _jaeger_v2_base_path(rt: Runtime, pod: dict[str, Any]) -> str:
    """``extensions.jaeger_query.base_path`` of a Jaeger v2 configuration in a ConfigMap the pod mounts."""
    ns = meta(pod).get("namespace")
    for v in (pod.get("spec") or {}).get("volumes") or []:
        name = (v.get("configMap") or {}).get("name")
        cm = rt.store.get(CONFIGMAPS, ns, name) if name else None
        for text in ((cm or {}).get("data") or {}).values():
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            base = (((doc or {}).get("extensions") or {}).get("jaeger_query") or {}).get("base_path") if isinstance(doc, dict) else None
            if base:
                return "/" + str(base).strip("/")
    return ""


def jaeger(rt: Runtime, pod: dict[str, Any]) -> Handler:
    base = _base_path(pod, "QUERY_BASE_PATH", "--query.base-path") or _jaeger_v2_base_path(rt, pod)

    def handle(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Answer:
        if base and not (path == base or path.startswith(base + "/")):
            return 404, {"content-type": "text/plain", **SIM}, b"404 page not found\n"
        sub = path[len(base):] or "/"
        q = parse_qs(query)
        with telemetry.state(rt).lock:
            traces = list(telemetry.state(rt).traces)
        if sub == "/api/services":
            names = sorted({p["serviceName"] for t in traces for p in t["processes"].values()})
            return _json(200, {"data": names, "total": len(names), "limit": 0, "offset": 0, "errors": None, "simulated": True})
        if sub == "/api/traces":
            service = (q.get("service") or [""])[0]
            if not service:
                return _json(400, {"data": None, "total": 0, "limit": 0, "offset": 0,
                                   "errors": [{"code": 400, "msg": "parameter 'service' is required"}]})
            start = int((q.get("start") or ["0"])[0] or 0)
            end = int((q.get("end") or ["0"])[0] or 0) or int(time.time() * 1e6)
            limit = int((q.get("limit") or ["20"])[0] or 20)
            hits = []
            for t in reversed(traces):
                if not any(p["serviceName"] == service for p in t["processes"].values()):
                    continue
                t0 = min(s["startTime"] for s in t["spans"])
                if start <= t0 <= end:
                    hits.append(t)
                if len(hits) >= limit:
                    break
            return _json(200, {"data": hits, "total": 0, "limit": 0, "offset": 0, "errors": None, "simulated": True})
        if sub == "/" or sub.startswith("/search"):
            return 200, {"content-type": "text/html", **SIM}, b"<html><title>Jaeger UI</title><body>Jaeger (kubesim simulation)</body></html>"
        return 404, {"content-type": "text/plain", **SIM}, b"404 page not found\n"
    return handle


def kiali(rt: Runtime, pod: dict[str, Any]) -> Handler:
    def handle(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Answer:
        if path in ("/kiali/api/status", "/api/status"):
            return _json(200, {"status": {"Kiali state": "running", "Kiali version": "simulated (kubesim)", "Kiali commit hash": "kubesim"},
                               "externalServices": [{"name": "Prometheus", "version": ""}, {"name": "Kubernetes", "version": rt.settings.kubernetes_version}],
                               "warningMessages": ["kubesim: this Kiali is a simulation"], "istioEnvironment": {"isMaistra": False}})
        if path in ("/kiali/healthz", "/healthz"):
            return 200, {"content-type": "text/plain", **SIM}, b""
        if path.startswith("/kiali"):
            return 200, {"content-type": "text/html", **SIM}, b"<html><title>Kiali</title><body>Kiali (kubesim simulation)</body></html>"
        return 404, {"content-type": "text/plain", **SIM}, b"404 page not found\n"
    return handle


def istiod_metrics(rt: Runtime, pod: dict[str, Any]) -> Handler:
    def handle(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Answer:
        if path != "/metrics":
            return 404, {"content-type": "text/plain", **SIM}, b"404 page not found\n"
        with rt.cache.lock:
            proxies = sum(1 for p in rt.cache.list(PODS) if telemetry.has_proxy(p) and is_ready(p))
        text = ("# kubesim simulated pilot metrics\n# TYPE pilot_xds gauge\n"
                f'pilot_xds{{version="1.30.0"}} {proxies}\n# TYPE istio_build gauge\nistio_build{{component="pilot",tag="1.30.0"}} 1\n')
        return 200, {"content-type": "text/plain; version=0.0.4", **SIM}, text.encode()
    return handle


def backend(rt: Runtime, pod: dict[str, Any] | None, port: int, scheme: str) -> Handler | str | None:
    """What answers on ``port`` of ``pod`` (see the module docstring)."""
    if pod is None or (pod.get("status") or {}).get("phase") != "Running" or meta(pod).get("deletionTimestamp"):
        return None
    kind = _addon(pod)
    if port in (15020, 15090) and telemetry.has_proxy(pod):
        def sidecar(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Answer:
            if path in ("/stats/prometheus", "/metrics"):
                return 200, {"content-type": "text/plain; version=0.0.4", **SIM}, telemetry.exposition(rt, pod).encode()
            if path == "/healthz/ready":
                return 200, {"content-type": "text/plain", **SIM}, b""
            return 404, {"content-type": "text/plain", **SIM}, b"404 page not found\n"
        return sidecar
    if kind == "istiod" and port == 15014:
        return istiod_metrics(rt, pod)
    if kind == "prometheus" and port == 9090:
        srv = (getattr(rt, "prometheus", {}) or {}).get(meta(pod).get("namespace") or "")
        if srv is not None and srv.url():
            return srv.url()
        why = srv.error if srv is not None and srv.error else "kubesim's Prometheus for this add-on is not running (yet)"
        return "unavailable: " + why
    if kind == "grafana" and port == 3000:
        return grafana(rt, pod)
    if kind == "jaeger" and port == 16686:
        return jaeger(rt, pod)
    if kind == "kiali" and port == 20001:
        return kiali(rt, pod)
    if bookinfo.app_of(pod) is not None and port == 9080:
        def app(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Answer:
            full = path + (("?" + query) if query else "")
            return telemetry.call_pod(rt, pod, port, method, full, headers)
        return app
    return None


def _periodic(rt: Runtime) -> None:
    reconcile_prometheus(rt)


def _stop(rt: Runtime) -> None:
    for srv in list(getattr(rt, "prometheus", {}).values()):
        srv.close()
    rt.prometheus.clear()      # type: ignore[attr-defined]
    m = getattr(rt, "metrics_http", None)
    rt.metrics_http = None     # type: ignore[attr-defined]
    if m is not None:
        m.shutdown()
        m.server_close()


def register(rt: Runtime) -> None:
    rt.prometheus = {}          # type: ignore[attr-defined]
    atexit.register(_stop, rt)  # the simulator's process may exit before the controller thread runs its stop hooks
    rt.cluster.proxy_backend = lambda pod, port, scheme: backend(rt, pod, port, scheme)
    rt.periodic.append(_periodic)
    rt.on_stop.append(lambda: _stop(rt))

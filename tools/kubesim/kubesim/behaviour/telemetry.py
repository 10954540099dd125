"""kubesim: the simulated mesh data path between sidecars, and what each sidecar reports.

A call from one pod to a Service (``call``) is routed as the source's Envoy would route it:

* the Service and its port come from the store; the port's protocol follows Istio's rules (port
  name prefix ``http``/``http2``/``grpc``/``tcp``..., or ``appProtocol``); an unnamed port or an
  unknown prefix is counted as TCP (``istio_tcp_*`` metrics, no request-level metrics);
* VirtualServices for the host (``gateways`` empty or ``mesh``) pick the route: matches on uri,
  method and headers (e.g. ``end-user: jason``), weights, ``fault.abort``/``fault.delay``;
  a destination ``subset`` selects pods by the DestinationRule subset's labels;
* a ready pod of the chosen set answers through the behaviour of the image it runs
  (:mod:`.bookinfo`), which may call further Services the same way;
* the source sidecar records ``reporter="source"`` and the destination sidecar
  ``reporter="destination"`` samples of ``istio_requests_total`` and
  ``istio_request_duration_milliseconds`` with Istio's standard labels;
  ``connection_security_policy`` is ``mutual_tls`` when both pods carry a proxy and neither a
  PeerAuthentication nor the DestinationRule disables mTLS, else ``none``;
* sampled requests leave Zipkin/Jaeger-style spans (one client span by the source proxy and one
  server span by the destination proxy per hop) when a Jaeger collector (Service ``zipkin``)
  has a ready endpoint; the percentage comes from a ``Telemetry`` resource in the root
  namespace, else meshConfig ``defaultConfig.tracing.sampling`` (ConfigMap ``istio``), else the
  setting ``trace_sampling_default``.

Each pod's samples are exposed as Prometheus text on its merged-metrics port (15020,
``/stats/prometheus``) through :func:`exposition`.  Nothing runs Envoy; it is a simulator.
"""

from __future__ import annotations

import collections
import json
import random
import secrets
import threading
import time
from typing import Any

import yaml

from . import ingress
from .common import is_ready, labels_of
from .endpoints import _resolve_port
from .runtime import CONFIGMAPS, PODS, SERVICES, Runtime, controller_ref, meta

ISTIO_NS = "istio-system"
DURATION_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000)
REQUEST_LABELS = ("reporter", "source_workload", "source_canonical_service", "source_canonical_revision", "source_workload_namespace",
                  "source_principal", "source_app", "source_version", "source_cluster", "destination_workload",
                  "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
                  "destination_service", "destination_canonical_service", "destination_canonical_revision", "destination_service_name",
                  "destination_service_namespace", "destination_cluster", "request_protocol", "response_code", "grpc_response_status",
                  "response_flags", "connection_security_policy")
TCP_LABELS = tuple(n for n in REQUEST_LABELS if n not in ("response_code", "grpc_response_status"))
HTTP_PREFIXES = {"http": "http", "http2": "http", "grpc": "grpc", "grpc-web": "grpc", "h2c": "http"}
MAX_TRACES = 2000
PEERAUTH = "peerauthentications.security.istio.io"
DESTINATIONRULES = "destinationrules.networking.istio.io"
TELEMETRIES = "telemetries.telemetry.istio.io"
VIRTUALSERVICES = "virtualservices.networking.istio.io"


# ------------------------------------------------------------------------------------- state
class Telemetry:
    """Per-pod counters and histograms, and the recorded traces (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)     # pod uid -> labels -> n
        self.durations: dict[str, dict[tuple, list[float]]] = collections.defaultdict(dict)              # pod uid -> labels -> [sum, n, buckets...]
        self.tcp: dict[str, dict[tuple, list[int]]] = collections.defaultdict(dict)                      # pod uid -> labels -> [opened, closed, sent, received]
        self.traces: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_TRACES)

    def http(self, pod_uid: str, labels: tuple, ms: float) -> None:
        with self.lock:
            self.requests[pod_uid][labels] += 1
            h = self.durations[pod_uid].setdefault(labels, [0.0, 0] + [0] * len(DURATION_BUCKETS))
            h[0] += ms
            h[1] += 1
            for i, b in enumerate(DURATION_BUCKETS):
                if ms <= b:
                    h[2 + i] += 1

    def tcp_conn(self, pod_uid: str, labels: tuple, sent: int, received: int) -> None:
        with self.lock:
            c = self.tcp[pod_uid].setdefault(labels, [0, 0, 0, 0])
            c[0] += 1
            c[1] += 1
            c[2] += sent
            c[3] += received

    def forget(self, live_uids: set[str]) -> None:
        with self.lock:
            for table in (self.requests, self.durations, self.tcp):
                for uid in [u for u in table if u not in live_uids]:
                    del table[uid]


def state(rt: Runtime) -> Telemetry:
    tel = getattr(rt, "telemetry", None)
    if tel is None:
        tel = rt.telemetry = Telemetry()   # type: ignore[attr-defined]
    return tel


# ------------------------------------------------------------------------------------- identities
def has_proxy(pod: dict[str, Any] | None) -> bool:
    if pod is None:
        return False
    spec = pod.get("spec") or {}
    return any(c.get("name") == "istio-proxy" for c in (spec.get("containers") or []) + (spec.get("initContainers") or []))


def workload_name(pod: dict[str, Any]) -> str:
    """Istio's workload name: the Deployment (ReplicaSet minus its hash), else the controller, else the pod."""
    ref = controller_ref(pod)
    labels = labels_of(pod)
    if ref:
        name = ref.get("name", "")
        h = labels.get("pod-template-hash")
        if ref.get("kind") == "ReplicaSet" and h and name.endswith("-" + h):
            return name[: -len(h) - 1]
        return name
    return meta(pod).get("name", "")


def _peer(pod: dict[str, Any] | None, side: str, mtls: bool) -> dict[str, str]:
    if pod is None:
        return {f"{side}_workload": "unknown", f"{side}_canonical_service": "unknown", f"{side}_canonical_revision": "latest",
                f"{side}_workload_namespace": "unknown", f"{side}_principal": "unknown", f"{side}_app": "unknown",
                f"{side}_version": "unknown", f"{side}_cluster": "unknown"}
    lb = labels_of(pod)
    ns = meta(pod).get("namespace") or ""
    sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    app = lb.get("app") or lb.get("app.kubernetes.io/name") or "unknown"
    return {f"{side}_workload": workload_name(pod),
            f"{side}_canonical_service": lb.get("service.istio.io/canonical-name") or app,
            f"{side}_canonical_revision": lb.get("service.istio.io/canonical-revision") or lb.get("version") or "latest",
            f"{side}_workload_namespace": ns,
            f"{side}_principal": f"spiffe://cluster.local/ns/{ns}/sa/{sa}" if mtls else "unknown",
            f"{side}_app": app, f"{side}_version": lb.get("version") or "unknown", f"{side}_cluster": "Kubernetes"}


def port_protocol(port: dict[str, Any]) -> str:
    """'http', 'grpc' or 'tcp' for a Service port, by Istio's naming rules."""
    app_proto = (port.get("appProtocol") or "").lower()
    if app_proto:
        if app_proto in ("http", "http2", "h2c", "kubernetes.io/h2c"):
            return "http"
        if app_proto.startswith("grpc"):
            return "grpc"
        return "tcp"
    name = (port.get("name") or "").lower()
    prefix = name.split("-", 1)[0]
    if name.startswith("grpc-web"):
        return "grpc"
    return HTTP_PREFIXES.get(prefix, "tcp")


def _mtls(rt: Runtime, src: dict[str, Any] | None, dst: dict[str, Any] | None, svc_ns: str, host: str) -> bool:
    if not (has_proxy(src) and has_proxy(dst)):
        return False
    pas = list(rt.store.list(PEERAUTH)) if rt.store.registry.by_key(PEERAUTH) else []
    drs = list(rt.store.list(DESTINATIONRULES)) if rt.store.registry.by_key(DESTINATIONRULES) else []
    for pa in pas:
        ns = meta(pa).get("namespace")
        if ns in (ISTIO_NS, svc_ns) and not ((pa.get("spec") or {}).get("selector")):
            if ((pa.get("spec") or {}).get("mtls") or {}).get("mode") == "DISABLE":
                return False
    dr = _destination_rule(drs, host, svc_ns)
    if dr is not None and (((dr.get("spec") or {}).get("trafficPolicy") or {}).get("tls") or {}).get("mode") == "DISABLE":
        return False
    return True


def _destination_rule(drs: list[dict[str, Any]], svc: str, ns: str) -> dict[str, Any] | None:
    fqdn = f"{svc}.{ns}.svc.cluster.local"
    for dr in drs:
        h = (dr.get("spec") or {}).get("host") or ""
        dns = meta(dr).get("namespace") or ""
        if h == fqdn or (h == svc and dns == ns) or h == f"{svc}.{ns}" or h == f"{svc}.{ns}.svc":
            return dr
    return None


# ------------------------------------------------------------------------------------- sampling and traces
def sampling_percent(rt: Runtime) -> float:
    if rt.store.registry.by_key(TELEMETRIES):
        for tel in rt.store.list(TELEMETRIES, ISTIO_NS):
            for tr in (tel.get("spec") or {}).get("tracing") or []:
                if "randomSamplingPercentage" in tr:
                    return float(tr["randomSamplingPercentage"])
    cm = rt.store.get(CONFIGMAPS, ISTIO_NS, "istio")
    if cm:
        try:
            mesh = yaml.safe_load((cm.get("data") or {}).get("mesh") or "") or {}
            sampling = (((mesh.get("defaultConfig") or {}).get("tracing") or {}).get("sampling"))
            if sampling is not None:
                return float(sampling)
        except (yaml.YAMLError, ValueError, TypeError, AttributeError):
            pass
    return float(rt.settings.trace_sampling_default)


def collector_ready(rt: Runtime) -> bool:
    """Spans leave the proxies for Service zipkin (Jaeger's collector); lost when nothing is ready behind it."""
    with rt.cache.lock:
        for svc in rt.cache.list(SERVICES):
            if meta(svc).get("name") in ("zipkin", "jaeger-collector"):
                sel = (svc.get("spec") or {}).get("selector") or {}
                if sel and any(is_ready(p) and all(labels_of(p).get(k) == v for k, v in sel.items())
                               for p in rt.cache.list(PODS, meta(svc).get("namespace"))):
                    return True
    return False


class Trace:
    """The spans of one sampled request (None for unsampled ones)."""

    def __init__(self) -> None:
        self.trace_id = secrets.token_hex(16)
        self.spans: list[dict[str, Any]] = []
        self.processes: dict[str, dict[str, Any]] = {}

    def span(self, pod: dict[str, Any] | None, kind: str, op: str, parent: str | None, start_us: int, dur_us: int,
             tags: dict[str, str]) -> str:
        service = "unknown"
        if pod is not None:
            lb = labels_of(pod)
            service = f"{lb.get('service.istio.io/canonical-name') or lb.get('app') or workload_name(pod)}.{meta(pod).get('namespace')}"
        pid = next((k for k, v in self.processes.items() if v["serviceName"] == service), None)
        if pid is None:
            pid = f"p{len(self.processes) + 1}"
            self.processes[pid] = {"serviceName": service, "tags": [{"key": "hostname", "type": "string",
                                                                     "value": meta(pod).get("name", "") if pod else ""}]}
        sid = secrets.token_hex(8)
        self.spans.append({"traceID": self.trace_id, "spanID": sid, "operationName": op, "flags": 1,
                           "references": [{"refType": "CHILD_OF", "traceID": self.trace_id, "spanID": parent}] if parent else [],
                           "startTime": start_us, "duration": dur_us, "processID": pid, "warnings": None, "logs": [],
                           "tags": [{"key": "span.kind", "type": "string", "value": kind}, {"key": "component", "type": "string", "value": "proxy"}]
                           + [{"key": k, "type": "string", "value": v} for k, v in tags.items()]})
        return sid


# ------------------------------------------------------------------------------------- routing
def _vs_for(rt: Runtime, svc: str, ns: str, gateway: str | None) -> dict[str, Any] | None:
    fqdn = f"{svc}.{ns}.svc.cluster.local"
    with rt.cache.lock:
        vss = sorted(rt.cache.list(VIRTUALSERVICES), key=lambda v: meta(v).get("creationTimestamp", ""))
    for vs in vss:
        spec = vs.get("spec") or {}
        gws = spec.get("gateways") or ["mesh"]
        if "mesh" not in gws:
            continue
        vns = meta(vs).get("namespace") or ""
        for h in spec.get("hosts") or []:
            if h == fqdn or h in (f"{svc}.{ns}", f"{svc}.{ns}.svc") or (h == svc and vns == ns):
                return vs
    return None


def choose_route(rt: Runtime, svc: str, ns: str, method: str, path: str, headers: dict[str, str]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(route destination or None for the default, http route) as the VirtualService decides."""
    vs = _vs_for(rt, svc, ns, None)
    if vs is None:
        return None, {}
    for http_route in (vs.get("spec") or {}).get("http") or []:
        if not any(ingress._route_matches(m, method, path, headers) for m in http_route.get("match") or [{}]):
            continue
        dests = http_route.get("route") or []
        if not dests:
            return None, http_route
        weights = [int(d.get("weight", 100 if len(dests) == 1 else 0) or 0) for d in dests]
        dest = random.choices(dests, weights=weights)[0] if sum(weights) else dests[0]
        return dest.get("destination") or {}, http_route
    return None, {}


def _subset_labels(rt: Runtime, svc: str, ns: str, subset: str) -> dict[str, str] | None:
    drs = list(rt.store.list(DESTINATIONRULES)) if rt.store.registry.by_key(DESTINATIONRULES) else []
    dr = _destination_rule(drs, svc, ns)
    for s in ((dr or {}).get("spec") or {}).get("subsets") or []:
        if s.get("name") == subset:
            return s.get("labels") or {}
    return None


def _labels(values: dict[str, str], names: tuple[str, ...]) -> tuple:
    return tuple((n, values.get(n, "")) for n in names)


def call(rt: Runtime, src: dict[str, Any] | None, host: str, port: int, method: str, path: str, headers: dict[str, str],
         trace: Trace | None, parent_span: str | None, *, src_ns: str = "", subset: str | None = None,
         routed: bool = False, gateway: str = "", pin: dict[str, Any] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request from ``src`` (a pod; None = outside the mesh) to Service ``host`` on ``port``."""
    envoy = {"server": "istio-envoy"}
    ns_default = src_ns or (meta(src).get("namespace") if src else "default")
    dns, dname = ingress._split_host(host, ns_default)
    with rt.cache.lock:
        svc = rt.cache.get(SERVICES, dns, dname)
    if svc is None:
        return 503, envoy, b"no healthy upstream"
    fault: dict[str, Any] = {}
    if not routed:
        dest, http_route = choose_route(rt, dname, dns, method, path, headers)
        fault = http_route.get("fault") or {}
        if dest is not None:
            if dest.get("host"):
                dns, dname = ingress._split_host(dest["host"], dns)
                with rt.cache.lock:
                    svc = rt.cache.get(SERVICES, dns, dname)
                if svc is None:
                    return 503, envoy, b"no healthy upstream"
            subset = dest.get("subset") or subset
            if (dest.get("port") or {}).get("number"):
                port = int(dest["port"]["number"])
    sport = next((p for p in (svc.get("spec") or {}).get("ports") or [] if int(p.get("port") or -1) == port), None)
    if sport is None:
        sport = ((svc.get("spec") or {}).get("ports") or [{}])[0]
        port = int(sport.get("port") or port)
    proto = port_protocol(sport)
    with rt.cache.lock:
        sel = (svc.get("spec") or {}).get("selector") or {}
        pods = [p for p in rt.cache.list(PODS, dns) if is_ready(p) and sel and all(labels_of(p).get(k) == v for k, v in sel.items())]
    flags = "-"
    if subset:
        sl = _subset_labels(rt, dname, dns, subset)
        if sl is None:
            pods, flags = [], "NR"
        else:
            pods = [p for p in pods if all(labels_of(p).get(k) == v for k, v in sl.items())]
    if pin is not None:
        pods = [pin]
    dst = random.choice(pods) if pods else None
    mtls = _mtls(rt, src, dst, dns, dname)
    values = {**_peer(src, "source", mtls), **_peer(dst, "destination", mtls)}
    values.update(destination_service=f"{dname}.{dns}.svc.cluster.local", destination_service_name=dname,
                  destination_service_namespace=dns, connection_security_policy="mutual_tls" if mtls else "none",
                  grpc_response_status="", request_protocol="tcp" if proto == "tcp" else proto)
    if dst is None:
        values.update(destination_workload="unknown", destination_app="unknown", destination_version="unknown",
                      destination_workload_namespace="unknown", destination_canonical_service=dname)
    start = time.time()
    delay_ms = 0.0
    delay = fault.get("delay") or {}
    if delay.get("fixedDelay") and random.random() * 100 < float((delay.get("percentage") or {}).get("value", 100)):
        delay_ms = _duration_ms(delay["fixedDelay"])
    abort = fault.get("abort") or {}
    if dst is None:
        code, out_headers, body = 503, {**envoy, "content-type": "text/plain"}, b"no healthy upstream"
        flags = flags if flags != "-" else "UH"
    elif abort.get("httpStatus") and random.random() * 100 < float((abort.get("percentage") or {}).get("value", 100)):
        code, out_headers, body, flags = int(abort["httpStatus"]), {**envoy, "content-type": "text/plain"}, b"fault filter abort", "FI"
    else:
        if delay_ms:
            flags = "DI"
        from . import bookinfo      # the apps the pods run (import here: bookinfo calls back into this module)

        target_port = _resolve_port(dst, sport.get("targetPort", port)) or port
        child_trace_parent = None
        client_span = server_span = None
        if trace is not None:
            client_span = trace.span(src, "client", f"{dname}.{dns}.svc.cluster.local:{port}/*", parent_span, int(start * 1e6), 0, {})
            server_span = trace.span(dst, "server", f"{dname}.{dns}.svc.cluster.local:{port}/*", client_span, int(start * 1e6), 0, {})
            child_trace_parent = server_span
        answer = bookinfo.serve(rt, dst, target_port, method, path, headers, trace, child_trace_parent)
        code, out_headers, body = answer if answer is not None else ingress.generic(dns, dname, path, gateway)
        if trace is not None:
            dur = int((time.time() - start) * 1e6 + delay_ms * 1000) + 1
            for s in trace.spans:
                if s["spanID"] in (client_span, server_span):
                    s["duration"] = dur
                    s["tags"] += [{"key": "http.method", "type": "string", "value": method},
                                  {"key": "http.url", "type": "string", "value": f"http://{dname}.{dns}:{port}{path}"},
                                  {"key": "http.status_code", "type": "string", "value": str(code)},
                                  {"key": "response_flags", "type": "string", "value": flags}]
    ms = (time.time() - start) * 1000.0 + delay_ms + random.uniform(1.0, 8.0)
    values["response_flags"] = flags
    tel = state(rt)
    if proto == "tcp":
        lbl = _labels(values, TCP_LABELS)
        sent, received = len(path) + 64, len(body)
        for reporter, pod in (("source", src), ("destination", dst)):
            if has_proxy(pod):
                tel.tcp_conn(meta(pod)["uid"], tuple((k, reporter if k == "reporter" else v) for k, v in lbl), sent, received)
    else:
        values["response_code"] = str(code)
        lbl = _labels(values, REQUEST_LABELS)
        for reporter, pod in (("source", src), ("destination", dst)):
            if has_proxy(pod):
                tel.http(meta(pod)["uid"], tuple((k, reporter if k == "reporter" else v) for k, v in lbl), ms)
    return code, {**out_headers, "x-envoy-upstream-service-time": str(int(ms))}, body


def _duration_ms(text: str) -> float:
    text = str(text).strip()
    try:
        if text.endswith("ms"):
            return float(text[:-2])
        if text.endswith("s"):
            return float(text[:-1]) * 1000
        if text.endswith("m"):
            return float(text[:-1]) * 60000
    except ValueError:
        pass
    return 0.0


def from_gateway(rt: Runtime, gw_pod: dict[str, Any], dest: dict[str, Any], vs_ns: str, method: str, path: str,
                 headers: dict[str, str], gateway: str) -> tuple[int, dict[str, str], bytes]:
    """The ingress gateway's Envoy forwards a request to a route destination (called by ingress.route)."""
    trace = Trace() if collector_ready(rt) and random.random() * 100 < sampling_percent(rt) else None
    root = None
    start = time.time()
    if trace is not None:
        root = trace.span(gw_pod, "server", f"{headers.get('host') or '*'}:{path.split('?', 1)[0]}", None, int(start * 1e6), 0,
                          {"istio.gateway": gateway})
    port = int(((dest.get("port") or {}).get("number")) or 0)
    code, out, body = call(rt, gw_pod, dest.get("host") or "", port or 9080, method, path, headers, trace, root,
                           src_ns=vs_ns, subset=dest.get("subset"), routed=True, gateway=gateway)
    if trace is not None:
        trace.spans[0]["duration"] = int((time.time() - start) * 1e6) + 1
        trace.spans[0]["tags"].append({"key": "http.status_code", "type": "string", "value": str(code)})
        state(rt).traces.append({"traceID": trace.trace_id, "spans": trace.spans, "processes": trace.processes, "warnings": None})
    return code, out, body


def call_pod(rt: Runtime, pod: dict[str, Any], port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """A request that reaches a pod from outside the mesh (the API server's pod/service proxy): only its sidecar reports."""
    ns = meta(pod).get("namespace") or ""
    with rt.cache.lock:
        svcs = [s for s in rt.cache.list(SERVICES, ns) if (sel := (s.get("spec") or {}).get("selector"))
                and all(labels_of(pod).get(k) == v for k, v in sel.items())]
    for svc in sorted(svcs, key=lambda s: meta(s)["name"]):
        for sp in (svc.get("spec") or {}).get("ports") or []:
            if _resolve_port(pod, sp.get("targetPort", sp.get("port"))) == port:
                return call(rt, None, f"{meta(svc)['name']}.{ns}", int(sp["port"]), method, path, headers, None, None,
                            routed=True, pin=pod)
    from . import bookinfo

    answer = bookinfo.serve(rt, pod, port, method, path, headers)
    return answer if answer is not None else (404, {"x-kubesim-simulated": "true"}, b"")


# ------------------------------------------------------------------------------------- exposition
def _fmt(labels: tuple) -> str:
    return ",".join(f'{k}="{json.dumps(v)[1:-1]}"' for k, v in labels)


def exposition(rt: Runtime, pod: dict[str, Any]) -> str:
    """Prometheus text of one pod's sidecar (what pilot-agent serves on :15020/stats/prometheus)."""
    uid = meta(pod).get("uid")
    tel = state(rt)
    out = ["# kubesim simulated Envoy/Istio metrics (no Envoy runs here)",
           "# TYPE istio_requests_total counter"]
    with tel.lock:
        reqs = dict(tel.requests.get(uid, {}))
        durs = {k: list(v) for k, v in tel.durations.get(uid, {}).items()}
        tcp = {k: list(v) for k, v in tel.tcp.get(uid, {}).items()}
    for lbl, n in sorted(reqs.items()):
        out.append(f"istio_requests_total{{{_fmt(lbl)}}} {n}")
    out.append("# TYPE istio_request_duration_milliseconds histogram")
    for lbl, h in sorted(durs.items()):
        f = _fmt(lbl)
        for i, b in enumerate(DURATION_BUCKETS):
            out.append(f'istio_request_duration_milliseconds_bucket{{{f},le="{b}"}} {h[2 + i]}')
        out.append(f'istio_request_duration_milliseconds_bucket{{{f},le="+Inf"}} {h[1]}')
        out.append(f"istio_request_duration_milliseconds_sum{{{f}}} {h[0]:.3f}")
        out.append(f"istio_request_duration_milliseconds_count{{{f}}} {h[1]}")
    for i, name in enumerate(("istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total",
                              "istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total")):
        out.append(f"# TYPE {name} counter")
        for lbl, c in sorted(tcp.items()):
            out.append(f"{name}{{{_fmt(lbl)}}} {c[i]}")
    out.append("# TYPE istio_agent_simulated gauge")
    out.append("istio_agent_simulated 1")
    return "\n".join(out) + "\n"


def _periodic(rt: Runtime) -> None:
    with rt.cache.lock:
        live = {meta(p).get("uid") for p in rt.cache.list(PODS)}
    state(rt).forget(live)


def register(rt: Runtime) -> None:
    state(rt)
    rt.periodic.append(_periodic)

# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proof that Istio telemetry flows: Prometheus series, scrape targets, Grafana, Jaeger, Kiali.

The checks are pure functions over decoded answers (Prometheus vectors, target lists, pods
and Services as the Kubernetes API returns them, Grafana/Jaeger/Kiali JSON); ``gather``
fetches those answers and ``run`` re-polls until the verdict passes or ``wait_timeout``
expires.  Every finding comes from the one ``FINDINGS`` table (code, name, severity, check,
message and remedy templates).

This is a private module_utils file: it may change at any time.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

from ansible_collections.okemesh.istio.plugins.module_utils import _promql
from ansible_collections.okemesh.istio.plugins.module_utils._addons import get_json
from ansible_collections.okemesh.istio.plugins.module_utils._errors import AddonError

ERROR = "error"
WARNING = "warning"
OK = "ok"
MARK = {OK: u"\u221a", WARNING: u"\u203c", ERROR: u"\u00d7"}  # as injection_check (linkerd check style)

# check name -> title in the report (order = report order)
CHECKS = (
    ("series", "Prometheus: istio_requests_total series"),
    ("protocol", "Prometheus: protocol of the traffic (Service port naming)"),
    ("errors", "Prometheus: non-2xx responses"),
    ("targets", "Prometheus: scrape targets"),
    ("grafana", "Grafana: Istio dashboards"),
    ("jaeger", "Jaeger: traces"),
    ("kiali", "Kiali: status"),
)
CHECK_NAMES = tuple(name for name, _title in CHECKS)
DEFAULT_CHECKS = ("series", "protocol", "errors", "targets", "grafana", "jaeger")
CHECK_ADDON = dict(series="prometheus", protocol="prometheus", errors="prometheus", targets="prometheus",
                   grafana="grafana", jaeger="jaeger", kiali="kiali")

DEFAULT_DASHBOARDS = (
    "Istio Mesh Dashboard",
    "Istio Service Dashboard",
    "Istio Workload Dashboard",
    "Istio Control Plane Dashboard",
    "Istio Performance Dashboard",
)
DEFAULT_JAEGER_SERVICES = ("istio-ingressgateway", "productpage")

_ADDON_REMEDY_INSTALL = ("install the {addon} add-on (okemesh.istio.addons role, or kubectl apply -f samples/addons/{addon}.yaml) "
                         "or point the module's {addon}.service/{addon}.namespace (or {addon}.url) at yours")

# The ONE table: code -> (name, severity, check or None = the check given, message, remedy).
# Messages and remedies are str.format templates over the finding's context.
FINDINGS = {
    "OKM0101": ("AddonServiceNotFound", ERROR, None,
                "{addon} not found: {target} answered HTTP 404{detail}",
                _ADDON_REMEDY_INSTALL),
    "OKM0102": ("AddonAccessDenied", ERROR, None,
                "{addon}: access denied by {target} (HTTP {status}){detail}",
                "grant get on services/proxy in namespace {namespace} (check: kubectl auth can-i get services/proxy -n {namespace}), "
                "or give {addon}.url (and {addon}.bearer_token) to reach it directly"),
    "OKM0103": ("AddonUnavailable", ERROR, None,
                "{addon} unavailable: {target} answered HTTP 503 (no ready endpoint){detail}",
                "kubectl -n {namespace} get endpoints {service}; kubectl -n {namespace} get pods - is {addon} scaled to 0 or not ready"),
    "OKM0104": ("AddonUnreachable", ERROR, None,
                "{addon}: {target} did not answer as expected: {detail}",
                "check that {addon} runs and that the URL or service/port options are right (kubectl -n {namespace} get svc {service})"),
    "OKM0105": ("PrometheusQueryFailed", ERROR, None,
                "prometheus refused a query: {detail}",
                "check the Prometheus version and logs (kubectl -n {namespace} logs deploy/prometheus); the query is in the finding"),
    "OKM0110": ("NoIstioRequests", ERROR, "series",
                "no istio_requests_total series for {namespaces} in the last {window} ({workloads} meshed workload(s))",
                "send traffic (for bookinfo: curl http://<gateway>/productpage a few times), then check that Prometheus "
                "scrapes the sidecars (targets check) and keeps Istio's metrics"),
    "OKM0111": ("WorkloadWithoutTraffic", WARNING, "series",
                "{object}: no requests recorded in the last {window}",
                "send traffic to {object}, or widen window"),
    "OKM0112": ("WorkloadNotReporting", ERROR, "series",
                "{object}: its callers report {requests} request(s) to it, its own sidecar none (reporter=destination)",
                "check that Prometheus scrapes {object}'s pods: annotations prometheus.io/scrape, prometheus.io/port 15020, "
                "prometheus.io/path /stats/prometheus (kubectl -n {namespace} get pods -l app={app} -o yaml)"),
    "OKM0113": ("SeriesMissingStandardLabels", WARNING, "series",
                "{series} istio_requests_total series lack Istio's standard labels ({labels})",
                "do not drop or rename Istio's labels in Prometheus relabelling or a Telemetry resource's metric overrides"),
    "OKM0114": ("TrafficCountedAsTcp", ERROR, "protocol",
                "{object}: traffic is counted as TCP (istio_tcp_*, no istio_requests_total) because port {ports} "
                "does not declare a protocol",
                "name the port http-<suffix> (or grpc-<suffix>) or set appProtocol: http in Service {service} (namespace {namespace})"),
    "IST0118": ("PortNameIsNotUnderNamingConvention", WARNING, "protocol",
                "{object}: port {ports} does not follow Istio's port naming (<protocol>[-<suffix>]) and has no appProtocol",
                "rename the port to http-<suffix>, grpc-<suffix>, tcp-<suffix>, ... or set appProtocol on it"),
    "OKM0115": ("HighErrorShare", WARNING, "errors",
                "{object}: {share} of {requests} request(s) answered non-2xx in the last {window} (threshold {threshold}; codes {codes})",
                "look at the failing calls: kubectl -n {namespace} logs deploy/{name} -c istio-proxy; check VirtualService faults and the app"),
    "OKM0120": ("NoSidecarScrapeTargets", ERROR, "targets",
                "Prometheus has no sidecar scrape target (/stats/prometheus) in {namespaces}",
                "make Prometheus scrape annotated pods (the kubernetes-pods job of Istio's samples/addons/prometheus.yaml) "
                "and check the pods' prometheus.io/* annotations"),
    "OKM0121": ("SidecarScrapeTargetsDown", ERROR, "targets",
                "{down} of {total} sidecar scrape target(s) down: {pods} ({last_error})",
                "kubectl -n {namespace} describe pod {pod}; check that port 15020 is reachable from Prometheus (NetworkPolicy)"),
    "OKM0122": ("IstiodScrapeTargetMissing", WARNING, "targets",
                "Prometheus has no scrape target for istiod",
                "annotate istiod for scraping (the istiod chart does by default) or add a job for istiod:15014 /metrics"),
    "OKM0123": ("IstiodScrapeTargetDown", ERROR, "targets",
                "istiod scrape target(s) down: {pods} ({last_error})",
                "kubectl -n {namespace} get pods -l app=istiod; check port 15014"),
    "OKM0124": ("MeshedPodsNotScraped", WARNING, "targets",
                "{count} meshed pod(s) are not Prometheus targets: {pods}",
                "check the pods' prometheus.io/* annotations and the Prometheus kubernetes-pods job"),
    "OKM0130": ("GrafanaDashboardsMissing", ERROR, "grafana",
                "Grafana lacks dashboard(s): {missing}",
                "apply Istio's dashboards ConfigMaps (istio-grafana-dashboards, istio-services-grafana-dashboards from "
                "samples/addons/grafana.yaml; okemesh.istio.addons role) and restart Grafana"),
    "OKM0140": ("JaegerServiceUnknown", WARNING, "jaeger",
                "Jaeger knows no service named {wanted} (it knows: {known})",
                "send traffic through the gateway and raise trace sampling (meshConfig.defaultConfig.tracing.sampling: 100 "
                "or a Telemetry resource with randomSamplingPercentage), and check the tracing provider's address"),
    "OKM0141": ("JaegerNoTraces", WARNING, "jaeger",
                "Jaeger has no trace of {services} in the last {window}",
                "send traffic and raise trace sampling (the default is 1%: meshConfig.defaultConfig.tracing.sampling or "
                "a Telemetry resource with randomSamplingPercentage: 100)"),
    "OKM0150": ("KialiNotRunning", ERROR, "kiali",
                "Kiali answered its status API but is not running: {state}",
                "kubectl -n {namespace} logs deploy/kiali"),
}

ADDON_CODES = dict(not_found="OKM0101", forbidden="OKM0102", unavailable="OKM0103", unreachable="OKM0104",
                   http_error="OKM0104", bad_answer="OKM0104", query_error="OKM0105")


class _Context(dict):
    """Template context: a missing key shows as ``?``, a list as ``a, b, c``."""

    def __missing__(self, key):
        return "?"

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return value


def finding(code: str, obj: str, check: str | None = None, **context) -> dict:
    """A finding built from the FINDINGS table (message and remedy filled from ``context``)."""
    name, severity, table_check, message, remedy = FINDINGS[code]
    ctx = _Context(object=obj)
    ctx.update(context)
    out = dict(code=code, name=name, severity=severity, check=table_check or check, object=obj,
               message=message.format_map(ctx), remedy=remedy.format_map(ctx))
    for key in ("namespace", "workload", "pods", "service", "query"):
        if key in context and context[key] is not None:
            out[key] = context[key]
    return out


def addon_finding(err: AddonError, check: str, namespace: str | None = None, service: str | None = None) -> dict:
    """The finding for an add-on that could not be used (404, 403, 503, no answer, Prometheus error)."""
    kind = err.details.get("kind") or "unreachable"
    addon = err.details.get("addon") or CHECK_ADDON.get(check, "add-on")
    detail = err.msg
    prefix = "%s: %s answered HTTP %s" % (addon, err.details.get("target"), err.details.get("status"))
    if detail.startswith(prefix):
        detail = detail[len(prefix):]
    obj = "service/%s/%s" % (namespace, service) if namespace and service else (err.details.get("target") or addon)
    return finding(ADDON_CODES.get(kind, "OKM0104"), obj, check=check,
                   addon=addon, target=err.details.get("target") or addon, status=err.details.get("status"),
                   detail=detail, namespace=namespace or "<namespace>", service=service or addon,
                   query=err.details.get("query"))


# --------------------------------------------------------------------------------------
# Kubernetes objects -> meshed workloads, Service port protocols
# --------------------------------------------------------------------------------------
PROTOCOLS = ("grpc-web", "http2", "https", "http", "grpc", "tcp", "tls", "mongo", "mysql", "redis", "udp")
HTTP_PROTOCOLS = ("http", "http2", "grpc", "grpc-web", "h2c", "kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss")


def port_protocol(port: dict) -> str | None:
    """The protocol Istio reads from a Service port (appProtocol first, then the name prefix); None when unknown."""
    app = (port.get("appProtocol") or "").lower()
    if app:
        return app
    name = (port.get("name") or "").lower()
    for proto in PROTOCOLS:
        if name == proto or name.startswith(proto + "-"):
            return proto
    return None


def _has_proxy(pod: dict) -> bool:
    spec = pod.get("spec") or {}
    if any(c.get("name") == "istio-proxy" for c in spec.get("containers") or []):
        return True
    return any(c.get("name") == "istio-proxy" and c.get("restartPolicy") == "Always" for c in spec.get("initContainers") or [])


def workload_name(pod: dict) -> str:
    """Istio's workload name of a pod: its Deployment (ReplicaSet minus the template hash), else the owner, else the pod."""
    meta = pod.get("metadata") or {}
    refs = meta.get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if ref is None:
        return meta.get("name")
    name = ref.get("name") or meta.get("name")
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if ref.get("kind") == "ReplicaSet" and template_hash and name.endswith("-" + template_hash):
        return name[: -len(template_hash) - 1]
    return name


def meshed_workloads(pods) -> dict:
    """{(namespace, workload): dict(namespace, name, app, version, pods)} of running pods that carry istio-proxy."""
    found = {}
    for pod in pods or []:
        meta = pod.get("metadata") or {}
        if (pod.get("status") or {}).get("phase") not in (None, "Running", "Pending"):
            continue
        if not _has_proxy(pod):
            continue
        labels = meta.get("labels") or {}
        key = (meta.get("namespace"), workload_name(pod))
        entry = found.setdefault(key, dict(namespace=key[0], name=key[1], pods=[],
                                           app=labels.get("app") or labels.get("app.kubernetes.io/name") or key[1],
                                           version=labels.get("version") or labels.get("app.kubernetes.io/version")))
        entry["pods"].append(meta.get("name"))
    for entry in found.values():
        entry["pods"].sort()
    return found


# --------------------------------------------------------------------------------------
# the checks (pure)
# --------------------------------------------------------------------------------------
def _fmt_share(share: float) -> str:
    return "%.1f%%" % (share * 100.0)


def _ns_text(namespaces) -> str:
    return ", ".join(namespaces) if namespaces else "all namespaces"


def check_series(http, workloads: dict, namespaces, window: str, tcp=None):
    """Findings and OK lines for the istio_requests_total series (``http`` = [(labels, increase)]).

    A workload that only has TCP series (``tcp``) received traffic too: the protocol check judges it.
    """
    findings, oks = [], []
    dest, callers, as_source = {}, {}, {}
    missing_labels, missing_names = 0, set()
    total = received = 0.0
    for labels, value in http:
        absent = [name for name in _promql.REQUIRED_REQUEST_LABELS if not labels.get(name)]
        if absent:
            missing_labels += 1
            missing_names.update(absent)
        if value <= 0:
            continue
        total += value
        reporter = labels.get("reporter")
        dkey = (labels.get("destination_workload_namespace"), labels.get("destination_workload"))
        skey = (labels.get("source_workload_namespace"), labels.get("source_workload"))
        if reporter == "destination":
            received += value
            dest[dkey] = dest.get(dkey, 0.0) + value
        elif reporter == "source":
            callers[dkey] = callers.get(dkey, 0.0) + value
        as_source[skey] = as_source.get(skey, 0.0) + value
    tcp_workloads = set()
    for labels, value in tcp or []:
        if value > 0:
            tcp_workloads.add((labels.get("destination_workload_namespace"), labels.get("destination_workload")))
            tcp_workloads.add((labels.get("source_workload_namespace"), labels.get("source_workload")))
    if missing_labels:
        findings.append(finding("OKM0113", "istio_requests_total", series=missing_labels, labels=", ".join(sorted(missing_names))))
    if total <= 0 and not tcp_workloads:
        findings.append(finding("OKM0110", "namespaces/%s" % ",".join(namespaces or ["*"]), namespaces=_ns_text(namespaces),
                                window=window, workloads=len(workloads)))
        return findings, oks
    reporting = 0
    for key in sorted(workloads):
        wl = workloads[key]
        obj = "%s/%s" % key
        if dest.get(key, 0) > 0:
            reporting += 1
        elif callers.get(key, 0) > 0:
            findings.append(finding("OKM0112", obj, requests=int(round(callers[key])), namespace=key[0], app=wl["app"],
                                    workload=key[1], pods=wl["pods"]))
        elif as_source.get(key, 0) > 0 or key in tcp_workloads:
            reporting += 1  # a client only (a load generator) reports as source; TCP-only traffic is judged by the protocol check
        else:
            findings.append(finding("OKM0111", obj, window=window, namespace=key[0], workload=key[1]))
    oks.append("istio_requests_total: %d request(s) in the last %s; %d of %d meshed workload(s) report series"
               % (int(round(received or total)), window, reporting, len(workloads)))
    return findings, oks


def check_protocol(http, tcp, services, namespaces):
    """Traffic counted as TCP where the destination Service's port declares no protocol; static port-name check."""
    findings, oks = [], []
    http_services = set()
    for labels, value in http:
        if value > 0:
            http_services.add((labels.get("destination_service_namespace"), labels.get("destination_service_name")))
    tcp_services = {}
    for labels, value in tcp:
        if value > 0:
            key = (labels.get("destination_service_namespace"), labels.get("destination_service_name"))
            tcp_services[key] = tcp_services.get(key, 0.0) + value
    by_key = {}
    for svc in services or []:
        meta = svc.get("metadata") or {}
        by_key[(meta.get("namespace"), meta.get("name"))] = svc
    reported = set()
    for key in sorted(k for k in tcp_services if k not in http_services and k[0] is not None and k[1] is not None):
        svc = by_key.get(key)
        if svc is None:
            continue
        ports = (svc.get("spec") or {}).get("ports") or []
        unknown = [p for p in ports if port_protocol(p) is None]
        if not unknown:
            continue  # every port declares a protocol: TCP on purpose (tcp-, mongo-, redis-, ...)
        reported.add(key)
        findings.append(finding("OKM0114", "service/%s/%s" % key, ports=_ports_text(unknown), service=key[1], namespace=key[0]))
    for key in sorted(by_key):
        if key in reported or (namespaces and key[0] not in namespaces):
            continue
        ports = (by_key[key].get("spec") or {}).get("ports") or []
        unknown = [p for p in ports if port_protocol(p) is None]
        if unknown:
            findings.append(finding("IST0118", "service/%s/%s" % key, ports=_ports_text(unknown), service=key[1], namespace=key[0]))
    if http_services:
        oks.append("%d service(s) receive HTTP/gRPC traffic (istio_requests_total)" % len(http_services))
    tcp_only = len([k for k in tcp_services if k not in http_services])
    if tcp_only and not any(f["code"] == "OKM0114" for f in findings):
        oks.append("%d service(s) receive TCP traffic on ports declared TCP" % tcp_only)
    if not any(f["code"] in ("OKM0114", "IST0118") for f in findings):
        oks.append("every Service port of %s declares its protocol (%d service(s))" % (_ns_text(namespaces), len(by_key)))
    return findings, oks


def _ports_text(ports) -> str:
    return ", ".join("%s (%s)" % (p.get("port"), ("name %r" % p["name"]) if p.get("name") else "unnamed") for p in ports)


def check_errors(http, threshold: float, window: str):
    """Non-2xx share per destination workload (reporter=destination) above ``threshold`` (0..1)."""
    findings, oks = [], []
    totals, bad, codes = {}, {}, {}
    for labels, value in http:
        if value <= 0 or labels.get("reporter") != "destination":
            continue
        key = (labels.get("destination_workload_namespace"), labels.get("destination_workload"))
        totals[key] = totals.get(key, 0.0) + value
        code = str(labels.get("response_code") or "")
        if not code.startswith("2"):
            bad[key] = bad.get(key, 0.0) + value
            codes.setdefault(key, {})
            codes[key][code or "none"] = codes[key].get(code or "none", 0.0) + value
    for key in sorted(totals):
        share = bad.get(key, 0.0) / totals[key]
        if bad.get(key) and share > threshold:
            code_text = ", ".join("%s: %d" % (c, int(round(n))) for c, n in sorted(codes[key].items()))
            findings.append(finding("OKM0115", "%s/%s" % key, share=_fmt_share(share), requests=int(round(totals[key])),
                                    window=window, threshold=_fmt_share(threshold), codes=code_text, namespace=key[0],
                                    name=key[1], workload=key[1]))
    if totals and not findings:
        oks.append("non-2xx share at most %s for %d workload(s)" % (_fmt_share(threshold), len(totals)))
    return findings, oks


def target_info(target: dict) -> dict:
    """Kind (sidecar | istiod | other), namespace, pod, health and last error of a Prometheus active target."""
    labels = target.get("labels") or {}
    disc = target.get("discoveredLabels") or {}
    url = target.get("scrapeUrl") or ""
    namespace = labels.get("namespace") or labels.get("kubernetes_namespace") or disc.get("__meta_kubernetes_namespace")
    pod = labels.get("pod") or labels.get("kubernetes_pod_name") or disc.get("__meta_kubernetes_pod_name")
    app = labels.get("app") or disc.get("__meta_kubernetes_pod_label_app")
    if app == "istiod" or (pod or "").startswith("istiod") or labels.get("job") in ("istiod", "pilot"):
        kind = "istiod"
    elif "/stats/prometheus" in url:
        kind = "sidecar"
    else:
        kind = "other"
    return dict(kind=kind, namespace=namespace, pod=pod, health=target.get("health") or "unknown",
                last_error=target.get("lastError") or "", url=url)


def check_targets(targets, workloads: dict, namespaces, istio_namespace: str):
    findings, oks = [], []
    infos = [target_info(t) for t in targets or []]
    sidecars = [t for t in infos if t["kind"] == "sidecar" and (not namespaces or t["namespace"] in namespaces)]
    istiods = [t for t in infos if t["kind"] == "istiod"]
    if not sidecars:
        findings.append(finding("OKM0120", "prometheus/targets", namespaces=_ns_text(namespaces)))
    else:
        down = sorted((t for t in sidecars if t["health"] != "up"), key=lambda t: (t["namespace"] or "", t["pod"] or ""))
        if down:
            pods = ["%s/%s" % (t["namespace"], t["pod"]) for t in down]
            findings.append(finding("OKM0121", "prometheus/targets", down=len(down), total=len(sidecars), pods=pods,
                                    last_error=down[0]["last_error"] or "no error text", namespace=down[0]["namespace"],
                                    pod=down[0]["pod"]))
        else:
            oks.append("%d sidecar scrape target(s) up in %s" % (len(sidecars), _ns_text(namespaces)))
        scraped = set((t["namespace"], t["pod"]) for t in sidecars)
        unscraped = sorted("%s/%s" % (wl["namespace"], pod) for wl in workloads.values() for pod in wl["pods"]
                           if (wl["namespace"], pod) not in scraped)
        if unscraped:
            findings.append(finding("OKM0124", "prometheus/targets", count=len(unscraped), pods=unscraped))
    if not istiods:
        findings.append(finding("OKM0122", "prometheus/targets", namespace=istio_namespace))
    else:
        down = [t for t in istiods if t["health"] != "up"]
        if down:
            findings.append(finding("OKM0123", "prometheus/targets", pods=sorted(t["pod"] or t["url"] for t in down),
                                    last_error=down[0]["last_error"] or "no error text", namespace=down[0]["namespace"] or istio_namespace))
        else:
            oks.append("istiod scrape target(s) up (%d)" % len(istiods))
    return findings, oks


def check_grafana(search_results: dict, titles):
    """``search_results``: {title: decoded /api/search answer}. A dashboard is there when a result has that title."""
    findings, oks = [], []
    found, missing = [], []
    for title in titles:
        hits = search_results.get(title) or []
        names = [h.get("title", "") for h in hits if isinstance(h, dict) and h.get("type", "dash-db") == "dash-db"]
        if any(n.strip().lower() == title.strip().lower() for n in names):
            found.append(title)
        else:
            missing.append(title)
    if missing:
        findings.append(finding("OKM0130", "grafana/dashboards", missing=", ".join(missing), namespace=None))
    if found:
        oks.append("Grafana has %d of %d dashboard(s): %s" % (len(found), len(titles), ", ".join(found)))
    return findings, oks


def jaeger_matches(known, wanted):
    """Jaeger service names that stand for ``wanted`` (``productpage`` matches ``productpage.bookinfo``), in wanted order."""
    out = []
    for want in wanted:
        for name in sorted(known or []):
            if (name == want or name.startswith(want + ".")) and name not in out:
                out.append(name)
    return out


def check_jaeger(known, traces: dict, wanted, window: str):
    """``known``: /api/services data; ``traces``: {service: number of traces}."""
    findings, oks = [], []
    matches = jaeger_matches(known, wanted)
    if not matches:
        findings.append(finding("OKM0140", "jaeger/services", wanted=" or ".join(wanted),
                                known=", ".join(sorted(known or [])) or "none"))
        return findings, oks
    with_traces = [s for s in matches if traces.get(s)]
    if with_traces:
        oks.append("Jaeger has traces of %s (%s)" % (", ".join(with_traces), ", ".join("%s: %d" % (s, traces[s]) for s in with_traces)))
    else:
        findings.append(finding("OKM0141", "jaeger/traces", services=" or ".join(matches), window=window))
    return findings, oks


def check_kiali(status: dict, namespace: str | None = None):
    findings, oks = [], []
    state = ((status or {}).get("status") or {}).get("Kiali state")
    if str(state).lower() == "running":
        version = ((status or {}).get("status") or {}).get("Kiali version")
        oks.append("Kiali is running%s" % (" (version %s)" % version if version else ""))
    else:
        findings.append(finding("OKM0150", "kiali/status", state=state or "no state in the answer",
                                namespace=namespace or "<namespace>"))
    return findings, oks


# --------------------------------------------------------------------------------------
# verdict and report
# --------------------------------------------------------------------------------------
def summarize(check_results: dict, findings) -> dict:
    by_check = {}
    for name in check_results:
        sev = [f["severity"] for f in findings if f["check"] == name]
        by_check[name] = ERROR if ERROR in sev else (WARNING if WARNING in sev else ("skipped" if check_results[name].get("skipped") else OK))
    return dict(
        errors=sum(1 for f in findings if f["severity"] == ERROR),
        warnings=sum(1 for f in findings if f["severity"] == WARNING),
        checks=by_check,
    )


def verdict(summary: dict, fail_on: str) -> bool:
    """True when the result fails for ``fail_on`` (error | warning | never)."""
    if fail_on == "never":
        return False
    if fail_on == "warning":
        return bool(summary["errors"] or summary["warnings"])
    return bool(summary["errors"])


def report_lines(result: dict, fail_on: str = "error"):
    """One line per check with a mark (√ pass, ‼ warning, × error), grouped per check, then a summary line."""
    lines = []
    titles = dict(CHECKS)
    for name in result["checks"]:
        title = titles[name]
        if lines:
            lines.append("")
        lines.append(title)
        lines.append("-" * len(title))
        state = result["checks"][name]
        for text in state.get("ok", []):
            lines.append(u"%s %s" % (MARK[OK], text))
        if state.get("skipped"):
            lines.append(u"- not evaluated: %s" % state["skipped"])
        for f in result["findings"]:
            if f["check"] == name:
                lines.append(u"%s %s [%s]" % (MARK[f["severity"]], f["message"], f["code"]))
                lines.append(u"    remedy: %s" % f["remedy"])
    summary = result["summary"]
    overall = ERROR if summary["errors"] else (WARNING if summary["warnings"] else OK)
    failed = verdict(summary, fail_on)
    lines.append("")
    lines.append(u"Telemetry check results are %s (%d error%s, %d warning%s; checks: %s)%s" % (
        MARK[overall], summary["errors"], "" if summary["errors"] == 1 else "s", summary["warnings"],
        "" if summary["warnings"] == 1 else "s", ", ".join("%s %s" % kv for kv in summary["checks"].items()),
        " - failed (fail_on=%s)" % fail_on if failed else ""))
    return lines


# --------------------------------------------------------------------------------------
# gathering (I/O through injected clients) and the service
# --------------------------------------------------------------------------------------
class Clients(object):
    """What ``gather`` talks to: a Kubernetes JSON client (``list(path)``), a Prometheus, and the add-on transports.

    ``addon_meta`` maps an add-on to (namespace, service) for the remedies (None for explicit URLs).
    """

    def __init__(self, kube=None, prometheus=None, grafana=None, jaeger=None, kiali=None, addon_meta=None):
        self.kube = kube
        self.prometheus = prometheus
        self.grafana = grafana
        self.jaeger = jaeger
        self.kiali = kiali
        self.addon_meta = addon_meta or {}


def _list_namespaced(kube, resource_path: str, namespaces):
    items = []
    if namespaces:
        for ns in namespaces:
            found, _rv = kube.list("/api/v1/namespaces/%s/%s" % (ns, resource_path))
            items.extend(found)
    else:
        found, _rv = kube.list("/api/v1/%s" % resource_path)
        items.extend(found)
    return items


def gather_and_check(clients: Clients, options: dict, clock) -> dict:
    """Fetch what the selected checks need and evaluate them once.

    Kubernetes errors (reading pods and Services) propagate as KubernetesError; add-on errors
    become findings of the checks that needed the add-on.
    """
    checks = [c for c in CHECK_NAMES if c in options["checks"]]
    namespaces = options.get("namespaces") or []
    window = options["window"]
    findings = []
    results = dict((c, dict(ok=[])) for c in checks)

    def addon_failed(err, names):
        addon = err.details.get("addon")
        namespace, service = clients.addon_meta.get(addon, (None, None))
        findings.append(addon_finding(err, names[0], namespace=namespace, service=service))
        for other in names[1:]:
            results[other]["skipped"] = "%s did not answer (see %s)" % (addon, names[0])

    pods = services = None
    if set(checks) & set(["series", "targets"]):
        pods = _list_namespaced(clients.kube, "pods", namespaces)
    if "protocol" in checks:
        services = _list_namespaced(clients.kube, "services", namespaces)
    workloads = meshed_workloads(pods)

    prom_checks = [c for c in checks if c in ("series", "protocol", "errors", "targets")]
    if clients.prometheus is not None:
        clients.prometheus.queries = []
    http = tcp = targets = None
    if prom_checks:
        try:
            if set(prom_checks) & set(["series", "protocol", "errors"]):
                http = clients.prometheus.query(_promql.grouped_increase(_promql.REQUESTS, _promql.REQUEST_LABELS, window, namespaces))
            if set(prom_checks) & set(["series", "protocol"]):
                tcp = clients.prometheus.query(_promql.grouped_increase(_promql.TCP_OPENED, _promql.TCP_LABELS, window, namespaces))
            if "targets" in prom_checks:
                targets = clients.prometheus.targets()
        except AddonError as err:
            addon_failed(err, prom_checks)
            prom_checks = []
    for name in prom_checks:
        if name == "series":
            found, oks = check_series(http, workloads, namespaces, window, tcp)
        elif name == "protocol":
            found, oks = check_protocol(http, tcp, services, namespaces)
        elif name == "errors":
            found, oks = check_errors(http, options["error_threshold"], window)
        else:
            found, oks = check_targets(targets, workloads, namespaces, options.get("istio_namespace") or "istio-system")
        findings.extend(found)
        results[name]["ok"].extend(oks)

    if "grafana" in checks:
        try:
            answers = {}
            for title in options["grafana_dashboards"]:
                answers[title] = get_json(clients.grafana, "/api/search", [("query", title), ("type", "dash-db")])
            found, oks = check_grafana(answers, options["grafana_dashboards"])
            findings.extend(found)
            results["grafana"]["ok"].extend(oks)
        except AddonError as err:
            addon_failed(err, ["grafana"])
    if "jaeger" in checks:
        try:
            known = (get_json(clients.jaeger, "/api/services") or {}).get("data") or []
            traces = {}
            end = int(clock() * 1000000)
            start = end - int(_promql.duration_seconds(window) * 1000000)
            for svc in jaeger_matches(known, options["jaeger_services"]):
                query = [("service", svc), ("start", str(start)), ("end", str(end)), ("limit", "20")]
                answer = get_json(clients.jaeger, "/api/traces", query)
                traces[svc] = len((answer or {}).get("data") or [])
                if traces[svc]:
                    break
            found, oks = check_jaeger(known, traces, options["jaeger_services"], window)
            findings.extend(found)
            results["jaeger"]["ok"].extend(oks)
        except AddonError as err:
            addon_failed(err, ["jaeger"])
    if "kiali" in checks:
        try:
            found, oks = check_kiali(get_json(clients.kiali, "/api/status"), clients.addon_meta.get("kiali", (None, None))[0])
            findings.extend(found)
            results["kiali"]["ok"].extend(oks)
        except AddonError as err:
            addon_failed(err, ["kiali"])

    order = dict((name, n) for n, name in enumerate(CHECK_NAMES))
    findings.sort(key=lambda f: (order.get(f["check"], 99), {ERROR: 0, WARNING: 1}.get(f["severity"], 2), f["code"], f["object"]))
    summary = summarize(results, findings)
    return dict(
        checks=results,
        findings=findings,
        summary=summary,
        workloads=[dict(workloads[k], pods=len(workloads[k]["pods"])) for k in sorted(workloads)],
    )


def run(clients: Clients, options: dict, clock, sleep) -> dict:
    """Check; with ``wait_timeout`` > 0 check again every ``wait_interval`` seconds until the verdict
    passes at the ``fail_on`` level (``error`` for ``never``) or the deadline passes."""
    fail_on = options.get("fail_on") or "error"
    threshold = "error" if fail_on == "never" else fail_on
    start = clock()
    deadline = start + float(options.get("wait_timeout") or 0)
    interval = max(0.1, float(options.get("wait_interval") or 5))
    attempts = 0
    while True:
        attempts += 1
        result = gather_and_check(clients, options, clock)
        passed = not verdict(result["summary"], threshold)
        remaining = deadline - clock()
        if passed or remaining <= 0:
            break
        sleep(min(interval, remaining))
    result["passed"] = passed
    result["failed"] = verdict(result["summary"], fail_on)
    result["attempts"] = attempts
    result["elapsed"] = round(clock() - start, 3)
    result["queries"] = list(clients.prometheus.queries) if clients.prometheus is not None else []
    result["report_lines"] = report_lines(result, fail_on)
    for state in result["checks"].values():
        state.setdefault("skipped", None)
    return result

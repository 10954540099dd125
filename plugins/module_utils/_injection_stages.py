# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The injection check as a pipeline of stages, each returning plain data.

    index_control_plane  the injector webhooks, istiod Deployments, Services and endpoints, indexed
    select_scope         which namespaces are checked, their modes, and the namespace issues
    classify_pods        one verdict per pod, and what the pods need from the control plane
    check_control_plane  istiod, injector webhooks, their Services and endpoints, ztunnel
    build_findings       every issue rendered from the CODES table (pod issues per workload)
    summarize            the counts

``check()`` in ``_injection.py`` runs them in this order.  An *issue* is a code, the object it
is about and the facts its texts need; only ``build_findings`` turns issues into text, through
``_injection_codes.CODES``.  No Ansible and no kubernetes imports.

This is a private module_utils file: it may change at any time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

from ansible_collections.okemesh.istio.plugins.module_utils._injection_codes import (
    CODES,
    ERROR,
    WARNING,
    detail,
    plural,
    render,
    restart_remedy,
)
from ansible_collections.okemesh.istio.plugins.module_utils._injection_objects import (
    MODE_AMBIENT,
    MODE_DISABLED,
    MODE_NONE,
    MODE_REVISION,
    MODE_SIDECAR,
    POD_STATUSES,
    _meta,
    asks_for_injection,
    classify_pod,
    describe_key,
    expected_key,
    injectors,
    istiod_deployments,
    namespace_mode,
    ready_endpoint_counts,
)

Obj = Dict[str, Any]


# --------------------------------------------------------------------------------------
# inputs and stage outputs
# --------------------------------------------------------------------------------------
@dataclass
class Cluster:
    """The API objects the check reads, as lists of dicts (what a LIST returns in ``items``)."""

    namespaces: List[Obj] = field(default_factory=list)
    pods: List[Obj] = field(default_factory=list)
    webhook_configurations: List[Obj] = field(default_factory=list)
    deployments: List[Obj] = field(default_factory=list)
    services: List[Obj] = field(default_factory=list)
    endpoint_slices: List[Obj] = field(default_factory=list)
    endpoints: List[Obj] = field(default_factory=list)
    daemonsets: List[Obj] = field(default_factory=list)


@dataclass
class CheckOptions:
    """What the user asked for: namespaces (None = every namespace that asks for injection),
    the control plane's namespace, the expected revision and proxy version."""

    namespaces: Optional[List[str]] = None
    istio_namespace: str = "istio-system"
    revision: Optional[str] = None
    proxy_version: Optional[str] = None


@dataclass
class Issue:
    """A problem before it is text: ``CODES[code].texts[variant]`` formatted with ``facts``."""

    code: str
    object: str
    namespace: Optional[str] = None
    variant: str = ""
    facts: Dict[str, Any] = field(default_factory=dict)
    pods: Optional[List[str]] = None


@dataclass
class Index:
    """The control plane's objects indexed: injectors by the key a label uses, istiod by revision,
    ready endpoints by (namespace, service), and the Services that exist."""

    injectors: Dict[str, Obj]
    istiod: Dict[str, Obj]
    endpoint_counts: Dict[Tuple[str, str], int]
    services: Set[Tuple[str, str]]


@dataclass
class Scope:
    """The namespaces checked (in order), the namespace_mode() of those that exist, whether the
    user named them, the pods by namespace, and the namespace issues."""

    names: List[str]
    infos: Dict[str, Obj]
    explicit: bool
    pods_by_ns: Dict[str, List[Obj]]
    issues: List[Issue]


@dataclass
class PodVerdicts:
    """One classify_pod() result per pod checked; the injector keys (revisions or tags) the
    namespaces and pods ask for; whether any namespace is ambient."""

    results: List[Obj]
    keys_needed: Set[str]
    ambient_needed: bool


@dataclass
class ControlPlane:
    """The result's ``control_plane`` (namespace, istiod, injectors, ztunnel) and its issues."""

    view: Obj
    issues: List[Issue]


# --------------------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------------------
def index_control_plane(cluster: Cluster, istio_namespace: str) -> Index:
    """Stage 0: index the injector webhooks, istiod Deployments, Services and endpoints."""
    return Index(
        injectors=injectors(cluster.webhook_configurations),
        istiod=istiod_deployments([d for d in cluster.deployments or [] if _meta(d).get("namespace") == istio_namespace]),
        endpoint_counts=ready_endpoint_counts(cluster.endpoint_slices, cluster.endpoints),
        services=set((_meta(s).get("namespace"), _meta(s).get("name")) for s in cluster.services or []),
    )


def select_scope(cluster: Cluster, options: CheckOptions, index: Index) -> Scope:
    """Stage 1: the namespaces to check and what is wrong with their labels.

    Named namespaces are checked as named (a missing one is OKM0011, an unlabelled one
    IST0102); otherwise every namespace that asks for injection, plus unlabelled namespaces
    holding pods that ask themselves (OKM0010 when there is none).
    """
    ns_objects = dict((_meta(n).get("name"), n) for n in cluster.namespaces or [])
    pods_by_ns: Dict[str, List[Obj]] = {}
    for pod in cluster.pods or []:
        pods_by_ns.setdefault(_meta(pod).get("namespace"), []).append(pod)
    explicit = bool(options.namespaces)
    if explicit:
        names = list(dict.fromkeys(options.namespaces))
    else:
        names = []
        for name in sorted(ns_objects):
            mode = namespace_mode(ns_objects[name])["mode"]
            if mode in (MODE_SIDECAR, MODE_REVISION, MODE_AMBIENT):
                names.append(name)
            elif mode == MODE_NONE and any(asks_for_injection(p) for p in pods_by_ns.get(name, [])):
                names.append(name)
    infos: Dict[str, Obj] = {}
    issues: List[Issue] = []
    for name in names:
        obj = "namespace/%s" % name
        if name not in ns_objects:
            issues.append(Issue("OKM0011", obj, name, facts=dict(namespace=name)))
            continue
        info = namespace_mode(ns_objects[name])
        info["explicit"] = explicit
        infos[name] = info
        for conflict in info["conflicts"]:
            issues.append(Issue("IST0123", obj, name, facts=dict(namespace=name, conflict=conflict)))
        if info["ambient_and_sidecar"]:
            issues.append(Issue("OKM0013", obj, name, facts=dict(namespace=name)))
        if info["mode"] in (MODE_NONE, MODE_DISABLED) and explicit:
            issues.append(Issue("IST0102", obj, name, facts=dict(namespace=name, mode=info["mode"])))
        if options.revision and info["revision"] is not None:
            injector = index.injectors.get(info["revision"])
            resolved = injector["revision"] if injector else info["revision"]
            if options.revision not in (info["revision"], resolved):
                issues.append(Issue("OKM0012", obj, name,
                                    facts=dict(namespace=name, asked=info["revision"], expected=options.revision)))
    if not explicit and not names:
        issues.append(Issue("OKM0010", "cluster"))
    return Scope(names=names, infos=infos, explicit=explicit, pods_by_ns=pods_by_ns, issues=issues)


def classify_pods(scope: Scope, index: Index, options: CheckOptions) -> PodVerdicts:
    """Stage 2: classify every pod of the namespaces in scope (in an unlabelled namespace that
    was not named, only the pods that ask for injection themselves)."""
    results = []
    keys_needed: Set[str] = set()
    ambient_needed = False
    for name in scope.names:
        info = scope.infos.get(name)
        if info is None:
            continue
        if info["revision"]:
            keys_needed.add(info["revision"])
        if info["mode"] == MODE_AMBIENT:
            ambient_needed = True
        for pod in sorted(scope.pods_by_ns.get(name, []), key=lambda p: _meta(p).get("name") or ""):
            if info["mode"] == MODE_NONE and not scope.explicit and not asks_for_injection(pod):
                continue
            results.append(classify_pod(pod, info, index.injectors, index.istiod, options.proxy_version))
            want, key = expected_key(pod, info)
            if want == "sidecar":
                keys_needed.add(key)
    if options.revision:
        keys_needed.add(options.revision)
    return PodVerdicts(results=results, keys_needed=keys_needed, ambient_needed=ambient_needed)


def _injector_name(key: str) -> str:
    return "istio-sidecar-injector" if key == "default" else "istio-sidecar-injector-%s" % key


def check_control_plane(cluster: Cluster, index: Index, pods: PodVerdicts, options: CheckOptions) -> ControlPlane:
    """Stage 3: istiod for every revision in use, the injector webhook for every key asked for
    (its CA bundle, its Service and ready endpoints), and ztunnel when a namespace is ambient."""
    istio_ns = options.istio_namespace
    view = dict(namespace=istio_ns, istiod=sorted(index.istiod.values(), key=lambda d: d["name"]), injectors=[], ztunnel=None)
    issues: List[Issue] = []
    if not index.istiod:
        issues.append(Issue("OKM0001", "deployment/istiod", istio_ns, facts=dict(istio_namespace=istio_ns)))
    revisions_needed = set()
    for key in sorted(pods.keys_needed):
        injector = index.injectors.get(key)
        if injector is None:
            issues.append(Issue("OKM0003", "mutatingwebhookconfiguration/%s" % _injector_name(key),
                                variant="" if key == "default" else "revision", facts=dict(key=key, wanted=describe_key(key))))
            revisions_needed.add(key)
            continue
        revisions_needed.add(injector["revision"])
        entry = dict((k, v) for k, v in injector.items() if not k.startswith("_"))
        entry["key"] = key
        entry["service_endpoints"] = {}
        if not injector["ca_bundle"]:
            issues.append(Issue("OKM0004", "mutatingwebhookconfiguration/%s" % injector["name"],
                                facts=dict(webhooks=", ".join(injector["webhooks_without_ca"] or ["no webhooks"]))))
        for svc_ns, svc_name, _port in injector["_services"]:
            ready = index.endpoint_counts.get((svc_ns, svc_name), 0)
            entry["service_endpoints"]["%s/%s" % (svc_ns, svc_name)] = ready
            facts = dict(service="%s/%s" % (svc_ns, svc_name), namespace=svc_ns, revision=injector["revision"])
            if (svc_ns, svc_name) not in index.services:
                issues.append(Issue("OKM0005", "service/%s" % svc_name, svc_ns, facts=facts))
            elif ready == 0:
                issues.append(Issue("OKM0006", "service/%s" % svc_name, svc_ns, facts=facts))
        view["injectors"].append(entry)
    if not revisions_needed and index.istiod:
        revisions_needed = set(index.istiod)
    for rev in sorted(revisions_needed):
        istiod = index.istiod.get(rev)
        if istiod is None:
            if index.istiod:
                issues.append(Issue("OKM0001", "deployment/%s" % ("istiod" if rev == "default" else "istiod-" + rev), istio_ns,
                                    variant="revision", facts=dict(revision=rev, istio_namespace=istio_ns)))
            continue
        if not istiod["ready"]:
            issues.append(Issue("OKM0002", "deployment/%s" % istiod["name"], istio_ns,
                                facts=dict(istio_namespace=istio_ns, name=istiod["name"],
                                           ready=istiod["ready_replicas"], replicas=istiod["replicas"])))
    if pods.ambient_needed:
        ztunnel = None
        for ds in cluster.daemonsets or []:
            if _meta(ds).get("name") == "ztunnel" and _meta(ds).get("namespace") == istio_ns:
                status = ds.get("status") or {}
                desired = int(status.get("desiredNumberScheduled") or 0)
                ready = int(status.get("numberReady") or 0)
                ztunnel = dict(name="ztunnel", desired=desired, ready=ready, ok=desired > 0 and ready >= desired)
        view["ztunnel"] = ztunnel
        if ztunnel is None:
            issues.append(Issue("OKM0007", "daemonset/ztunnel", istio_ns, facts=dict(istio_namespace=istio_ns)))
        elif not ztunnel["ok"]:
            issues.append(Issue("OKM0007", "daemonset/ztunnel", istio_ns, variant="not_ready",
                                facts=dict(istio_namespace=istio_ns, ready=ztunnel["ready"], desired=ztunnel["desired"])))
    return ControlPlane(view=view, issues=issues)


def _finding(issue: Issue) -> Obj:
    message, remedy = render(issue.code, issue.variant, issue.facts)
    entry = dict(code=issue.code, name=CODES[issue.code].name, severity=CODES[issue.code].severity, object=issue.object,
                 namespace=issue.namespace, message=message, remedy=remedy)
    if issue.pods is not None:
        entry["pods"] = issue.pods
    return entry


def pod_issues(pod_results: List[Obj]) -> List[Issue]:
    """The pods' issues aggregated: one per (code, namespace, workload), and one IST0158 per
    namespace for every workload whose proxy version differs."""
    groups: Dict[Tuple[str, str, str], Obj] = {}
    for res in pod_results:
        for issue in res["issues"]:
            group = groups.setdefault((issue.code, res["namespace"], res["owner"]), dict(variant=issue.variant, details=[], pods=[]))
            text = detail(issue.code, issue.variant, issue.facts)
            if text not in group["details"]:
                group["details"].append(text)
            group["pods"].append(res["name"])
    issues: List[Issue] = []
    skew: Dict[str, List[Tuple[str, Obj]]] = {}
    for (code, namespace, owner), group in groups.items():
        if code == "IST0158":
            skew.setdefault(namespace, []).append((owner, group))
            continue
        count = len(group["pods"])
        facts = dict(owner=owner, what="%d pod%s" % (count, plural(count)), details="; ".join(group["details"]),
                     restart=restart_remedy(namespace, owner), namespace=namespace, first_pod=group["pods"][0])
        issues.append(Issue(code, owner, namespace, group["variant"], facts, group["pods"]))
    for namespace in sorted(skew):
        items = skew[namespace]
        pods_ = [p for _owner, group in items for p in group["pods"]]
        owners = [owner for owner, _group in items]
        facts = dict(count=len(pods_), run=plural(len(pods_), " runs", "s run"),
                     details="; ".join(sorted(set(t for _owner, group in items for t in group["details"]))),
                     owners=", ".join(owners), restarts="; ".join(restart_remedy(namespace, o) for o in owners))
        issues.append(Issue("IST0158", "namespace/%s" % namespace, namespace, facts=facts, pods=pods_))
    return issues


def build_findings(scope: Scope, control_plane: ControlPlane, pods: PodVerdicts) -> List[Obj]:
    """Stage 4: every issue as a finding (code, name, severity, object, namespace, message,
    remedy[, pods]) rendered from CODES: namespaces first, then the control plane, then pods."""
    return [_finding(i) for i in scope.issues + control_plane.issues + pod_issues(pods.results)]


def summarize(scope: Scope, pod_results: List[Obj], findings: List[Obj]) -> Obj:
    """Stage 5: the counts (namespaces, pods, by_status, by_namespace, errors, warnings)."""
    by_status = dict((s, 0) for s in POD_STATUSES)
    by_namespace: Dict[str, Obj] = {}
    for name in scope.names:
        info = scope.infos.get(name)
        if info is not None:
            by_namespace[name] = dict(mode=info["mode"], revision=info["revision"], pods=0, by_status={})
    for res in pod_results:
        by_status[res["status"]] = by_status.get(res["status"], 0) + 1
        entry = by_namespace[res["namespace"]]
        entry["pods"] += 1
        entry["by_status"][res["status"]] = entry["by_status"].get(res["status"], 0) + 1
    return dict(
        namespaces=len(by_namespace),
        pods=len(pod_results),
        by_status=dict((k, v) for k, v in by_status.items() if v),
        by_namespace=by_namespace,
        errors=sum(1 for f in findings if f["severity"] == ERROR),
        warnings=sum(1 for f in findings if f["severity"] == WARNING),
    )


# --------------------------------------------------------------------------------------
# verdicts over a result
# --------------------------------------------------------------------------------------
def verdict(result: Obj, fail_on: str) -> bool:
    """True when the result fails for ``fail_on`` (error | warning | never)."""
    summary = result["summary"]
    if fail_on == "never":
        return False
    if fail_on == "warning":
        return bool(summary["errors"] or summary["warnings"])
    return bool(summary["errors"])


def converged(result: Obj, fail_on: str) -> bool:
    """True when the state has settled: no pod is still not ready, and the check passes at the
    fail_on threshold (``never`` uses the ``error`` threshold)."""
    if result["summary"]["by_status"].get("not_ready"):
        return False
    return not verdict(result, "error" if fail_on == "never" else fail_on)

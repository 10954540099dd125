# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The injection check's service: options, what to read, the pipeline, and the wait loop.

    validate_options  the module's options checked (InputError names what to fix)
    resource_plan     the collections to LIST (and WATCH) through ``_k8s.Cache``
    check             the pipeline over API objects (see ``_injection_stages.py``):
                      index -> scope -> classify pods -> control plane -> findings -> summary
    run               LIST, check, and with ``wait`` WATCH and check again until converged

The building blocks live beside it: ``_injection_objects.py`` (reading Istio's objects,
classifying one pod), ``_injection_codes.py`` (the one table of codes and texts),
``_injection_stages.py`` (the stages) and ``_injection_report.py`` (report_lines).  Their
public names are re-exported here.  No Ansible and no kubernetes imports.

This is a private module_utils file: it may change at any time.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional

from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError
from ansible_collections.okemesh.istio.plugins.module_utils._injection_codes import (  # re-exported (see __all__)
    CODES,
    CONTROL_PLANE,
    ERROR,
    MARK,
    OK,
    WARNING,
)
from ansible_collections.okemesh.istio.plugins.module_utils._injection_objects import (  # re-exported (see __all__)
    MODE_AMBIENT,
    MODE_DISABLED,
    MODE_NONE,
    MODE_REVISION,
    MODE_SIDECAR,
    POD_STATUSES,
    classify_pod,
    expected_key,
    image_version,
    injectors,
    istiod_deployments,
    namespace_mode,
    normalize_version,
    owner_of,
    ready_endpoint_counts,
)
from ansible_collections.okemesh.istio.plugins.module_utils._injection_report import report_lines  # re-exported (see __all__)
from ansible_collections.okemesh.istio.plugins.module_utils._injection_stages import (  # re-exported (see __all__)
    CheckOptions,
    Cluster,
    build_findings,
    check_control_plane,
    classify_pods,
    converged,
    index_control_plane,
    select_scope,
    summarize,
    verdict,
)

__all__ = [  # the service, and the building blocks re-exported for callers and tests
    "CODES", "CONTROL_PLANE", "ERROR", "MARK", "OK", "WARNING",
    "MODE_AMBIENT", "MODE_DISABLED", "MODE_NONE", "MODE_REVISION", "MODE_SIDECAR", "POD_STATUSES",
    "classify_pod", "expected_key", "image_version", "injectors", "istiod_deployments", "namespace_mode",
    "normalize_version", "owner_of", "ready_endpoint_counts", "report_lines",
    "CheckOptions", "Cluster", "build_findings", "check_control_plane", "classify_pods", "converged",
    "index_control_plane", "select_scope", "summarize", "verdict",
    "MAX_WAIT", "CHECK_ONCE_TIMEOUT", "CONTROL_PLANE_CODES", "CONTROL_PLANE_KEYS",
    "validate_options", "time_budget", "resource_plan", "check", "run",
]

Obj = Dict[str, Any]

MAX_WAIT = 86400  # a day: longer is a mistake (and past what a thread timeout accepts on some platforms)
CHECK_ONCE_TIMEOUT = 30  # with wait=0, reading the cluster (retries included) is bounded by this many seconds

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


# --------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------
def _namespace_name(option: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.match(value):
        raise InputError(
            "%s: %r is not a namespace name (lower-case letters, digits and '-', at most 63 characters, "
            "starting and ending with a letter or digit)" % (option, value)
        )
    return value


def validate_options(params: Obj) -> Obj:
    """Check the module's options before any API call; returns them with defaults applied.

    Raises InputError naming the option and what to fix.
    """
    wait = params.get("wait") or 0
    if isinstance(wait, bool) or not isinstance(wait, int) or not 0 <= wait <= MAX_WAIT:
        raise InputError("wait must be 0 (check once) or a number of seconds up to %d (a day), got %r" % (MAX_WAIT, wait))
    namespaces = params.get("namespaces")
    if namespaces is not None:
        if len(namespaces) == 0:
            raise InputError("namespaces is an empty list: name at least one namespace, or omit the option to check "
                             "every namespace that asks for injection")
        namespaces = [_namespace_name("namespaces", n) for n in namespaces]
    istio_namespace = params.get("istio_namespace")
    istio_namespace = "istio-system" if istio_namespace is None else _namespace_name("istio_namespace", istio_namespace)
    revision = params.get("revision")
    if revision is not None and (len(revision) > 63 or not _LABEL_VALUE.match(revision)):
        raise InputError("revision: %r is not a revision or tag name (a label value: letters, digits, '-', '_' and '.', "
                         "at most 63 characters); omit the option to accept any revision" % (revision,))
    proxy_version = params.get("proxy_version")
    if proxy_version is not None and (len(proxy_version) > 128 or not _PRINTABLE.match(proxy_version)):
        raise InputError("proxy_version: %r is not a version (for example 1.28.0); omit the option to compare with istiod's"
                         % (proxy_version,))
    label_selector = params.get("label_selector")
    if label_selector is not None and (not label_selector.strip() or len(label_selector) > 4096
                                       or any(ord(c) < 32 for c in label_selector)):
        raise InputError("label_selector: %r is not a label selector (for example app=reviews); omit the option to check "
                         "every pod" % (label_selector,))
    options = dict(params)
    options.update(wait=wait, namespaces=namespaces, istio_namespace=istio_namespace)
    return options


def time_budget(options: Obj) -> float:
    """Seconds the whole run may take, API retries included: ``wait``, or CHECK_ONCE_TIMEOUT for wait=0."""
    return float(options.get("wait") or 0) or float(CHECK_ONCE_TIMEOUT)


# --------------------------------------------------------------------------------------
# what to read
# --------------------------------------------------------------------------------------
CONTROL_PLANE_KEYS = ("webhooks", "deployments", "daemonsets", "services", "endpointslices")
CONTROL_PLANE_CODES = tuple(code for code, entry in CODES.items() if entry.section == CONTROL_PLANE)


def resource_plan(namespaces: Optional[List[str]] = None, label_selector: Optional[str] = None,
                  istio_namespace: str = "istio-system") -> List[Obj]:
    """The collections to LIST (and maybe WATCH): dicts for ``_k8s.Resource(**spec)``.

    Pods: one LIST per requested namespace, or one cluster-wide LIST when the namespaces are
    found from their labels.  Everything else is one LIST each.
    """
    plan = [dict(key="namespaces", path="/api/v1/namespaces")]
    if namespaces:
        for name in dict.fromkeys(namespaces):
            plan.append(dict(key="pods", path="/api/v1/namespaces/%s/pods" % name, label_selector=label_selector))
    else:
        plan.append(dict(key="pods", path="/api/v1/pods", label_selector=label_selector))
    ns = istio_namespace
    plan += [
        dict(key="webhooks", path="/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"),
        dict(key="deployments", path="/apis/apps/v1/namespaces/%s/deployments" % ns),
        dict(key="daemonsets", path="/apis/apps/v1/namespaces/%s/daemonsets" % ns, optional=True),
        dict(key="services", path="/api/v1/namespaces/%s/services" % ns),
        dict(key="endpointslices", path="/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices" % ns,
             fallback=dict(key="endpoints", path="/api/v1/namespaces/%s/endpoints" % ns, optional=True)),
    ]
    return plan


# --------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------
def check(cluster: Cluster, options: Optional[CheckOptions] = None) -> Obj:
    """Run every stage over API objects; returns the result dict (see the module's RETURN):
    summary, namespaces, control_plane, pods, findings."""
    options = options or CheckOptions()
    index = index_control_plane(cluster, options.istio_namespace)
    scope = select_scope(cluster, options, index)
    pods = classify_pods(scope, index, options)
    control_plane = check_control_plane(cluster, index, pods, options)
    findings = build_findings(scope, control_plane, pods)
    summary = summarize(scope, pods.results, findings)
    for res in pods.results:
        res.pop("issues", None)
    return dict(
        summary=summary,
        namespaces=[dict(scope.infos[n]) for n in scope.names if n in scope.infos],
        control_plane=control_plane.view,
        pods=pods.results,
        findings=findings,
    )


def _evaluate(cache: Any, options: Obj) -> Obj:
    cluster = Cluster(
        namespaces=cache.get("namespaces"),
        pods=cache.get("pods"),
        webhook_configurations=cache.get("webhooks"),
        deployments=cache.get("deployments"),
        services=cache.get("services"),
        endpoint_slices=cache.get("endpointslices"),
        endpoints=cache.get("endpoints"),
        daemonsets=cache.get("daemonsets"),
    )
    return check(cluster, CheckOptions(
        namespaces=options.get("namespaces"),
        istio_namespace=options.get("istio_namespace") or "istio-system",
        revision=options.get("revision"),
        proxy_version=options.get("proxy_version"),
    ))


def run(cache: Any, options: Obj, clock: Callable[[], float], budget: Optional[float] = None) -> Obj:
    """LIST everything, check; with ``wait`` > 0 watch and check again until the result
    converges (passes at the fail_on threshold) or the time is up.

    ``cache`` is a ``_k8s.Cache`` (duck-typed: list_all, get, start_watches, wait_for_changes,
    close); ``clock`` returns seconds (time.time); ``budget`` is the seconds left of the run's
    time (default ``wait``; the module passes what its deadline has left).  Returns the result
    dict with summary, namespaces, control_plane, pods, findings, report_lines, converged,
    failed, elapsed and ``stats`` (LIST/WATCH counts, API retries).
    """
    fail_on = options.get("fail_on") or "error"
    wait = float(options.get("wait") or 0)
    start = clock()
    deadline = start + (wait if budget is None else min(wait, budget))
    cache.list_all()
    result = _evaluate(cache, options)
    rounds = 1
    if wait > 0 and not converged(result, fail_on):
        watching = set(["pods", "namespaces"])
        try:
            while True:
                if any(f["code"] in CONTROL_PLANE_CODES for f in result["findings"]):
                    watching.update(CONTROL_PLANE_KEYS + ("endpoints",))
                cache.start_watches(watching, deadline)
                if not cache.wait_for_changes(deadline):
                    break
                result = _evaluate(cache, options)
                rounds += 1
                if converged(result, fail_on):
                    break
        finally:
            cache.close()
    result["converged"] = converged(result, fail_on)
    result["failed"] = verdict(result, fail_on)
    result["elapsed"] = round(clock() - start, 3)
    result["stats"] = dict(
        evaluations=rounds,
        lists=sum(getattr(r, "lists", 0) for r in getattr(cache, "resources", [])),
        watch_events=getattr(cache, "events_seen", 0),
        relists=getattr(cache, "relists", 0),
        watch_restarts=getattr(cache, "watch_restarts", 0),
        api_retries=getattr(cache, "api_retries", 0),
        api_retry_reasons=dict(getattr(getattr(getattr(cache, "kube", None), "stats", None), "reasons", None) or {}),
    )
    result["report_lines"] = report_lines(result, fail_on)
    details = options.get("pod_details") or "all"
    if details == "problems":
        result["pods"] = [p for p in result["pods"] if p["severity"] != OK]
    elif details == "none":
        result["pods"] = []
    return result

# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one table of injection_check's finding codes, and the texts of the passing checks.

Every finding is rendered from ``CODES``: its name, severity, report section, message and
remedy (``str.format`` templates over the facts a stage records).  A code may have variants
(IST0103 "restart needed" and "no injector"); each variant's texts sit in the same row.
``report_lines`` (``_injection_report.py``) takes every text it prints from here.

No Ansible and no kubernetes imports.  This is a private module_utils file: it may change at
any time.
"""

from __future__ import annotations

from collections import namedtuple

ERROR = "error"
WARNING = "warning"
OK = "ok"

MARK = {OK: "\u221a", WARNING: "\u203c", ERROR: "\u00d7"}  # the marks `linkerd check` prints

# Report sections a finding is printed in.
CONTROL_PLANE = "control_plane"  # under "control plane (<istio namespace>)"
NAMESPACE = "namespace"  # under "namespaces", on the namespace's own line ("<ns>: message")
SCOPE = "scope"  # under "namespaces", after the namespace lines (cluster-wide or unknown namespaces)
PODS = "pods"  # under "pods in <ns>" (aggregated per workload, lists its pods)

# message / remedy: templates for the finding; detail: the one-pod text a pod finding
# aggregates (as {details}); replaces_pass: the finding replaces the namespace's passing line.
Text = namedtuple("Text", "message remedy detail")
Text.__new__.__defaults__ = (None, None)
Code = namedtuple("Code", "name severity section texts replaces_pass")
Code.__new__.__defaults__ = (False,)

_RESTART = "{restart}"

# Finding codes.  ISTxxxx are istioctl analyze's codes (same meaning); OKMxxxx are ours.
CODES = {
    # ---- namespaces --------------------------------------------------------------------
    "IST0102": Code("NamespaceNotInjected", WARNING, NAMESPACE, {
        "": Text("namespace is not enabled for Istio injection ({mode})",
                 "kubectl label namespace {namespace} istio-injection=enabled"),
    }, replaces_pass=True),
    "IST0123": Code("NamespaceMultipleInjectionLabels", WARNING, NAMESPACE, {
        "": Text("{conflict}", "kubectl label namespace {namespace} istio.io/rev-"),
    }),
    "OKM0012": Code("NamespaceRevisionUnexpected", WARNING, NAMESPACE, {
        "": Text("namespace asks for revision {asked}, expected {expected}",
                 "kubectl label namespace {namespace} istio.io/rev={expected} --overwrite (and drop istio-injection)"),
    }),
    "OKM0013": Code("NamespaceAmbientAndSidecar", WARNING, NAMESPACE, {
        "": Text("namespace asks for both ambient and sidecar injection; sidecar pods bypass ztunnel",
                 "remove one of istio.io/dataplane-mode or the injection label on namespace {namespace}"),
    }),
    "OKM0010": Code("NoNamespaceAsksForInjection", WARNING, SCOPE, {
        "": Text("no namespace asks for injection",
                 "kubectl label namespace <ns> istio-injection=enabled (or istio.io/rev=<rev>)"),
    }),
    "OKM0011": Code("NamespaceNotFound", ERROR, SCOPE, {
        "": Text("namespace {namespace} does not exist", "create it or fix the namespaces option"),
    }),
    # ---- control plane -----------------------------------------------------------------
    "OKM0001": Code("IstiodMissing", ERROR, CONTROL_PLANE, {
        "": Text("no istiod Deployment in {istio_namespace}",
                 "install the istiod chart (helm install istiod istio/istiod -n {istio_namespace})"),
        "revision": Text("no istiod Deployment for revision {revision} in {istio_namespace}",
                         "install the istiod chart with revision={revision}"),
    }),
    "OKM0002": Code("IstiodNotReady", ERROR, CONTROL_PLANE, {
        "": Text("istiod is not ready ({istio_namespace}, {ready}/{replicas})",
                 "kubectl -n {istio_namespace} describe deployment {name}"),
    }),
    "OKM0003": Code("InjectorWebhookMissing", ERROR, CONTROL_PLANE, {
        "": Text("no injector webhook serves {wanted}",
                 "install istiod without a revision, or set a default tag (istioctl tag set default --revision <rev>)"),
        "revision": Text("no injector webhook serves {wanted}",
                         "install istiod for this revision or create the tag (istioctl tag set {key} --revision <rev>)"),
    }),
    "OKM0004": Code("InjectorWebhookWithoutCABundle", ERROR, CONTROL_PLANE, {
        "": Text("injector webhook has no CA bundle ({webhooks})",
                 "check istiod logs: istiod patches the caBundle when it starts"),
    }),
    "OKM0005": Code("InjectorServiceMissing", ERROR, CONTROL_PLANE, {
        "": Text("injector service {service} does not exist", "re-install the istiod chart for revision {revision}"),
    }),
    "OKM0006": Code("InjectorServiceWithoutReadyEndpoints", ERROR, CONTROL_PLANE, {
        "": Text("injector service {service} has no ready endpoints",
                 "kubectl -n {namespace} get pods -l app=istiod; kubectl -n {namespace} describe deployment istiod"),
    }),
    "OKM0007": Code("ZtunnelNotReady", ERROR, CONTROL_PLANE, {
        "": Text("ztunnel is missing in {istio_namespace}", "install the cni and ztunnel charts (profile=ambient)"),
        "not_ready": Text("ztunnel is not ready ({ready}/{desired}) in {istio_namespace}",
                          "install the cni and ztunnel charts (profile=ambient)"),
    }),
    # ---- pods (aggregated per workload: {owner}, {what} = "N pod(s)", {details}, {restart}) ----
    "IST0103": Code("PodMissingProxy", ERROR, PODS, {
        "restart": Text("{owner}: {what} without istio-proxy, restart needed", _RESTART,
                        "no istio-proxy, restart needed"),
        "no_injector": Text("{owner}: {what} without istio-proxy ({details})", "fix the injector webhook, then {restart}",
                            "no istio-proxy; no injector for {wanted}"),
    }),
    "OKM0020": Code("ProxyNotReady", ERROR, PODS, {
        "": Text("{owner}: istio-proxy not ready in {what}", "kubectl -n {namespace} logs {first_pod} -c istio-proxy",
                 "istio-proxy not ready"),
    }),
    "OKM0021": Code("ApplicationNotReady", WARNING, PODS, {
        "": Text("{owner}: application not ready in {what}", "kubectl -n {namespace} describe pod {first_pod}",
                 "application container(s) not ready"),
        "not_running": Text("{owner}: application not ready in {what}", "kubectl -n {namespace} describe pod {first_pod}",
                            "pod not running"),
    }),
    "OKM0022": Code("PodInjectedByOtherRevision", WARNING, PODS, {
        "": Text("{owner}: {what} {details}", _RESTART, "injected by revision {injected}, namespace asks for {asked}"),
    }),
    "OKM0023": Code("AmbientPodNotCaptured", ERROR, PODS, {
        "": Text("{owner}: {what} not captured by ambient", "check istio-cni and ztunnel on the pod's node; then {restart}",
                 "not captured by ambient"),
    }),
    # one finding per namespace for every workload whose proxies differ ({count}, {run}, {details}, {owners}, {restarts})
    "IST0158": Code("PodsIstioProxyImageMismatchInNamespace", WARNING, PODS, {
        "": Text("{count} pod{run} a proxy that differs from the control plane ({details}): {owners}", "{restarts}",
                 "proxy {proxy_version}, control plane {control_version}"),
    }),
}

# Passing checks and the other lines of the report.
PASSED = {
    "istiod_ready": "{name} is ready ({namespace}, {ready}/{replicas}{version})",
    "injector_present": "injector webhook {name} is present ({label})",
    "injector_ca_bundle": "injector webhook {name} has a CA bundle",
    "injector_service": "injector service {service} has ready endpoints ({count})",
    "ztunnel_ready": "ztunnel is ready ({namespace}, {ready}/{desired})",
    "no_pods": "no pods to check",
    "meshed": "{count} pod{carry} a ready istio-proxy ({kinds}{gateways})",
    "ambient": "{count} pod{s} captured by ambient",
    "out_of_mesh": "{count} pod{s} out of the mesh on purpose ({reasons})",
    "not_injected": "{count} pod{s} not injected: the namespace does not ask for it",
}

# The namespace line under "namespaces", per namespace mode.
NAMESPACE_LINE = {
    "sidecar": "{name}: sidecar injection, revision {revision} ({labels})",
    "revision": "{name}: sidecar injection, revision {revision} ({labels})",
    "ambient": "{name}: ambient ({labels})",
    "disabled": "{name}: injection disabled ({labels})",
    "none": "{name}: no injection label; only pods that ask are injected",
}

HEADERS = {
    CONTROL_PLANE: "control plane ({namespace})",
    NAMESPACE: "namespaces",
    PODS: "pods in {namespace}",
}

# How to restart a workload's pods (the {restart} of pod findings), per owner kind.
_ROLLOUT = "kubectl rollout restart {kind}/{name} -n {namespace}"
RESTART = {
    "deployment": _ROLLOUT,
    "statefulset": _ROLLOUT,
    "daemonset": _ROLLOUT,
    "replicaset": "kubectl delete pod -n {namespace} <pods of replicaset {name}> (the ReplicaSet recreates them)",
    "job": "delete and re-create job/{name} in {namespace}",
    "": "kubectl delete pod {name} -n {namespace}, then create it again",  # a bare pod, or an unknown owner
}

SUMMARY_LINE = ("Status check results are {mark} ({errors} error{errors_s}, {warnings} warning{warnings_s}; "
                "{pods} pods in {namespaces} namespaces: {statuses}){failed}")
FAILED_SUFFIX = " - failed (fail_on={fail_on})"
REMEDY_LINE = "    remedy: {remedy}"


def code_name(code):
    """The istioctl-style name of a code (``IST0103`` -> ``PodMissingProxy``)."""
    return CODES[code].name


def severity(code):
    return CODES[code].severity


def text(code, variant=""):
    return CODES[code].texts[variant]


def render(code, variant, facts):
    """(message, remedy) of a finding from its code, variant and facts."""
    entry = text(code, variant)
    remedy = entry.remedy.format(**facts) if entry.remedy else None
    return entry.message.format(**facts), remedy


def detail(code, variant, facts):
    """The one-pod text of a pod finding (what a workload's finding aggregates)."""
    return text(code, variant).detail.format(**facts)


def plural(count, one="", many="s"):
    return one if count == 1 else many


def restart_remedy(namespace, owner):
    """The command that recreates an owner's pods (``deployment/x`` -> ``kubectl rollout restart ...``)."""
    kind, name = owner.split("/", 1)
    return RESTART.get(kind, RESTART[""]).format(kind=kind, name=name, namespace=namespace)

# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The human-readable report of the injection check, in the style of ``linkerd check``.

Every text comes from ``_injection_codes`` (CODES for findings and their section, PASSED and
NAMESPACE_LINE for passing checks); this file only decides which lines to print, in which
order.  No Ansible and no kubernetes imports.

This is a private module_utils file: it may change at any time.
"""

from __future__ import annotations

from typing import Any, Dict, List

from ansible_collections.okemesh.istio.plugins.module_utils._injection_codes import (
    CODES,
    CONTROL_PLANE,
    ERROR,
    FAILED_SUFFIX,
    HEADERS,
    MARK,
    NAMESPACE,
    NAMESPACE_LINE,
    OK,
    PASSED,
    PODS,
    REMEDY_LINE,
    SCOPE,
    SUMMARY_LINE,
    WARNING,
    plural,
)
from ansible_collections.okemesh.istio.plugins.module_utils._injection_objects import MODE_NONE
from ansible_collections.okemesh.istio.plugins.module_utils._injection_stages import verdict

Obj = Dict[str, Any]


class _Lines(list):
    """The report being built: headers, marked lines, remedies."""

    def header(self, title: str) -> None:
        if self:
            self.append("")
        self.append(title)
        self.append("-" * len(title))

    def check(self, severity: str, text: str, remedy: str = None) -> None:
        self.append("%s %s" % (MARK[severity], text))
        if remedy and severity != OK:
            self.append(REMEDY_LINE.format(remedy=remedy))

    def passed(self, key: str, **facts: Any) -> None:
        self.check(OK, PASSED[key].format(**facts))

    def finding(self, f: Obj, prefix: str = "") -> None:
        self.check(f["severity"], "%s%s [%s]" % (prefix, f["message"], f["code"]), f["remedy"])


def _section(finding: Obj) -> str:
    return CODES[finding["code"]].section


def _control_plane(lines: _Lines, result: Obj) -> None:
    cp = result["control_plane"]
    lines.header(HEADERS[CONTROL_PLANE].format(namespace=cp["namespace"]))
    for istiod in cp["istiod"]:
        if istiod["ready"]:
            lines.passed("istiod_ready", name=istiod["name"], namespace=cp["namespace"], ready=istiod["ready_replicas"],
                         replicas=istiod["replicas"], version=(", version %s" % istiod["version"]) if istiod["version"] else "")
    seen_services = set()
    for injector in cp["injectors"]:
        label = "revision %s" % injector["revision"] + (", tag %s" % injector["tag"] if injector["tag"] else "")
        lines.passed("injector_present", name=injector["name"], label=label)
        if injector["ca_bundle"]:
            lines.passed("injector_ca_bundle", name=injector["name"])
        for svc, count in sorted(injector["service_endpoints"].items()):
            if count and svc not in seen_services:
                seen_services.add(svc)
                lines.passed("injector_service", service=svc, count=count)
    if cp.get("ztunnel") and cp["ztunnel"]["ok"]:
        lines.passed("ztunnel_ready", namespace=cp["namespace"], ready=cp["ztunnel"]["ready"], desired=cp["ztunnel"]["desired"])
    for f in result["findings"]:
        if _section(f) == CONTROL_PLANE:
            lines.finding(f)


def _namespaces(lines: _Lines, result: Obj) -> None:
    lines.header(HEADERS[NAMESPACE])
    for info in result["namespaces"]:
        obj = "namespace/%s" % info["name"]
        problems = [f for f in result["findings"] if f["object"] == obj and _section(f) == NAMESPACE]
        labels = ", ".join("%s=%s" % kv for kv in sorted(info["labels"].items())) or "no injection label"
        if not any(CODES[f["code"]].replaces_pass for f in problems):
            lines.check(OK, NAMESPACE_LINE[info["mode"]].format(name=info["name"], revision=info["revision"], labels=labels))
        for f in problems:
            lines.finding(f, prefix="%s: " % info["name"])
    for f in result["findings"]:
        if _section(f) == SCOPE:
            lines.finding(f)


def _pods(lines: _Lines, result: Obj, info: Obj, entries: List[Obj]) -> None:
    name = info["name"]
    lines.header(HEADERS[PODS].format(namespace=name))
    counts = result["summary"]["by_namespace"][name]["by_status"]
    meshed = counts.get("injected", 0) + counts.get("gateway", 0)
    if not entries:
        lines.passed("no_pods")
    if meshed:
        kinds: Dict[str, int] = {}
        for res in entries:
            if res["status"] in ("injected", "gateway"):
                kinds[res["proxy"]] = kinds.get(res["proxy"], 0) + 1
        lines.passed("meshed", count=meshed, carry=plural(meshed, " carries", "s carry"),
                     kinds=", ".join("%s %d" % kv for kv in sorted(kinds.items())),
                     gateways=(", %d gateway" % counts["gateway"]) if counts.get("gateway") else "")
    if counts.get("ambient"):
        lines.passed("ambient", count=counts["ambient"], s=plural(counts["ambient"]))
    quiet = [r for r in entries if r["status"] in ("excluded", "completed")]
    if quiet:
        reasons: Dict[str, int] = {}
        for r in quiet:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        lines.passed("out_of_mesh", count=len(quiet), s=plural(len(quiet)),
                     reasons="; ".join("%s: %d" % kv for kv in sorted(reasons.items())))
    if counts.get("not_injected"):
        n = counts["not_injected"]
        severity = WARNING if info.get("explicit") and info["mode"] == MODE_NONE else OK
        lines.check(severity, PASSED["not_injected"].format(count=n, s=plural(n)))
    for f in result["findings"]:
        if f["namespace"] == name and _section(f) == PODS:
            lines.finding(f)


def report_lines(result: Obj, fail_on: str = "error") -> List[str]:
    """One line per check with a mark (√ pass, ‼ warning, × error), grouped, then a summary line."""
    lines = _Lines()
    _control_plane(lines, result)
    _namespaces(lines, result)
    pods_by_ns: Dict[str, List[Obj]] = {}
    for res in result["pods"]:
        pods_by_ns.setdefault(res["namespace"], []).append(res)
    for info in result["namespaces"]:
        _pods(lines, result, info, pods_by_ns.get(info["name"], []))
    summary = result["summary"]
    overall = ERROR if summary["errors"] else (WARNING if summary["warnings"] else OK)
    lines.append("")
    lines.append(SUMMARY_LINE.format(
        mark=MARK[overall], errors=summary["errors"], errors_s=plural(summary["errors"]),
        warnings=summary["warnings"], warnings_s=plural(summary["warnings"]), pods=summary["pods"],
        namespaces=summary["namespaces"],
        statuses=", ".join("%s %d" % kv for kv in sorted(summary["by_status"].items())) or "no pods",
        failed=FAILED_SUFFIX.format(fail_on=fail_on) if verdict(result, fail_on) else ""))
    return list(lines)

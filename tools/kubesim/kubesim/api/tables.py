"""Server-side Table output (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``).

Columns and cell formats follow what ``kubectl get`` prints against a real API server for
pods, deployments, replicasets, statefulsets, daemonsets, services, namespaces, nodes,
configmaps, secrets, jobs and CRD kinds (additionalPrinterColumns); other kinds get NAME/AGE.
"""

from __future__ import annotations

import calendar
import time
from typing import Any


def _col(name: str, typ: str = "string", fmt: str = "", priority: int = 0, desc: str = "") -> dict[str, Any]:
    return {"name": name, "type": typ, "format": fmt, "description": desc or name, "priority": priority}


NAME = _col("Name", fmt="name", desc="Name must be unique within a namespace.")
AGE = _col("Age", desc="CreationTimestamp is a timestamp representing the server time when this object was created.")


def age(ts: str | None, now: float | None = None) -> str:
    if not ts:
        return "<unknown>"
    try:
        t = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<unknown>"
    return human_duration(max(0.0, (now or time.time()) - t))


def human_duration(seconds: float) -> str:
    """The short duration format kubectl uses (duration.HumanDuration)."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        y = h // (24 * 365)
        d = (h // 24) % 365
        return f"{y}y{d}d" if d else f"{y}y"
    return f"{h // (24 * 365)}y"


def pod_row(pod: dict[str, Any]) -> tuple[list[Any], dict]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    md = pod.get("metadata") or {}
    containers = spec.get("containers") or []
    init_specs = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    total = len(containers) + len(sidecars)
    ready = 0
    restarts = 0
    reason = status.get("reason") or status.get("phase") or "Pending"
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        if cs.get("name") in sidecars:
            if cs.get("ready"):
                ready += 1
            if cs.get("started") or "running" in state:
                continue
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if term is not None:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif waiting and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            state = cs.get("state") or {}
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = f"ExitCode:{term.get('exitCode')}"
            elif cs.get("ready") and "running" in state:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            reason = "Running" if conds.get("Ready") == "True" else "NotReady"
    if md.get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    cells = [md.get("name"), f"{ready}/{total}", reason, restarts, age(md.get("creationTimestamp")),
             status.get("podIP") or "<none>", spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
             f"{len(gates)}" if gates else "<none>"]
    return cells, {}


POD_COLS = [NAME, _col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
            _col("Status", desc="The aggregate status of the containers in this pod."),
            _col("Restarts", "string", desc="The number of times the containers in this pod have been restarted."),
            AGE, _col("IP", priority=1), _col("Node", priority=1), _col("Nominated Node", priority=1), _col("Readiness Gates", priority=1)]


def _svc_ports(spec: dict) -> str:
    out = []
    for p in spec.get("ports") or []:
        s = str(p.get("port"))
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol') or 'TCP'}")
    return ",".join(out) or "<none>"


def _svc_external(svc: dict) -> str:
    spec = svc.get("spec") or {}
    typ = spec.get("type") or "ClusterIP"
    ext = list(spec.get("externalIPs") or [])
    if typ == "LoadBalancer":
        lb = [i.get("ip") or i.get("hostname") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
        ips = [x for x in lb + ext if x]
        return ",".join(ips) if ips else "<pending>"
    if typ == "ExternalName":
        return spec.get("externalName") or "<none>"
    return ",".join(ext) if ext else "<none>"


def _selector(sel: dict | None) -> str:
    if not sel:
        return "<none>"
    if "matchLabels" in sel or "matchExpressions" in sel:
        sel = sel.get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>"


def _images(obj: dict) -> tuple[str, str]:
    cs = ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _jsonpath(obj: Any, path: str) -> Any:
    """Tiny subset of JSONPath for additionalPrinterColumns: .a.b, .a[0].b, .a['x.y']."""
    import re

    cur = obj
    for m in re.finditer(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]", path):
        if cur is None:
            return None
        if m[1] is not None or m[3] is not None:
            cur = cur.get(m[1] or m[3]) if isinstance(cur, dict) else None
        else:
            idx = int(m[2])
            cur = cur[idx] if isinstance(cur, list) and idx < len(cur) else None
    return cur


def columns_and_row(key: str, obj: dict, printer_columns: list[dict] | None = None) -> tuple[list[dict], list[Any]]:
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name = md.get("name")
    a = age(md.get("creationTimestamp"))
    if key == "pods":
        return POD_COLS, pod_row(obj)[0]
    if key == "services":
        return ([NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), AGE, _col("Selector", priority=1)],
                [name, spec.get("type") or "ClusterIP", spec.get("clusterIP") or "<none>", _svc_external(obj), _svc_ports(spec), a,
                 _selector(spec.get("selector"))])
    if key == "namespaces":
        return [NAME, _col("Status"), AGE], [name, status.get("phase") or "Active", a]
    if key == "deployments.apps":
        c, i = _images(obj)
        return ([NAME, _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), AGE,
                 _col("Containers", priority=1), _col("Images", priority=1), _col("Selector", priority=1)],
                [name, f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", status.get("updatedReplicas", 0),
                 status.get("availableReplicas", 0), a, c, i, _selector(spec.get("selector"))])
    if key == "replicasets.apps":
        c, i = _images(obj)
        return ([NAME, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"), AGE,
                 _col("Containers", priority=1), _col("Images", priority=1), _col("Selector", priority=1)],
                [name, spec.get("replicas", 1), status.get("replicas", 0), status.get("readyReplicas", 0), a, c, i, _selector(spec.get("selector"))])
    if key == "statefulsets.apps":
        c, i = _images(obj)
        return ([NAME, _col("Ready"), AGE, _col("Containers", priority=1), _col("Images", priority=1)],
                [name, f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", a, c, i])
    if key == "daemonsets.apps":
        ns_sel = (((spec.get("template") or {}).get("spec") or {}).get("nodeSelector")) or {}
        return ([NAME, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"), _col("Up-to-date", "integer"),
                 _col("Available", "integer"), _col("Node Selector"), AGE],
                [name, status.get("desiredNumberScheduled", 0), status.get("currentNumberScheduled", 0), status.get("numberReady", 0),
                 status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0), _selector(ns_sel), a])
    if key == "jobs.batch":
        comp = spec.get("completions", 1)
        st = "Complete" if status.get("succeeded", 0) >= comp else ("Failed" if status.get("failed") else "Running")
        return ([NAME, _col("Status"), _col("Completions"), _col("Duration"), AGE],
                [name, st, f"{status.get('succeeded', 0)}/{comp}", "", a])
    if key == "configmaps":
        return [NAME, _col("Data", "integer"), AGE], [name, len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), a]
    if key == "secrets":
        return [NAME, _col("Type"), _col("Data", "integer"), AGE], [name, obj.get("type") or "Opaque", len(obj.get("data") or {}), a]
    if key == "nodes":
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        roles = ",".join(sorted(k.split("/", 1)[1] for k in (md.get("labels") or {}) if k.startswith("node-role.kubernetes.io/"))) or "<none>"
        return ([NAME, _col("Status"), _col("Roles"), AGE, _col("Version")],
                [name, "Ready" if conds.get("Ready") == "True" else "NotReady", roles, a,
                 ((status.get("nodeInfo") or {}).get("kubeletVersion")) or ""])
    if printer_columns:
        cols = [NAME]
        row: list[Any] = [name]
        for pc in printer_columns:
            cols.append(_col(pc.get("name", ""), pc.get("type", "string"), pc.get("format", ""), int(pc.get("priority", 0)),
                             pc.get("description", "")))
            val = _jsonpath(obj, pc.get("jsonPath", ""))
            if pc.get("type") == "date" and isinstance(val, str):
                val = age(val)
            row.append(val)
        return cols, row
    return [NAME, AGE], [name, a]


def partial(obj: dict) -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def table(key: str, objs: list[dict], include: str = "Metadata", printer_columns: list[dict] | None = None,
          list_meta: dict | None = None) -> dict:
    cols = None
    rows = []
    for o in objs:
        c, cells = columns_and_row(key, o, printer_columns)
        cols = cols or c
        row: dict[str, Any] = {"cells": cells}
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = partial(o)
        rows.append(row)
    if cols is None:
        cols = columns_and_row(key, {"metadata": {}}, printer_columns)[0]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {}, "columnDefinitions": cols, "rows": rows}

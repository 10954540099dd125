"""The Deployment controller: ReplicaSets per template hash, RollingUpdate/Recreate rollouts, status and conditions."""

from __future__ import annotations

import calendar
import json
import time
from typing import Any

from .common import (
    labels_of,
    now,
    owned_by,
    owner_ref,
    resolve_int_or_percent,
    self_fanout,
    set_condition,
    template_hash,
    write_status,
)
from .replicaset import _rs_counts
from .runtime import (
    DEPLOYMENTS,
    REPLICASETS,
    Runtime,
    meta,
)


def reconcile_deployment(rt: Runtime, ns: str | None, name: str) -> None:
    d = rt.cache.get(DEPLOYMENTS, ns, name)
    if d is None or meta(d).get("deletionTimestamp"):
        return
    spec = d.get("spec") or {}
    want = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    template = spec.get("template") or {}
    strategy = (spec.get("strategy") or {}).get("type") or "RollingUpdate"
    h = template_hash(template)
    rss = owned_by(rt, d, REPLICASETS)
    new = next((r for r in rss if labels_of(r).get("pod-template-hash") == h), None)
    olds = [r for r in rss if r is not new]
    revisions = [int((meta(r).get("annotations") or {}).get("deployment.kubernetes.io/revision") or 0) for r in rss]
    max_rev = max(revisions, default=0)
    created_now = False
    old_pods = sum(_rs_counts(r)[0] for r in olds) + sum(int((r.get("spec") or {}).get("replicas") or 0) for r in olds)
    if not spec.get("paused"):
        if new is None:
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            labels["pod-template-hash"] = h
            tmpl = json.loads(json.dumps(template))
            tmpl.setdefault("metadata", {})["labels"] = labels
            selector = json.loads(json.dumps(spec.get("selector") or {"matchLabels": {}}))
            selector.setdefault("matchLabels", {})["pod-template-hash"] = h
            initial = want if strategy != "Recreate" or old_pods == 0 else 0
            body = {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{name}-{h}", "namespace": ns, "labels": labels,
                             "annotations": {"deployment.kubernetes.io/revision": str(max_rev + 1),
                                             "deployment.kubernetes.io/desired-replicas": str(want),
                                             "deployment.kubernetes.io/max-replicas": str(want + _surge(spec, want))},
                             "ownerReferences": [owner_ref(DEPLOYMENTS, d)]},
                "spec": {"replicas": initial, "minReadySeconds": spec.get("minReadySeconds", 0), "selector": selector, "template": tmpl},
            }
            new = rt.create(REPLICASETS, body)
            created_now = new is not None
        else:
            rev = int((meta(new).get("annotations") or {}).get("deployment.kubernetes.io/revision") or 0)
            target = want if strategy != "Recreate" or old_pods == 0 else 0
            if int((new.get("spec") or {}).get("replicas") or 0) != target or (olds and rev < max(r for r in revisions)):
                bump = rev < max_rev

                def scale(cur: dict[str, Any]) -> bool:
                    changed = False
                    if cur["spec"].get("replicas") != target:
                        cur["spec"]["replicas"] = target
                        changed = True
                    if bump:
                        cur["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(max_rev + 1)
                        changed = True
                    return changed

                new = rt.modify(REPLICASETS, ns, meta(new)["name"], scale) or new
        # old ReplicaSets: Recreate -> 0 at once; RollingUpdate -> keep only what the new RS does not cover yet
        new_avail = _rs_counts(new)[2] if new is not None else 0
        remaining = 0 if strategy == "Recreate" else max(0, want - new_avail)
        for r in sorted(olds, key=lambda r: meta(r).get("creationTimestamp", ""), reverse=True):
            cur = int((r.get("spec") or {}).get("replicas") or 0)
            target_old = min(cur, remaining)
            remaining -= target_old
            if target_old != cur:
                rt.modify(REPLICASETS, ns, meta(r)["name"], lambda o, t=target_old: _set_replicas(o, t))
        _prune_history(rt, d, olds)
    if new is not None:
        rev = (meta(new).get("annotations") or {}).get("deployment.kubernetes.io/revision")
        if rev and (meta(d).get("annotations") or {}).get("deployment.kubernetes.io/revision") != rev:
            d = rt.modify(DEPLOYMENTS, ns, name, lambda o: _set_annotation(o, "deployment.kubernetes.io/revision", rev)) or d
    deployment_status(rt, d, new, olds, want, created_now)


def _set_replicas(obj: dict[str, Any], n: int) -> bool:
    if obj["spec"].get("replicas") == n:
        return False
    obj["spec"]["replicas"] = n
    return True


def _set_annotation(obj: dict[str, Any], k: str, v: str) -> bool:
    ann = obj["metadata"].setdefault("annotations", {})
    if ann.get(k) == v:
        return False
    ann[k] = v
    return True


def _surge(spec: dict[str, Any], want: int) -> int:
    ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    return resolve_int_or_percent(ru.get("maxSurge", "25%"), want, True)


def _max_unavailable(spec: dict[str, Any], want: int) -> int:
    if ((spec.get("strategy") or {}).get("type") or "RollingUpdate") != "RollingUpdate":
        return 0
    ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    mu = resolve_int_or_percent(ru.get("maxUnavailable", "25%"), want, False)
    if mu == 0 and _surge(spec, want) == 0:
        mu = 1
    return min(mu, want)


def _prune_history(rt: Runtime, d: dict[str, Any], olds: list[dict[str, Any]]) -> None:
    limit = (d.get("spec") or {}).get("revisionHistoryLimit", 10)
    idle = [r for r in olds if not (r.get("spec") or {}).get("replicas") and not _rs_counts(r)[0]]
    if limit is None or len(idle) <= int(limit):
        return
    idle.sort(key=lambda r: int((meta(r).get("annotations") or {}).get("deployment.kubernetes.io/revision") or 0))
    for r in idle[: len(idle) - int(limit)]:
        rt.delete(REPLICASETS, meta(r).get("namespace"), meta(r)["name"])


def deployment_status(rt: Runtime, d: dict[str, Any], new: dict[str, Any] | None, olds: list[dict[str, Any]], want: int, created_now: bool) -> None:
    spec = d.get("spec") or {}
    ns = meta(d).get("namespace")
    fresh = [rt.cache.get(REPLICASETS, ns, meta(r)["name"]) for r in ([new] if new else []) + olds]
    fresh = [r for r in fresh if r is not None]
    new_f = fresh[0] if new is not None and fresh else None
    replicas = sum(_rs_counts(r)[0] for r in fresh)
    ready = sum(_rs_counts(r)[1] for r in fresh)
    available = sum(_rs_counts(r)[2] for r in fresh)
    updated = _rs_counts(new_f)[0] if new_f else 0
    total_spec = sum(int((r.get("spec") or {}).get("replicas") or 0) for r in fresh)
    unavailable = max(0, max(total_spec, want) - available)
    old = d.get("status") or {}
    conds = list(old.get("conditions") or [])
    if available >= want - _max_unavailable(spec, want):
        conds = set_condition(conds, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        conds = set_condition(conds, "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    rs_name = meta(new_f)["name"] if new_f else ""
    complete = new_f is not None and updated == want and replicas == want and available == want and int((new_f.get("spec") or {}).get("replicas") or 0) == want
    deadline = spec.get("progressDeadlineSeconds", 600)
    prog = next((c for c in conds if c.get("type") == "Progressing"), None)
    if spec.get("paused"):
        conds = set_condition(conds, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
    elif complete:
        conds = set_condition(conds, "Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
    elif created_now:
        conds = set_condition(conds, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
    else:
        seen = (old.get("updatedReplicas"), old.get("readyReplicas"), old.get("availableReplicas"), old.get("replicas"))
        moved = seen != (updated or None, ready or None, available or None, replicas or None)
        stalled = False
        if prog is not None and deadline is not None and not moved and prog.get("reason") != "ProgressDeadlineExceeded":
            try:
                last = calendar.timegm(time.strptime(prog.get("lastUpdateTime", ""), "%Y-%m-%dT%H:%M:%SZ"))
                stalled = time.time() - last > int(deadline)
            except ValueError:
                stalled = False
        if (prog or {}).get("reason") == "ProgressDeadlineExceeded" and not moved:
            pass
        elif stalled:
            conds = set_condition(conds, "Progressing", "False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.')
        else:
            conds = [dict(c) for c in conds]
            for c in conds:
                if c.get("type") == "Progressing" and moved:
                    c["lastUpdateTime"] = now()
            conds = set_condition(conds, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', update_time=True)
        if deadline is not None and (ns, meta(d)["name"]) not in rt.deadline_checks:
            rt.deadline_checks.add((ns, meta(d)["name"]))
            rt.after(float(deadline) + 1.0, _recheck, DEPLOYMENTS, ns, meta(d)["name"])
    # as syncRolloutStatus: a ReplicaSet's ReplicaFailure (e.g. pods refused in admission) shows on the Deployment
    failure = next((c for r in fresh for c in (r.get("status") or {}).get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
    if failure is not None:
        conds = set_condition(conds, "ReplicaFailure", failure.get("status", "True"), failure.get("reason", ""), failure.get("message", ""))
    else:
        conds = [c for c in conds if c.get("type") != "ReplicaFailure"]
    conds.sort(key=lambda c: {"Available": 0, "Progressing": 1}.get(c.get("type"), 2))
    status: dict[str, Any] = {"observedGeneration": meta(d).get("generation", 1), "replicas": replicas, "updatedReplicas": updated,
                              "readyReplicas": ready, "availableReplicas": available, "unavailableReplicas": unavailable, "conditions": conds}
    for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"):
        if not status[k]:
            del status[k]
    write_status(rt, DEPLOYMENTS, d, status)


def _recheck(rt: Runtime, key: str, ns: str | None, name: str) -> None:
    rt.deadline_checks.discard((ns, name))
    rt.mark(key, ns, name)


def register(rt: Runtime) -> None:
    rt.reconcilers[DEPLOYMENTS] = reconcile_deployment
    rt.fanout[DEPLOYMENTS].append(self_fanout(DEPLOYMENTS))

"""The Job controller: pods until completions succeed, backoff limit, conditions."""

from __future__ import annotations

from .common import (
    is_active,
    is_ready,
    now,
    owned_by,
    self_fanout,
    set_condition,
    suffix,
    write_status,
)
from .kubelet import new_pod
from .runtime import (
    JOBS,
    PODS,
    Runtime,
    meta,
)


# ------------------------------------------------------------------------------------- Jobs
def reconcile_job(rt: Runtime, ns: str | None, name: str) -> None:
    job = rt.cache.get(JOBS, ns, name)
    if job is None or meta(job).get("deletionTimestamp"):
        return
    spec = job.get("spec") or {}
    completions = int(spec["completions"]) if spec.get("completions") is not None else 1
    parallelism = int(spec["parallelism"]) if spec.get("parallelism") is not None else 1
    backoff = int(spec.get("backoffLimit", 6) if spec.get("backoffLimit") is not None else 6)
    old = job.get("status") or {}
    conds = list(old.get("conditions") or [])
    finished = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conds)
    pods = owned_by(rt, job, PODS)
    succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
    failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
    active = [p for p in pods if is_active(p)]
    ts = now()
    status = dict(old)
    status.setdefault("startTime", ts)
    if not finished and not spec.get("suspend"):
        if succeeded >= completions:
            for p in active:
                rt.delete(PODS, ns, meta(p)["name"])
            active = []
            conds = set_condition(conds, "SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods", update_time=False)
            conds = set_condition(conds, "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods", update_time=False)
            status["completionTime"] = ts
        elif failed > backoff:
            for p in active:
                rt.delete(PODS, ns, meta(p)["name"])
            active = []
            conds = set_condition(conds, "FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit", update_time=False)
            conds = set_condition(conds, "Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit", update_time=False)
        else:
            missing = min(parallelism, completions - succeeded) - len(active)
            labels = {"batch.kubernetes.io/controller-uid": meta(job)["uid"], "controller-uid": meta(job)["uid"],
                      "batch.kubernetes.io/job-name": name, "job-name": name}
            for _i in range(max(0, missing)):
                p = new_pod(rt, JOBS, job, spec.get("template") or {}, f"{name}-{suffix()}", labels)
                if p is not None:
                    active.append(p)
    for k, v in (("active", len(active)), ("succeeded", succeeded), ("failed", failed), ("ready", sum(1 for p in active if is_ready(p)))):
        if v:
            status[k] = v
        else:
            status.pop(k, None)
    status["terminating"] = 0
    status["uncountedTerminatedPods"] = {}
    if conds:
        status["conditions"] = conds
    write_status(rt, JOBS, job, status)


def register(rt: Runtime) -> None:
    rt.reconcilers[JOBS] = reconcile_job
    rt.fanout[JOBS].append(self_fanout(JOBS))

"""The simulated scheduler and kubelet: pods are bound to a node, their containers "start" and report
status as a kubelet would (images, restarts, readiness, faults), jobs' pods complete. No container runs."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from typing import Any

from ..api.admission import service_account_admission
from ..api.defaults import qos_class
from ..api.errors import ApiError
from ..api.selectors import parse_label_selector
from .common import (
    KINDS,
    labels_of,
    now,
    owner_fanout,
    owner_ref,
    suffix,
    write_status,
)
from .nodes import pick_node, ready_nodes
from .runtime import (
    NODES,
    PODS,
    STATEFULSETS,
    Runtime,
    api_code,
    meta,
)

log = logging.getLogger("kubesim.kubelet")


# ------------------------------------------------------------------------------------- pods
def new_pod(rt: Runtime, owner_key: str, owner: dict[str, Any], template: dict[str, Any], name: str,
            extra_labels: dict[str, str] | None = None, node: str | None = None, spec_extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Create a pod from a template the way a controller does (through admission: defaults + injection)."""
    from . import istio_injector as injection

    tmd = template.get("metadata") or {}
    labels = dict(tmd.get("labels") or {})
    labels.update(extra_labels or {})
    md: dict[str, Any] = {"name": name, "namespace": meta(owner)["namespace"], "labels": labels,
                          "ownerReferences": [owner_ref(owner_key, owner)]}
    if tmd.get("annotations"):
        md["annotations"] = dict(tmd["annotations"])
    spec = json.loads(json.dumps(template.get("spec") or {}))
    spec.update(spec_extra or {})
    pod = rt.defaulted(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec})
    try:
        pod = injection.inject(rt, pod, dry_run=False)
    except ApiError as exc:      # refused in admission (an injector webhook that cannot be called)
        create_failed(rt, owner_key, owner, exc)
        return None
    if node is None:
        node = pick_node(rt, spec)
    if node:
        pod["spec"]["nodeName"] = node
        pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()}]
    try:
        # ServiceAccount admission, as for any pod the controller POSTs (it names it by generateName)
        probe = {"metadata": {"generateName": name if owner_key == STATEFULSETS else name.rsplit("-", 1)[0] + "-",
                              "namespace": md["namespace"]}, "spec": pod["spec"]}
        service_account_admission(rt.store, probe)
    except ApiError as err:
        create_failed(rt, owner_key, owner, err)
        return None
    for _attempt in range(5):
        try:
            out = rt.create_raise(PODS, pod)
            rt.create_failures.pop((owner_key, meta(owner).get("namespace"), meta(owner)["name"]), None)
            return out
        except Exception as exc:
            if getattr(exc, "code", None) == 409 and getattr(exc, "reason", "") == "AlreadyExists" and "-" in name and owner_key != STATEFULSETS:
                name = name.rsplit("-", 1)[0] + "-" + suffix()
                pod["metadata"]["name"] = name
                continue
            if getattr(exc, "code", None) in (403, 404, 409, 422):
                return None
            raise
    return None


def create_failed(rt: Runtime, owner_key: str, owner: dict[str, Any], exc: ApiError) -> None:
    """What kube-controller-manager does when a pod create is refused: a FailedCreate event on the
    controller ("Error creating: <API error>") and a retry with the workqueue's per-item backoff
    (5 ms doubling, at most 1000 s). The controller's status reads rt.create_failures."""
    key = (owner_key, meta(owner).get("namespace"), meta(owner)["name"])
    count = rt.create_failures.get(key, (0, ""))[0]
    rt.create_failures[key] = (count + 1, exc.message)
    kind = str(owner.get("kind") or KINDS.get(owner_key, "ReplicaSet"))
    emit_event(rt, {**owner, "kind": kind, "apiVersion": owner.get("apiVersion") or "apps/v1"}, "Warning", "FailedCreate",
               f"Error creating: {exc.message}", component=f"{kind.lower()}-controller")
    rt.after(min(0.005 * 2 ** count, 1000.0), lambda rt, k=key: rt.mark(*k))


def reconcile_pod(rt: Runtime, ns: str | None, name: str) -> None:
    """Simulated scheduler + kubelet for one pod."""
    pod = rt.cache.get(PODS, ns, name)
    if pod is None or meta(pod).get("deletionTimestamp"):
        return
    uid = meta(pod)["uid"]
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed") or uid in rt.kubelet:
        return
    spec = pod.get("spec") or {}
    if not spec.get("nodeName"):
        node = pick_node(rt, spec)
        if node is None:
            cond = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastProbeTime": None, "lastTransitionTime": now(),
                     "message": "0/%d nodes are available: node(s) didn't match Pod's node affinity/selector." % len(ready_nodes(rt))}]
            write_status(rt, PODS, pod, {**status, "phase": "Pending", "conditions": cond})
            return

        def bind(cur: dict[str, Any]) -> bool:
            if (cur.get("spec") or {}).get("nodeName"):
                return False
            cur["spec"]["nodeName"] = node
            return True

        pod = rt.modify(PODS, ns, name, bind, uid=uid)
        if pod is None:
            return
        status = dict(pod.get("status") or {})
        status.update(phase="Pending", conditions=[{"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()}])
        status.setdefault("qosClass", qos_class(pod.get("spec") or {}))
        pod = rt.update_status(PODS, pod, status) or pod
    rt.kubelet[uid] = 0
    rt.after(float(rt.settings.pod_ready_delay), kubelet_sync, ns, name, uid)


def _image_id(image: str) -> str:
    repo = image.split("@")[0]
    if ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]
    if "/" not in repo:
        repo = "docker.io/library/" + repo
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _container_id(uid: str, cname: str, restarts: int) -> str:
    return "containerd://" + hashlib.sha256(f"{uid}/{cname}/{restarts}".encode()).hexdigest()


def _pod_ip(rt: Runtime, node: str) -> str:
    """Pod IPs from 10.(128+node).x.y, unique per simulated node."""
    m = re.search(r"(\d+)$", node or "")
    idx = int(m.group(1)) if m else 0
    n = rt.ipam.get(node, 0) + 1
    rt.ipam[node] = n
    return f"10.{128 + idx % 100}.{(n // 250) % 256}.{n % 250 + 2}"


def kubelet_sync(rt: Runtime, ns: str, name: str, uid: str) -> None:
    """The simulated kubelet: start containers (or fail them as the faults ask) and report status."""
    pod = rt.cache.get(PODS, ns, name)
    if pod is None or meta(pod).get("uid") != uid or meta(pod).get("deletionTimestamp"):
        rt.kubelet.pop(uid, None)
        return
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    if old.get("phase") in ("Succeeded", "Failed"):
        return
    restarts = rt.kubelet.get(uid, 0)
    settings = rt.settings
    ts = now()
    pattern = settings.image_pull_fail_pattern
    sel = settings.never_ready_selector
    try:
        crash = bool(sel) and (parse_label_selector(sel) or (lambda _l: True))(labels_of(pod))
    except Exception:   # noqa: BLE001 - a bad selector in the settings means "no fault"
        crash = False
    node = spec.get("nodeName") or ""
    node_obj = rt.cache.get(NODES, None, node)
    host_ip = next((a["address"] for a in ((node_obj or {}).get("status") or {}).get("addresses") or [] if a.get("type") == "InternalIP"), "10.0.10.10")
    pod_ip = old.get("podIP") or ((spec.get("hostNetwork") and host_ip) or _pod_ip(rt, node))
    started_at = old.get("startTime") or ts
    inits = spec.get("initContainers") or []
    containers = spec.get("containers") or []

    def pulled(c: dict[str, Any]) -> bool:
        image = c.get("image") or ""
        # "auto" is the placeholder Istio's injector replaces; uninjected it never pulls (as on a real cluster)
        return image != "auto" and not (pattern and pattern in image)

    def running(c: dict[str, Any], restarts_c: int = 0) -> dict[str, Any]:
        return {"name": c["name"], "image": c.get("image", ""), "imageID": _image_id(c.get("image", "")),
                "containerID": _container_id(uid, c["name"], restarts_c), "ready": True, "started": True,
                "restartCount": restarts_c, "state": {"running": {"startedAt": started_at}}, "lastState": {}}

    def waiting(c: dict[str, Any], reason: str, message: str, restarts_c: int = 0, last: dict[str, Any] | None = None) -> dict[str, Any]:
        st = {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False, "started": False,
              "restartCount": restarts_c, "state": {"waiting": {"reason": reason, "message": message}}, "lastState": last or {}}
        if reason != "ImagePullBackOff" and reason != "PodInitializing":
            st["imageID"] = _image_id(c.get("image", ""))
        return st

    init_statuses = []
    blocked = None
    for c in inits:
        if not pulled(c):
            init_statuses.append(waiting(c, "ImagePullBackOff", f'Back-off pulling image "{c.get("image", "")}"'))
            blocked = "ImagePullBackOff"
            continue
        if blocked:
            init_statuses.append(waiting(c, "PodInitializing", ""))
        elif c.get("restartPolicy") == "Always":          # native sidecar
            init_statuses.append(running(c))
        else:
            init_statuses.append({"name": c["name"], "image": c.get("image", ""), "imageID": _image_id(c.get("image", "")),
                                  "containerID": _container_id(uid, c["name"], 0), "ready": True, "started": False, "restartCount": 0,
                                  "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started_at, "finishedAt": started_at}},
                                  "lastState": {}})
    statuses = []
    schedule_retry = 0.0
    failed_never = False
    for c in containers:
        if blocked:
            statuses.append(waiting(c, "PodInitializing", ""))
        elif not pulled(c):
            statuses.append(waiting(c, "ImagePullBackOff", f'Back-off pulling image "{c.get("image", "")}"'))
            schedule_retry = 2.0
        elif crash and c["name"] != "istio-proxy":
            if spec.get("restartPolicy") == "Never":
                st = running(c)
                st.update(ready=False, started=False, state={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started_at, "finishedAt": ts}})
                statuses.append(st)
                failed_never = True
            else:
                last = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started_at, "finishedAt": ts,
                                       "containerID": _container_id(uid, c["name"], restarts)}}
                msg = f"back-off {min(10 * 2 ** restarts, 300)}s restarting failed container={c['name']} pod={name}_{ns}({uid})"
                statuses.append(waiting(c, "CrashLoopBackOff", msg, restarts + 1, last))
                statuses[-1]["containerID"] = _container_id(uid, c["name"], restarts)
        else:
            statuses.append(running(c))
    if blocked:
        schedule_retry = 2.0
    ready = all(s["ready"] for s in statuses) and not blocked
    init_done = not blocked
    not_ready = [s["name"] for s in statuses if not s["ready"]]
    phase = "Pending" if (blocked or any(s["state"].get("waiting", {}).get("reason") == "ImagePullBackOff" for s in statuses)) else "Running"
    if failed_never:
        phase = "Failed"
    conds = [
        {"type": "PodReadyToStartContainers", "status": "True"},
        {"type": "Initialized", "status": "True" if init_done else "False"},
        {"type": "Ready", "status": "True" if ready else "False"},
        {"type": "ContainersReady", "status": "True" if ready else "False"},
        {"type": "PodScheduled", "status": "True"},
    ]
    prev = {c.get("type"): c for c in old.get("conditions") or []}
    for c in conds:
        c["lastProbeTime"] = None
        p = prev.get(c["type"])
        c["lastTransitionTime"] = p["lastTransitionTime"] if p and p.get("status") == c["status"] and p.get("lastTransitionTime") else ts
        if c["status"] == "False":
            if c["type"] == "Initialized":
                c["reason"] = "ContainersNotInitialized"
                c["message"] = "containers with incomplete status: [%s]" % " ".join(s["name"] for s in init_statuses if not s["ready"])
            else:
                c["reason"] = "ContainersNotReady"
                c["message"] = "containers with unready status: [%s]" % " ".join(not_ready)
    status = {"phase": phase, "conditions": conds, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
              "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": started_at,
              "containerStatuses": statuses, "qosClass": old.get("qosClass") or qos_class(spec)}
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    rt.update_status(PODS, pod, status)
    for st in init_statuses + statuses:
        reason = ((st.get("state") or {}).get("waiting") or {}).get("reason")
        if reason == "ImagePullBackOff":
            emit_event(rt, pod, "Warning", "Failed", f'Failed to pull image "{st["image"]}": simulated by kubesim (image_pull_fail_pattern)')
            emit_event(rt, pod, "Normal", "BackOff", f'Back-off pulling image "{st["image"]}"')
        elif reason == "CrashLoopBackOff":
            emit_event(rt, pod, "Warning", "BackOff", f"Back-off restarting failed container {st['name']} in pod {name}_{ns}({uid})")
    if phase == "Failed":
        return
    if crash and not failed_never and not blocked and not schedule_retry:
        rt.kubelet[uid] = restarts + 1
        rt.after(min(1.0 * 2 ** restarts, 10.0), kubelet_sync, ns, name, uid)
    elif schedule_retry:
        rt.after(schedule_retry, kubelet_sync, ns, name, uid)
    elif ready and spec.get("restartPolicy") in ("Never", "OnFailure"):
        run_for = min(run_time(containers), float(settings.container_run_time_max))
        rt.after(max(float(settings.pod_ready_delay), 0.05, run_for), kubelet_complete, ns, name, uid)


SLEEP = re.compile(r"(?:^|[\s;&|(])sleep\s+(infinity|\d+(?:\.\d+)?)([smhd]?)")


def run_time(containers: list[dict[str, Any]]) -> float:
    """How long a run-to-completion pod runs: the longest container's `sleep N` (command + args), else at once."""
    longest = 0.0
    for c in containers:
        words = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
        text = " ".join(words)
        total = 0.0
        for amount, unit in SLEEP.findall(text):
            total += float("inf") if amount == "infinity" else float(amount) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        longest = max(longest, total)
    return longest


def emit_event(rt: Runtime, obj: dict[str, Any], etype: str, reason: str, message: str, component: str = "kubelet") -> None:
    """A core/v1 Event as kubelets and controllers record them (once per object and reason; kubectl describe shows it)."""
    md = meta(obj)
    key = (md.get("uid"), reason)
    if key in rt.events_sent:
        return
    rt.events_sent.add(key)
    ts = now()
    try:
        rt.store.create("events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{md.get('name')}.{random.getrandbits(64):016x}", "namespace": md.get("namespace") or "default"},
            "involvedObject": {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", "Pod"), "name": md.get("name"),
                               "namespace": md.get("namespace"), "uid": md.get("uid")},
            "type": etype, "reason": reason, "message": message, "count": 1, "firstTimestamp": ts, "lastTimestamp": ts,
            "source": {"component": component, "host": (obj.get("spec") or {}).get("nodeName", "")} if component == "kubelet" else {"component": component},
            "reportingComponent": component, "reportingInstance": (obj.get("spec") or {}).get("nodeName", "") if component == "kubelet" else "",
        })
    except Exception as exc:   # noqa: BLE001 - events are best effort, as in Kubernetes
        rt.events_sent.discard(key)
        log.debug("kubesim: event %s for %s not recorded: %s", reason, md.get("name"), exc)


def kubelet_complete(rt: Runtime, ns: str, name: str, uid: str) -> None:
    """Run-to-completion pods (Jobs, helm test hooks): all containers exit 0."""
    pod = rt.cache.get(PODS, ns, name)
    if pod is None or meta(pod).get("uid") != uid:
        return
    ts = now()
    status = json.loads(json.dumps(pod.get("status") or {}))
    for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        started = ((s.get("state") or {}).get("running") or {}).get("startedAt")
        if started:
            s["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": ts, "containerID": s.get("containerID", "")}}
            s["ready"] = False
            s["started"] = False
    status["phase"] = "Succeeded"
    for c in status.get("conditions") or []:
        if c["type"] in ("Ready", "ContainersReady"):
            c.update(status="False", reason="PodCompleted", lastTransitionTime=ts)
            c.pop("message", None)
        if c["type"] == "PodReadyToStartContainers":
            c.update(status="False", lastTransitionTime=ts)
    rt.update_status(PODS, pod, status)
    rt.kubelet.pop(uid, None)


SHELLS = {"sh", "bash", "ash", "dash", "zsh"}


def ignores_sigterm(c: dict[str, Any]) -> bool:
    """Whether the container's PID 1 ignores SIGTERM: `sleep` or a shell script without a `trap` (PID 1 gets no
    default signal action), so the kubelet kills it only when the grace period ends. An image's own entrypoint
    (no `command`) is taken to handle SIGTERM and exit at once."""
    words = [str(w) for w in c.get("command") or []]
    if not words:
        return False
    first = words[0].rsplit("/", 1)[-1]
    if first == "sleep":
        return True
    return first in SHELLS and "trap" not in " ".join(words[1:] + [str(a) for a in c.get("args") or []])


def termination_time(rt: Runtime, pod: dict[str, Any]) -> float:
    """Seconds from the delete to the kubelet's final delete: the grace period when a container ignores SIGTERM."""
    grace = float(meta(pod).get("deletionGracePeriodSeconds") or 0)
    spec = pod.get("spec") or {}
    if any(ignores_sigterm(c) for c in spec.get("containers") or []):
        return grace
    return min(grace, max(float(rt.settings.pod_ready_delay), 0.05))


def kubelet_kill(rt: Runtime, ns: str, name: str, uid: str, grace: int) -> None:
    """The kubelet stopped the containers of a terminating pod: it deletes the pod for good (grace period 0)."""
    pod = rt.cache.get(PODS, ns, name)
    if pod is None or meta(pod).get("uid") != uid or int(meta(pod).get("deletionGracePeriodSeconds") or 0) != grace:
        return
    try:
        rt.store.delete(PODS, ns, name, grace_period=0, preconditions={"uid": uid})
    except Exception as exc:   # noqa: BLE001 - gone already, or replaced
        if api_code(exc) not in (404, 409):
            raise


def _pod_fanout(rt: Runtime, etype: str, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
    md = meta(pod)
    if etype != "DELETED" and md.get("deletionTimestamp") and (pod.get("spec") or {}).get("nodeName"):
        grace = int(md.get("deletionGracePeriodSeconds") or 0)
        if grace > 0 and (old is None or int(meta(old).get("deletionGracePeriodSeconds") or -1) != grace):
            rt.kubelet.pop(md.get("uid"), None)
            rt.after(termination_time(rt, pod), kubelet_kill, md.get("namespace"), md.get("name"), md.get("uid"), grace)
        return
    if etype == "DELETED":
        rt.kubelet.pop(md.get("uid"), None)
        rt.events_sent.discard((md.get("uid"), "Failed"))
        rt.events_sent.discard((md.get("uid"), "BackOff"))
    elif md.get("uid") not in rt.kubelet:
        rt.mark(PODS, md.get("namespace"), md.get("name"))


def register(rt: Runtime) -> None:
    rt.reconcilers[PODS] = reconcile_pod
    rt.fanout[PODS].append(_pod_fanout)
    rt.fanout[PODS].append(owner_fanout)

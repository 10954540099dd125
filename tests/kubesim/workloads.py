"""kubesim workload behaviour: Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, simulated
kubelets (pod lifecycle and faults), nodes, Service cluster IPs and Endpoints/EndpointSlices.

Simulated, in the spirit of KWOK: no container runs; pods get the status a kubelet would report.
"""

from __future__ import annotations

import calendar
import hashlib
import ipaddress
import json
import logging
import random
import re
import time
from typing import Any

from .controllers import (
    DAEMONSETS,
    DEPLOYMENTS,
    ENDPOINTS,
    JOBS,
    NODES,
    PODS,
    REPLICASETS,
    SERVICES,
    SLICES,
    STATEFULSETS,
    Runtime,
    controller_ref,
    meta,
)
from .selectors import parse_label_selector

log = logging.getLogger("kubesim.workloads")
PVCS = "persistentvolumeclaims"
SAFE = "bcdfghjklmnpqrstvwxz2456789"          # the alphabet Kubernetes uses for generated names
CONTAINERD = "containerd://1.7.27"
OWNER_KEYS = {"ReplicaSet": REPLICASETS, "StatefulSet": STATEFULSETS, "DaemonSet": DAEMONSETS, "Job": JOBS, "Deployment": DEPLOYMENTS}
API_VERSIONS = {DEPLOYMENTS: "apps/v1", REPLICASETS: "apps/v1", STATEFULSETS: "apps/v1", DAEMONSETS: "apps/v1", JOBS: "batch/v1"}
KINDS = {DEPLOYMENTS: "Deployment", REPLICASETS: "ReplicaSet", STATEFULSETS: "StatefulSet", DAEMONSETS: "DaemonSet", JOBS: "Job"}


# ------------------------------------------------------------------------------------- helpers
def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def suffix(n: int = 5) -> str:
    return "".join(random.choices(SAFE, k=n))


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def _normalize(o: Any) -> Any:
    """Drop nulls and empty maps/lists, as decoding into typed objects does (``creationTimestamp: null``...)."""
    if isinstance(o, dict):
        out = {k: _normalize(v) for k, v in o.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(o, list):
        return [_normalize(v) for v in o]
    return o


def template_hash(template: dict[str, Any]) -> str:
    """pod-template-hash: FNV-32a of the template, rendered in the safe alphabet (as Kubernetes does)."""
    t = _normalize(dict(template or {}))
    md = dict(t.get("metadata") or {})
    labels = {k: v for k, v in (md.get("labels") or {}).items() if k not in ("pod-template-hash", "controller-revision-hash")}
    md["labels"] = labels
    t["metadata"] = md
    digits = str(fnv32a(json.dumps(t, sort_keys=True, separators=(",", ":")).encode()))
    return "".join(SAFE[int(c) % len(SAFE)] for c in digits)


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return meta(obj).get("labels") or {}


def is_ready(pod: dict[str, Any]) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def is_active(pod: dict[str, Any]) -> bool:
    return not meta(pod).get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def owned_by(rt: Runtime, owner: dict[str, Any], key: str) -> list[dict[str, Any]]:
    uid = meta(owner).get("uid")
    return [o for o in rt.cache.dependents(uid, key) if (controller_ref(o) or {}).get("uid") == uid]


def owner_ref(key: str, owner: dict[str, Any]) -> dict[str, Any]:
    md = meta(owner)
    return {"apiVersion": API_VERSIONS[key], "kind": KINDS[key], "name": md["name"], "uid": md["uid"],
            "controller": True, "blockOwnerDeletion": True}


def orphaned(rt: Runtime, obj: dict[str, Any]) -> bool:
    """True when the object's controller is gone (the store's GC is about to delete it)."""
    ref = controller_ref(obj)
    if not ref:
        return False
    key = OWNER_KEYS.get(ref.get("kind", ""))
    if key is None:
        return False
    owner = rt.cache.get(key, meta(obj).get("namespace"), ref.get("name", ""))
    return owner is None or meta(owner).get("uid") != ref.get("uid") or bool(meta(owner).get("deletionTimestamp"))


def set_condition(conds: list[dict[str, Any]], ctype: str, status: str, reason: str, message: str, *, update_time: bool = True) -> list[dict[str, Any]]:
    """Upsert a workload condition keeping lastTransitionTime when the status does not change."""
    out = [dict(c) for c in conds]
    ts = now()
    for c in out:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["lastTransitionTime"] = ts
                c["lastUpdateTime"] = ts
            elif update_time and (c.get("reason") != reason or c.get("message") != message):
                c["lastUpdateTime"] = ts
            c.update(status=status, reason=reason, message=message)
            return out
    out.append({"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": ts, "lastUpdateTime": ts})
    return out


def write_status(rt: Runtime, key: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
    if (obj.get("status") or {}) != status:
        rt.update_status(key, obj, status)


def resolve_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value.endswith("%"):
        pct = int(value[:-1] or 0)
        raw = pct * total / 100.0
        return int(-(-raw // 1)) if round_up else int(raw // 1)
    return int(value)


# ------------------------------------------------------------------------------------- nodes
def node_object(i: int, version: str) -> dict[str, Any]:
    name = f"kubesim-node-{i}"
    ts = now()
    cond = [
        {"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": ts, "lastTransitionTime": ts}
        for t, r, m in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))
    ]
    cond.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status (simulated by kubesim)",
                 "lastHeartbeatTime": ts, "lastTransitionTime": ts})
    resources = {"cpu": "4", "memory": "16Gi", "pods": "2000", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                       "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                       "node.kubernetes.io/instance-type": "VM.Standard.E4.Flex",
                       "topology.kubernetes.io/zone": f"KUBESIM-AD-{(i - 1) % 3 + 1}"},
            "annotations": {"kubesim.okemesh.io/simulated": "true"},
        },
        "spec": {"podCIDR": f"10.244.{i}.0/24", "podCIDRs": [f"10.244.{i}.0/24"], "providerID": f"kubesim://{name}"},
        "status": {
            "conditions": cond,
            "addresses": [{"type": "InternalIP", "address": node_ip(i)}, {"type": "Hostname", "address": name}],
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version, "containerRuntimeVersion": CONTAINERD,
                         "operatingSystem": "linux", "architecture": "amd64", "osImage": "kubesim simulated node",
                         "kernelVersion": "6.8.0-kubesim", "machineID": f"kubesim{i:024d}", "systemUUID": f"kubesim-{i}", "bootID": f"kubesim-{i}"},
            "phase": "Running",
        },
    }


def node_ip(i: int) -> str:
    return f"10.0.10.{10 + i}"


def ensure_nodes(rt: Runtime) -> None:
    want = max(0, int(rt.settings.nodes))
    for i in range(1, want + 1):
        name = f"kubesim-node-{i}"
        if rt.store.get(NODES, None, name) is None:
            node = node_object(i, rt.settings.kubernetes_version)
            out = rt.create(NODES, node)
            if out is not None and not out.get("status"):
                rt.update_status(NODES, out, node["status"])
    for node in rt.cache.list(NODES):
        m = re.fullmatch(r"kubesim-node-(\d+)", meta(node).get("name", ""))
        if m and int(m.group(1)) > want:
            rt.delete(NODES, None, meta(node)["name"])


def ready_nodes(rt: Runtime) -> list[dict[str, Any]]:
    out = []
    for n in rt.cache.list(NODES):
        if meta(n).get("deletionTimestamp") or (n.get("spec") or {}).get("unschedulable"):
            continue
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in (n.get("status") or {}).get("conditions") or []):
            out.append(n)
    out.sort(key=lambda n: meta(n)["name"])
    return out


def pick_node(rt: Runtime, pod_spec: dict[str, Any]) -> str | None:
    nodes = [n for n in ready_nodes(rt) if node_fits(n, pod_spec)]
    if not nodes:
        return None
    rt.rr += 1
    return meta(nodes[rt.rr % len(nodes)])["name"]


def node_fits(node: dict[str, Any], pod_spec: dict[str, Any]) -> bool:
    sel = pod_spec.get("nodeSelector") or {}
    labels = labels_of(node)
    return all(labels.get(k) == v for k, v in sel.items())


# ------------------------------------------------------------------------------------- pods
def pod_defaults(pod: dict[str, Any]) -> dict[str, Any]:
    """API-server defaulting of a Pod (the fields clients commonly read back)."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        image = c.get("image") or ""
        tag = image.rsplit("/", 1)[-1]
        c.setdefault("imagePullPolicy", "Always" if (":" not in tag and "@" not in tag) or tag.endswith(":latest") else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            p.setdefault("protocol", "TCP")
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(spec))
    return pod


def qos_class(spec: dict[str, Any]) -> str:
    res = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    if all((r.get("limits") or {}).get("cpu") and (r.get("limits") or {}).get("memory")
           and (r.get("requests") or r.get("limits")) == r.get("limits") for r in res):
        return "Guaranteed"
    return "Burstable"


def new_pod(rt: Runtime, owner_key: str, owner: dict[str, Any], template: dict[str, Any], name: str,
            extra_labels: dict[str, str] | None = None, node: str | None = None, spec_extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Create a pod from a template the way a controller does (through admission: defaults + injection)."""
    from . import injection

    tmd = template.get("metadata") or {}
    labels = dict(tmd.get("labels") or {})
    labels.update(extra_labels or {})
    md: dict[str, Any] = {"name": name, "namespace": meta(owner)["namespace"], "labels": labels,
                          "ownerReferences": [owner_ref(owner_key, owner)]}
    if tmd.get("annotations"):
        md["annotations"] = dict(tmd["annotations"])
    spec = json.loads(json.dumps(template.get("spec") or {}))
    spec.update(spec_extra or {})
    pod = pod_defaults({"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec})
    pod = injection.inject(rt, pod, dry_run=False)
    if node is None:
        node = pick_node(rt, spec)
    if node:
        pod["spec"]["nodeName"] = node
        pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()}]
    for _attempt in range(5):
        try:
            return rt.store_create_raise(PODS, pod)
        except Exception as exc:
            if getattr(exc, "code", None) == 409 and getattr(exc, "reason", "") == "AlreadyExists" and "-" in name and owner_key != STATEFULSETS:
                name = name.rsplit("-", 1)[0] + "-" + suffix()
                pod["metadata"]["name"] = name
                continue
            if getattr(exc, "code", None) in (403, 404, 409, 422):
                return None
            raise
    return None


def pod_admission(rt: Runtime, op: str, pod: dict[str, Any]) -> dict[str, Any]:
    if op == "CREATE":
        pod_defaults(pod)
    return pod


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
        rt.after(max(float(settings.pod_ready_delay), 0.05), kubelet_complete, ns, name, uid)


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


# ------------------------------------------------------------------------------------- ReplicaSets / Deployments
def reconcile_replicaset(rt: Runtime, ns: str | None, name: str) -> None:
    rs = rt.cache.get(REPLICASETS, ns, name)
    if rs is None or meta(rs).get("deletionTimestamp") or orphaned(rt, rs):
        return
    spec = rs.get("spec") or {}
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    template = spec.get("template") or {}
    pods = owned_by(rt, rs, PODS)
    active = [p for p in pods if is_active(p)]
    diff = want - len(active)
    if diff > 0:
        base = meta(rs)["name"]
        for _i in range(diff):
            new_pod(rt, REPLICASETS, rs, template, f"{base}-{suffix()}")
    elif diff < 0:
        def rank(p: dict[str, Any]) -> tuple[int, int, str]:
            st = p.get("status") or {}
            return (0 if not (p.get("spec") or {}).get("nodeName") else 1, 0 if st.get("phase") == "Pending" else 1 if not is_ready(p) else 2,
                    "".join(chr(255 - ord(ch)) for ch in meta(p).get("creationTimestamp", "")))
        for p in sorted(active, key=rank)[: -diff]:
            rt.delete(PODS, ns, meta(p)["name"])
    pods = [p for p in owned_by(rt, rs, PODS) if is_active(p)]
    ready = sum(1 for p in pods if is_ready(p))
    status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
              "observedGeneration": meta(rs).get("generation", 1)}
    if not ready:
        status.pop("readyReplicas")
        status.pop("availableReplicas")
    if not pods:
        status.pop("fullyLabeledReplicas")
    write_status(rt, REPLICASETS, rs, status)


def _rs_counts(rs: dict[str, Any]) -> tuple[int, int, int]:
    st = rs.get("status") or {}
    return int(st.get("replicas") or 0), int(st.get("readyReplicas") or 0), int(st.get("availableReplicas") or 0)


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


# ------------------------------------------------------------------------------------- StatefulSets
def _ordinal(sts_name: str, pod_name: str) -> int | None:
    if not pod_name.startswith(sts_name + "-"):
        return None
    tail = pod_name[len(sts_name) + 1:]
    return int(tail) if tail.isdigit() else None


def reconcile_statefulset(rt: Runtime, ns: str | None, name: str) -> None:
    sts = rt.cache.get(STATEFULSETS, ns, name)
    if sts is None or meta(sts).get("deletionTimestamp"):
        return
    spec = sts.get("spec") or {}
    want = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    template = spec.get("template") or {}
    update_rev = f"{name}-{template_hash(template)}"
    parallel = spec.get("podManagementPolicy") == "Parallel"
    strategy = spec.get("updateStrategy") or {}
    partition = int(((strategy.get("rollingUpdate") or {}).get("partition")) or 0)
    pods = {}
    for p in owned_by(rt, sts, PODS):
        o = _ordinal(name, meta(p)["name"])
        if o is not None and is_active(p):
            pods[o] = p
    old_status = sts.get("status") or {}
    current_rev = old_status.get("currentRevision") or update_rev
    # scale down: highest ordinal first (one at a time unless Parallel)
    excess = sorted((o for o in pods if o >= want), reverse=True)
    for o in excess[: None if parallel else 1]:
        rt.delete(PODS, ns, meta(pods.pop(o))["name"])
    # create missing ordinals
    for o in range(want):
        if o in pods:
            continue
        if not parallel and not all(o2 in pods and is_ready(pods[o2]) for o2 in range(o)):
            break
        rev = update_rev if o >= partition or current_rev == update_rev else current_rev
        tmpl = template
        pname = f"{name}-{o}"
        labels = {"controller-revision-hash": rev, "statefulset.kubernetes.io/pod-name": pname, "apps.kubernetes.io/pod-index": str(o)}
        extra: dict[str, Any] = {"hostname": pname}
        if spec.get("serviceName"):
            extra["subdomain"] = spec["serviceName"]
        claims = _statefulset_claims(rt, sts, pname)
        if claims:
            extra["volumes"] = [v for v in ((template.get("spec") or {}).get("volumes") or []) if v.get("name") not in {c["name"] for c in claims}] + claims
        p = new_pod(rt, STATEFULSETS, sts, tmpl, pname, labels, spec_extra=extra)
        if p is not None:
            pods[o] = p
        if not parallel:
            break
    # rolling update: replace the highest outdated ordinal >= partition once everything is ready
    if (strategy.get("type") or "RollingUpdate") == "RollingUpdate" and len(pods) == want and all(is_ready(p) for p in pods.values()):
        outdated = sorted((o for o, p in pods.items() if o >= partition and labels_of(p).get("controller-revision-hash") != update_rev), reverse=True)
        if outdated:
            rt.delete(PODS, ns, meta(pods.pop(outdated[0]))["name"])
    ready = sum(1 for p in pods.values() if is_ready(p))
    updated = sum(1 for p in pods.values() if labels_of(p).get("controller-revision-hash") == update_rev)
    if updated == want and ready == want and len(pods) == want:
        current_rev = update_rev
    current = sum(1 for p in pods.values() if labels_of(p).get("controller-revision-hash") == current_rev)
    status = {"observedGeneration": meta(sts).get("generation", 1), "replicas": len(pods), "readyReplicas": ready, "currentReplicas": current,
              "updatedReplicas": updated, "availableReplicas": ready, "currentRevision": current_rev, "updateRevision": update_rev, "collisionCount": 0}
    for k in ("readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"):
        if not status[k] and k != "availableReplicas":
            del status[k]
    write_status(rt, STATEFULSETS, sts, status)


def _statefulset_claims(rt: Runtime, sts: dict[str, Any], pod_name: str) -> list[dict[str, Any]]:
    """PVCs from volumeClaimTemplates, created once and bound at once (a simulated provisioner)."""
    ns = meta(sts).get("namespace")
    volumes = []
    for vct in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
        tname = (vct.get("metadata") or {}).get("name") or "data"
        claim = f"{tname}-{pod_name}"
        volumes.append({"name": tname, "persistentVolumeClaim": {"claimName": claim}})
        if rt.store.get(PVCS, ns, claim) is not None:
            continue
        pspec = json.loads(json.dumps(vct.get("spec") or {}))
        pspec.setdefault("accessModes", ["ReadWriteOnce"])
        pspec.setdefault("volumeMode", "Filesystem")
        pspec.setdefault("storageClassName", "oci-bv")
        pspec["volumeName"] = f"pvc-{random.getrandbits(64):016x}"
        storage = ((pspec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        labels = dict(((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": claim, "namespace": ns, "labels": labels,
                            "annotations": {"pv.kubernetes.io/bind-completed": "yes", "volume.kubernetes.io/storage-provisioner": "kubesim"}},
               "spec": pspec, "status": {"phase": "Bound", "accessModes": pspec["accessModes"], "capacity": {"storage": storage}}}
        out = rt.create(PVCS, pvc)
        if out is not None and (out.get("status") or {}).get("phase") != "Bound":
            rt.update_status(PVCS, out, pvc["status"])
    return volumes


# ------------------------------------------------------------------------------------- DaemonSets
def reconcile_daemonset(rt: Runtime, ns: str | None, name: str) -> None:
    ds = rt.cache.get(DAEMONSETS, ns, name)
    if ds is None or meta(ds).get("deletionTimestamp"):
        return
    spec = ds.get("spec") or {}
    template = spec.get("template") or {}
    h = template_hash(template)
    gen = meta(ds).get("generation", 1)
    nodes = [meta(n)["name"] for n in ready_nodes(rt) if node_fits(n, template.get("spec") or {})]
    by_node: dict[str, list[dict[str, Any]]] = {}
    for p in owned_by(rt, ds, PODS):
        if is_active(p):
            by_node.setdefault((p.get("spec") or {}).get("nodeName") or "", []).append(p)
    for node, ps in list(by_node.items()):
        extra = ps if node in nodes else ps
        keep = 1 if node in nodes else 0
        for p in extra[keep:]:
            rt.delete(PODS, ns, meta(p)["name"])
        by_node[node] = ps[:keep]
        if not keep:
            del by_node[node]
    for node in nodes:
        if node not in by_node:
            p = new_pod(rt, DAEMONSETS, ds, template, f"{name}-{suffix()}",
                        {"controller-revision-hash": h, "pod-template-generation": str(gen)}, node=node)
            if p is not None:
                by_node[node] = [p]
    pods = [ps[0] for ps in by_node.values() if ps]
    if ((spec.get("updateStrategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate":
        outdated = [p for p in pods if labels_of(p).get("controller-revision-hash") != h]
        if outdated and all(is_ready(p) for p in pods if p not in outdated):
            victim = outdated[0]
            rt.delete(PODS, ns, meta(victim)["name"])
            pods.remove(victim)
    ready = sum(1 for p in pods if is_ready(p))
    updated = sum(1 for p in pods if labels_of(p).get("controller-revision-hash") == h)
    status = {"observedGeneration": gen, "desiredNumberScheduled": len(nodes), "currentNumberScheduled": len(pods), "numberMisscheduled": 0,
              "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": updated}
    if len(nodes) - ready > 0:
        status["numberUnavailable"] = len(nodes) - ready
    if not ready:
        del status["numberAvailable"]
    write_status(rt, DAEMONSETS, ds, status)


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


# ------------------------------------------------------------------------------------- Services / Endpoints
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")


def service_admission(rt: Runtime, op: str, svc: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    spec = svc.setdefault("spec", {})
    ospec = (old or {}).get("spec") or {}
    spec.setdefault("type", "ClusterIP")
    if spec["type"] == "ExternalName":
        return svc
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("LoadBalancer", "NodePort"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p.get("port"))
    if not spec.get("clusterIP") and ospec.get("clusterIP"):
        spec["clusterIP"] = ospec["clusterIP"]
        spec["clusterIPs"] = ospec.get("clusterIPs") or [ospec["clusterIP"]]
    if not spec.get("clusterIP"):
        spec["clusterIP"] = _alloc_cluster_ip(rt)
    if spec["clusterIP"] != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    else:
        spec.setdefault("clusterIPs", ["None"])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if spec["type"] in ("LoadBalancer", "NodePort"):
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in ospec.get("ports") or []}
        used: set[int] = set()
        if any(not p.get("nodePort") for p in spec.get("ports") or []):
            used = _used_node_ports(rt)
        for p in spec.get("ports") or []:
            if not p.get("nodePort"):
                prev = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                if prev:
                    p["nodePort"] = prev
                else:
                    free = [n for n in range(30000, 32768) if n not in used]
                    p["nodePort"] = random.choice(free)
                    used.add(p["nodePort"])
    return svc


def _alloc_cluster_ip(rt: Runtime) -> str:
    with rt.cache.lock:    # admission runs in API threads while the worker updates the cache
        used = {(s.get("spec") or {}).get("clusterIP") for s in rt.cache.list(SERVICES)}
    used |= rt.recent_ips
    for _attempt in range(1000):
        ip = str(SERVICE_CIDR.network_address + random.randint(20, SERVICE_CIDR.num_addresses - 2))
        if ip not in used:
            rt.recent_ips.add(ip)
            return ip
    raise RuntimeError("kubesim: service CIDR 10.96.0.0/16 exhausted")


def _used_node_ports(rt: Runtime) -> set[int]:
    with rt.cache.lock:
        return {p.get("nodePort") for s in rt.cache.list(SERVICES) for p in (s.get("spec") or {}).get("ports") or [] if p.get("nodePort")}


def _resolve_port(pod: dict[str, Any], target: Any) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return p.get("containerPort")
    return None


def service_pods(rt: Runtime, svc: dict[str, Any]) -> list[dict[str, Any]]:
    sel = (svc.get("spec") or {}).get("selector") or {}
    if not sel:
        return []
    ns = meta(svc).get("namespace")
    return [p for p in rt.cache.list(PODS, ns) if is_active(p) and (p.get("status") or {}).get("podIP")
            and all(labels_of(p).get(k) == v for k, v in sel.items())]


def reconcile_endpoints(rt: Runtime, ns: str | None, name: str) -> None:
    svc = rt.cache.get(SERVICES, ns, name)
    slices = [s for s in rt.cache.list(SLICES, ns) if labels_of(s).get("kubernetes.io/service-name") == name
              and labels_of(s).get("endpointslice.kubernetes.io/managed-by") == "endpointslice-controller.k8s.io"]
    if svc is None:
        ep = rt.cache.get(ENDPOINTS, ns, name)
        if ep is not None and labels_of(ep).get("endpoints.kubernetes.io/managed-by") == "endpoint-controller":
            rt.delete(ENDPOINTS, ns, name)
        for s in slices:
            rt.delete(SLICES, ns, meta(s)["name"])
        return
    spec = svc.get("spec") or {}
    if not spec.get("selector") or spec.get("type") == "ExternalName":
        return
    pods = sorted(service_pods(rt, svc), key=lambda p: meta(p)["name"])
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple, dict[str, list]] = {}
    slice_eps = []
    slice_ports = None
    for p in pods:
        ports = []
        for sp in spec.get("ports") or []:
            tp = _resolve_port(p, sp.get("targetPort", sp.get("port")))
            if tp is None:
                continue
            e = {"port": tp, "protocol": sp.get("protocol", "TCP")}
            if sp.get("name"):
                e["name"] = sp["name"]
            if sp.get("appProtocol"):
                e["appProtocol"] = sp["appProtocol"]
            ports.append(e)
        if not ports and spec.get("ports"):
            continue
        key = tuple(json.dumps(x, sort_keys=True) for x in ports)
        g = groups.setdefault(key, {"ports": ports, "ready": [], "not": []})
        pmd = meta(p)
        addr = {"ip": p["status"]["podIP"], "nodeName": (p.get("spec") or {}).get("nodeName"),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": pmd["name"], "uid": pmd["uid"]}}
        if (p.get("spec") or {}).get("hostname") and (p.get("spec") or {}).get("subdomain") == name:
            addr["hostname"] = p["spec"]["hostname"]
        ready = is_ready(p) or publish_all
        g["ready" if ready else "not"].append(addr)
        if slice_ports is None:
            slice_ports = ports
        if key == tuple(json.dumps(x, sort_keys=True) for x in slice_ports):
            slice_eps.append({"addresses": [addr["ip"]], "conditions": {"ready": ready, "serving": ready, "terminating": False},
                              "nodeName": addr["nodeName"], "targetRef": addr["targetRef"]})
    subsets = []
    for g in groups.values():
        s: dict[str, Any] = {}
        if g["ready"]:
            s["addresses"] = g["ready"]
        if g["not"]:
            s["notReadyAddresses"] = g["not"]
        s["ports"] = g["ports"]
        subsets.append(s)
    labels = dict(labels_of(svc))
    labels["endpoints.kubernetes.io/managed-by"] = "endpoint-controller"
    if spec.get("clusterIP") == "None":
        labels["service.kubernetes.io/headless"] = ""
    ep = rt.cache.get(ENDPOINTS, ns, name)
    if ep is None:
        body = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns, "labels": labels}}
        if subsets:
            body["subsets"] = subsets
        rt.create(ENDPOINTS, body)
    elif (ep.get("subsets") or []) != subsets or labels_of(ep) != labels:
        def set_subsets(cur: dict[str, Any]) -> bool:
            cur["metadata"]["labels"] = labels
            if subsets:
                cur["subsets"] = subsets
            else:
                cur.pop("subsets", None)
            return True
        rt.modify(ENDPOINTS, ns, name, set_subsets)
    slabels = {k: v for k, v in labels.items() if k != "endpoints.kubernetes.io/managed-by"}
    slabels.update({"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
    sports = slice_ports if slice_ports is not None else [
        {k: v for k, v in (("name", sp.get("name")), ("protocol", sp.get("protocol", "TCP"))) if v is not None} for sp in spec.get("ports") or []]
    desired = {"addressType": "IPv4", "endpoints": slice_eps, "ports": sports}
    if not slices:
        body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-{suffix()}", "namespace": ns, "labels": slabels,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": meta(svc)["uid"],
                                                  "controller": True, "blockOwnerDeletion": True}]},
                **desired}
        rt.create(SLICES, body)
    else:
        s0 = slices[0]
        if any(s0.get(k) != v for k, v in desired.items()) or labels_of(s0) != slabels:
            def set_slice(cur: dict[str, Any]) -> bool:
                cur["metadata"]["labels"] = slabels
                cur.update(desired)
                return True
            rt.modify(SLICES, ns, meta(s0)["name"], set_slice)
        for extra in slices[1:]:
            rt.delete(SLICES, ns, meta(extra)["name"])


# ------------------------------------------------------------------------------------- defaults for workloads
def workload_admission(rt: Runtime, op: str, key: str, obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.setdefault("spec", {})
    if key == DEPLOYMENTS:
        spec.setdefault("replicas", 1)
        strat = spec.setdefault("strategy", {"type": "RollingUpdate"})
        strat.setdefault("type", "RollingUpdate")
        if strat["type"] == "RollingUpdate":
            ru = strat.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    elif key == STATEFULSETS:
        spec.setdefault("replicas", 1)
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
    elif key == DAEMONSETS:
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
    elif key == JOBS:
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        name = meta(obj).get("name") or ""
        if not spec.get("manualSelector") and name:   # generated selector, kept on every update (it is immutable)
            tmd = spec.setdefault("template", {}).setdefault("metadata", {})
            tl = tmd.setdefault("labels", {})
            tl.setdefault("batch.kubernetes.io/job-name", name)
            tl.setdefault("job-name", name)
            spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/job-name": name}})
    tspec = (spec.get("template") or {}).get("spec")
    if isinstance(tspec, dict):
        tspec.setdefault("restartPolicy", "Always" if key != JOBS else "Never")
        tspec.setdefault("dnsPolicy", "ClusterFirst")
        tspec.setdefault("schedulerName", "default-scheduler")
        tspec.setdefault("terminationGracePeriodSeconds", 30)
        tspec.setdefault("securityContext", {})
    return obj


def admission(rt: Runtime, operation: str, key: str, obj: dict[str, Any], old: dict[str, Any] | None, request: dict[str, Any]) -> dict[str, Any]:
    if operation not in ("CREATE", "UPDATE") or not isinstance(obj, dict):
        return obj
    if key == PODS:
        return pod_admission(rt, operation, obj)
    if key == SERVICES:
        return service_admission(rt, operation, obj, old)
    if key in (DEPLOYMENTS, STATEFULSETS, DAEMONSETS, JOBS):
        return workload_admission(rt, operation, key, obj)
    return obj


# ------------------------------------------------------------------------------------- event fan-out
def _pod_fanout(rt: Runtime, etype: str, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
    md = meta(pod)
    ns, name = md.get("namespace"), md.get("name")
    if etype == "DELETED":
        rt.kubelet.pop(md.get("uid"), None)
        rt.events_sent.discard((md.get("uid"), "Failed"))
        rt.events_sent.discard((md.get("uid"), "BackOff"))
    elif md.get("uid") not in rt.kubelet:
        rt.mark(PODS, ns, name)
    ref = controller_ref(pod)
    if ref and ref.get("kind") in OWNER_KEYS:
        rt.mark(OWNER_KEYS[ref["kind"]], ns, ref.get("name", ""))
    if old is not None and (old.get("status") or {}).get("conditions") == (pod.get("status") or {}).get("conditions") \
            and labels_of(old) == labels_of(pod) and (old.get("status") or {}).get("podIP") == (pod.get("status") or {}).get("podIP") and etype != "DELETED":
        return
    for lbls in (labels_of(pod), labels_of(old) if old else None):
        if lbls is None:
            continue
        for svc in rt.cache.list(SERVICES, ns):
            sel = (svc.get("spec") or {}).get("selector")
            if sel and all(lbls.get(k) == v for k, v in sel.items()):
                rt.mark(SERVICES, ns, meta(svc)["name"])


def _owner_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    md = meta(obj)
    ref = controller_ref(obj)
    if ref and ref.get("kind") in OWNER_KEYS:
        rt.mark(OWNER_KEYS[ref["kind"]], md.get("namespace"), ref.get("name", ""))


def _self_fanout(key: str):
    def fan(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        md = meta(obj)
        rt.mark(key, md.get("namespace"), md.get("name"))
    return fan


def _node_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    for ds in rt.cache.list(DAEMONSETS):
        rt.mark(DAEMONSETS, meta(ds).get("namespace"), meta(ds)["name"])


def _endpoints_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if etype == "DELETED" and labels_of(obj).get("endpoints.kubernetes.io/managed-by") == "endpoint-controller":
        rt.mark(SERVICES, meta(obj).get("namespace"), meta(obj)["name"])


def periodic(rt: Runtime) -> None:
    if len([n for n in rt.cache.list(NODES) if re.fullmatch(r"kubesim-node-\d+", meta(n).get("name", ""))]) != int(rt.settings.nodes):
        ensure_nodes(rt)


def register(rt: Runtime) -> None:
    rt.reconcilers.update({DEPLOYMENTS: reconcile_deployment, REPLICASETS: reconcile_replicaset, STATEFULSETS: reconcile_statefulset,
                           DAEMONSETS: reconcile_daemonset, JOBS: reconcile_job, PODS: reconcile_pod, SERVICES: reconcile_endpoints})
    rt.fanout[PODS].append(_pod_fanout)
    rt.fanout[REPLICASETS].append(_self_fanout(REPLICASETS))
    rt.fanout[REPLICASETS].append(_owner_fanout)
    for key in (DEPLOYMENTS, STATEFULSETS, DAEMONSETS, JOBS, SERVICES):
        rt.fanout[key].append(_self_fanout(key))
    rt.fanout[NODES].append(_node_fanout)
    rt.fanout[ENDPOINTS].append(_endpoints_fanout)
    rt.periodic.append(periodic)
    rt.store.add_admission(lambda op, key, obj, old, request: admission(rt, op, key, obj, old, request))

    def create_raise(key: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = rt.store.create(key, obj)
        rt._apply_now("ADDED", key, out)
        return out

    rt.store_create_raise = create_raise

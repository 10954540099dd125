"""The controller runtime of kubesim's cluster behaviour: an informer-like cache, a dirty queue,
timers and one worker thread that the controllers of this package register with.

kubesim is a *simulator*; nothing here runs containers.  In the spirit of KWOK it writes the
object state a real cluster's controllers would write, so that clients which wait and verify
(``kubectl rollout status``, ``kubectl wait``, kubernetes.core ``wait: true``) behave as on a
real cluster.

Threading model (one :class:`Runtime` per simulator):

* store listeners only append ``(event, key, obj)`` to a deque and wake the worker — they never
  block the API;
* one daemon worker thread drains the deque into an informer-like cache, marks the affected
  objects dirty, runs timers that are due (pod start, load-balancer assignment) and reconciles
  dirty objects in batches;
* every write goes through the store's public API (create/update/update_status/delete) and is
  applied to the cache at once, so a reconcile never acts on its own stale view (the role the
  "expectations" play in kube-controller-manager).
"""

from __future__ import annotations

import collections
import copy
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..api.defaults import Allocator, apply_defaults

log = logging.getLogger("kubesim.behaviour")

# resource keys used by the behaviour half
PODS = "pods"
SERVICES = "services"
ENDPOINTS = "endpoints"
SLICES = "endpointslices.discovery.k8s.io"
NAMESPACES = "namespaces"
NODES = "nodes"
CONFIGMAPS = "configmaps"
DEPLOYMENTS = "deployments.apps"
REPLICASETS = "replicasets.apps"
STATEFULSETS = "statefulsets.apps"
DAEMONSETS = "daemonsets.apps"
JOBS = "jobs.batch"
MWCS = "mutatingwebhookconfigurations.admissionregistration.k8s.io"
ISTIO_GATEWAYS = "gateways.networking.istio.io"
VIRTUALSERVICES = "virtualservices.networking.istio.io"

WATCHED = (PODS, SERVICES, ENDPOINTS, SLICES, NAMESPACES, NODES, DEPLOYMENTS, REPLICASETS, STATEFULSETS,
           DAEMONSETS, JOBS, MWCS, ISTIO_GATEWAYS, VIRTUALSERVICES)

OwnerKey = tuple[str, "str | None", str]     # (resource key, namespace, name)


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def api_code(exc: BaseException) -> int | None:
    return getattr(exc, "code", None)


class Cache:
    """Informer-like read cache: ``objs[key][namespace][name] -> obj`` plus an owner index.

    Only the worker thread mutates it (under ``lock``); other threads (admission, the load
    balancer's HTTP handlers) read it under ``lock``.  Objects are treated as immutable.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objs: dict[str, dict[str | None, dict[str, dict[str, Any]]]] = collections.defaultdict(dict)
        self.owned: dict[str, set[OwnerKey]] = collections.defaultdict(set)   # owner uid -> dependents
        self.gone: dict[str, float] = {}                                       # uid -> deletion time (tombstones)

    def get(self, key: str, ns: str | None, name: str) -> dict[str, Any] | None:
        return self.objs.get(key, {}).get(ns, {}).get(name)

    def list(self, key: str, ns: str | None = None) -> list[dict[str, Any]]:
        by_ns = self.objs.get(key, {})
        if ns is not None:
            return list(by_ns.get(ns, {}).values())
        return [o for objs in list(by_ns.values()) for o in list(objs.values())]

    def dependents(self, uid: str, key: str | None = None) -> list[dict[str, Any]]:
        out = []
        for k, ns, name in list(self.owned.get(uid, ())):
            if key is None or k == key:
                obj = self.get(k, ns, name)
                if obj is not None:
                    out.append(obj)
        return out

    def apply(self, etype: str, key: str, obj: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        """Apply one event; returns (applied, previous cached object)."""
        md = meta(obj)
        ns, name, uid = md.get("namespace"), md.get("name"), md.get("uid")
        with self.lock:
            bucket = self.objs[key].setdefault(ns, {})
            old = bucket.get(name)
            if etype == "DELETED":
                if old is not None and meta(old).get("uid") not in (None, uid):
                    return False, old      # a newer object of the same name already replaced it
                if uid:
                    self.gone[uid] = time.monotonic()
                if old is not None:
                    del bucket[name]
                    self._unindex(key, old)
                return old is not None, old
            if uid and uid in self.gone:
                return False, old          # stale event for an object already deleted
            if old is not None and meta(old).get("uid") == uid and _rv(old) >= _rv(obj) > 0:
                return False, old          # an event already seen, or an out-of-order older one
            if old is not None:
                self._unindex(key, old)
            bucket[name] = obj
            for r in meta(obj).get("ownerReferences") or []:
                if r.get("uid"):
                    self.owned[r["uid"]].add((key, ns, name))
            return True, old

    def _unindex(self, key: str, obj: dict[str, Any]) -> None:
        md = meta(obj)
        for r in md.get("ownerReferences") or []:
            deps = self.owned.get(r.get("uid"))
            if deps is not None:
                deps.discard((key, md.get("namespace"), md.get("name")))
                if not deps:
                    del self.owned[r["uid"]]


class Runtime:
    """The controller runtime: cache, dirty queue, timers, one worker thread."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.settings = cluster.settings
        self.stop_event: threading.Event = cluster.stop_event
        self.cache = Cache()
        self.alloc = getattr(cluster, "alloc", None) or Allocator()
        self.events: collections.deque[tuple[str, str, dict[str, Any]]] = collections.deque()
        self.wake = threading.Event()
        self.dirty: dict[tuple[str, str | None, str], None] = {}       # ordered set
        self.timers: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._timer_lock = threading.Lock()
        # reconcilers per resource key: fn(rt, ns, name)
        self.reconcilers: dict[str, Callable[[Runtime, str | None, str], None]] = {}
        # event fan-out per resource key: fn(rt, etype, obj, old) -> marks dirty objects
        self.fanout: dict[str, list[Callable[[Runtime, str, dict[str, Any], dict[str, Any] | None], None]]] = collections.defaultdict(list)
        self.periodic: list[Callable[[Runtime], None]] = []
        self.on_stop: list[Callable[[], None]] = []
        self.thread = threading.Thread(target=self._run, name="kubesim-controllers", daemon=True)
        self.errors = 0
        # state of the behaviour modules (filled in by their register())
        self.kubelet: dict[str, int] = {}                  # pod uid -> restarts, pods a simulated kubelet runs
        self.ipam: dict[str, int] = {}                     # node -> pod IPs handed out
        self.recent_ips: set[str] = set()                  # cluster IPs allocated here
        self.deadline_checks: set[tuple[str | None, str]] = set()
        self.events_sent: set[tuple[str | None, str]] = set()
        self.lbs: dict[tuple[str | None, str], Any] = {}   # LoadBalancer Services served: (ns, name) -> state
        self.lb_due: dict[tuple[str | None, str], float] = {}
        self.taint_due: dict[str, float] = {}               # pod uid -> when the taint eviction controller deletes it
        self.rr = 0                                        # round-robin pod placement
        self.create_failures: dict[tuple[str, str | None, str], tuple[int, str]] = {}   # controller -> (refused creates, last error)

    # ---- wiring -------------------------------------------------------------------------
    def listener(self, etype: str, key: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        if key in WATCHED or key in self.fanout or key in self.reconcilers:
            self.events.append((etype, key, obj))
            self.wake.set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        for fn in self.on_stop:
            try:
                fn()
            except Exception:   # noqa: BLE001 - best effort at shutdown
                log.exception("kubesim: stop hook failed")

    # ---- scheduling ---------------------------------------------------------------------
    def mark(self, key: str, ns: str | None, name: str) -> None:
        self.dirty[(key, ns, name)] = None

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        with self._timer_lock:
            heapq.heappush(self.timers, (time.monotonic() + max(0.0, delay), next(self._seq), fn, args))
        self.wake.set()

    # ---- writes (through the public store API; results applied to the cache) -------------
    def create(self, key: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        try:
            out = self.store.create(key, obj)
        except Exception as exc:
            if api_code(exc) in (409, 404, 422, 403):
                log.debug("kubesim: create %s %s: %s", key, meta(obj).get("name"), exc)
                return None
            raise
        self._apply_now("ADDED", key, out)
        return out

    def defaulted(self, key: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
        """The API server's defaulting of a built-in kind: a real controller's writes go through it too."""
        rtype = self.store.registry.by_key(key)
        return apply_defaults(rtype, obj, old, self.alloc) if rtype is not None else obj

    def create_raise(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create and let the API error through (a controller that must react to AlreadyExists)."""
        out = self.store.create(key, obj)
        self._apply_now("ADDED", key, out)
        return out

    def update_status(self, key: str, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        """Unconditional status write (this simulator is the only status writer)."""
        body = dict(obj)
        md = dict(meta(obj))
        md.pop("resourceVersion", None)
        body["metadata"] = md
        body["status"] = status
        try:
            out = self.store.update_status(key, body)
        except Exception as exc:
            if api_code(exc) in (404, 409, 422):
                return None
            raise
        self._apply_now("MODIFIED", key, out)
        return out

    def modify(self, key: str, ns: str | None, name: str, fn: Callable[[dict[str, Any]], bool], *, uid: str | None = None) -> dict[str, Any] | None:
        """Read-modify-write of spec/metadata with retry on 409 Conflict."""
        for _attempt in range(8):
            cur = self.store.get(key, ns, name)
            if cur is None or (uid and meta(cur).get("uid") != uid):
                return None
            if not fn(cur):
                return cur
            try:
                out = self.store.update(key, cur)
            except Exception as exc:
                if api_code(exc) == 409:
                    continue
                if api_code(exc) in (404, 422):
                    return None
                raise
            self._apply_now("MODIFIED", key, out)
            return out
        return None

    def delete(self, key: str, ns: str | None, name: str) -> None:
        try:
            out = self.store.delete(key, ns, name)
        except Exception as exc:
            if api_code(exc) in (404, 409):
                return
            raise
        if isinstance(out, dict) and not meta(out).get("deletionTimestamp"):
            self._apply_now("DELETED", key, out)

    def _apply_now(self, etype: str, key: str, obj: dict[str, Any] | None) -> None:
        if obj is None:
            return
        applied, old = self.cache.apply(etype, key, obj)
        if applied:
            self._fan(etype, key, obj, old)

    def _fan(self, etype: str, key: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        for fn in self.fanout.get(key, ()):
            fn(self, etype, obj, old)

    # ---- the worker ---------------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            try:
                etype, key, obj = self.events.popleft()
            except IndexError:
                return
            if not isinstance(obj, dict):
                continue
            applied, old = self.cache.apply(etype, key, obj)
            if applied:
                self._fan(etype, key, obj, old)

    def _due_timers(self) -> list[tuple[Callable[..., None], tuple[Any, ...]]]:
        now = time.monotonic()
        due = []
        with self._timer_lock:
            while self.timers and self.timers[0][0] <= now:
                _when, _seq, fn, args = heapq.heappop(self.timers)
                due.append((fn, args))
        return due

    def _next_wait(self) -> float:
        if self.dirty or self.events:
            return 0.0
        with self._timer_lock:
            if self.timers:
                return max(0.0, min(0.5, self.timers[0][0] - time.monotonic()))
        return 0.5

    def _safe(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:   # noqa: BLE001 - a controller bug must not kill the worker
            self.errors += 1
            log.exception("kubesim controller error in %s%r", getattr(fn, "__name__", fn), args[1:])

    def run_once(self) -> bool:
        """One worker pass; returns True when it did anything (also used by unit tests)."""
        did = False
        self._drain()
        for fn, args in self._due_timers():
            did = True
            self._safe(fn, self, *args)
            if len(self.events) > 200:
                self._drain()
        self._drain()
        rounds = 0
        while self.dirty and rounds < 50 and not self.stop_event.is_set():
            rounds += 1
            batch = list(self.dirty)
            self.dirty.clear()
            # controllers before kubelets/endpoints: workloads first so pods appear early
            batch.sort(key=lambda k: _ORDER.get(k[0], 50))
            for key, ns, name in batch:
                fn = self.reconcilers.get(key)
                if fn is not None:
                    did = True
                    self._safe(fn, self, ns, name)
            self._drain()
        return did

    def _run(self) -> None:
        last_periodic = 0.0
        while not self.stop_event.is_set():
            self.wake.wait(self._next_wait())
            self.wake.clear()
            if self.stop_event.is_set():
                break
            self.run_once()
            now = time.monotonic()
            if now - last_periodic >= 1.0:
                last_periodic = now
                for fn in self.periodic:
                    self._safe(fn, self)
                self._expire_tombstones(now)
        self.stop()

    def _expire_tombstones(self, now: float) -> None:
        with self.cache.lock:
            old = [uid for uid, t in self.cache.gone.items() if now - t > 300]
            for uid in old:
                del self.cache.gone[uid]


_ORDER = {DEPLOYMENTS: 0, STATEFULSETS: 1, DAEMONSETS: 1, JOBS: 1, REPLICASETS: 2, PODS: 3, SERVICES: 4}


def deepcopy(obj: Any) -> Any:
    return copy.deepcopy(obj)

"""Thread-safe in-memory object store of kubesim (the Kubernetes API simulator).

Public API used by the cluster-behaviour half (controllers) — names and signatures are a
contract:

    Store.get(key, namespace, name) -> dict | None              (deep copy)
    Store.list(key, namespace=None, label_selector=None) -> list[dict]   (deep copies)
    Store.create(key, obj) -> dict
    Store.update(key, obj) -> dict              (full replace; stale metadata.resourceVersion -> 409)
    Store.update_status(key, obj) -> dict       (only .status; never bumps generation)
    Store.delete(key, namespace, name, propagation="Background") -> dict | None
    Store.add_listener(fn)     fn(event_type, key, obj, old) after commit, outside the lock
    Store.add_admission(fn)    fn(operation, key, obj, old, request) -> obj, for API requests only

Objects held by the store are never mutated in place: every write stores a new dict, so the
HTTP layer can serialise stored objects without copying and cache their JSON encoding.

Simplifications (documented in README.md): deletes are immediate (no graceful termination)
unless the object carries finalizers; namespace deletion marks the namespace Terminating and
a background thread removes its contents and then the namespace a moment later; owner
reference garbage collection runs synchronously inside the delete call (Background and
Foreground differ only in event order; Orphan strips the owner reference).
"""

from __future__ import annotations

import collections
import itertools
import json
import random
import string
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from .admission import generation_part, has_generation
from .fieldmanager import comparable
from .errors import ApiError, already_exists, conflict, invalid, not_found
from .registry import Registry
from .selectors import parse_label_selector
from ..settings import Settings

__all__ = ["ApiError", "Store", "clone", "now_rfc3339"]

HISTORY = 20000            # watch events kept for "watch from resourceVersion"
NAMESPACE_FINALIZE_DELAY = 0.05
FOREGROUND = "foregroundDeletion"


def clone(o: Any) -> Any:
    """Deep copy of JSON-like data (much faster than copy.deepcopy)."""
    if isinstance(o, dict):
        return {k: clone(v) for k, v in o.items()}
    if isinstance(o, list):
        return [clone(v) for v in o]
    return o


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _strip_volatile(obj: dict) -> dict:
    out = dict(obj)
    md = dict(out.get("metadata") or {})
    for k in ("resourceVersion", "generation"):
        md.pop(k, None)
    if "managedFields" in md:
        md["managedFields"] = comparable(md["managedFields"])
    out["metadata"] = md
    return out


class Entry:
    __slots__ = ("obj", "raw")

    def __init__(self, obj: dict):
        self.obj = obj
        self.raw: bytes | None = None       # cached JSON encoding of obj

    def json(self) -> bytes:
        raw = self.raw
        if raw is None:
            raw = self.raw = json.dumps(self.obj, separators=(",", ":")).encode()
        return raw


class Event:
    __slots__ = ("rv", "type", "key", "ns", "obj", "old")

    def __init__(self, rv: int, type_: str, key: str, ns: str, obj: dict, old: dict | None):
        self.rv, self.type, self.key, self.ns, self.obj, self.old = rv, type_, key, ns, obj, old


class Store:
    def __init__(self, settings: Settings | None = None, registry: Registry | None = None):
        self.settings = settings or Settings()
        self.registry = registry or Registry()
        self.lock = threading.RLock()
        self._data: dict[str, dict[str, dict[str, Entry]]] = collections.defaultdict(dict)
        self._rv = itertools.count(1000)
        self.current_rv = 999
        self.history: collections.deque[Event] = collections.deque(maxlen=max(1, int(getattr(self.settings, "watch_history", HISTORY))))
        self._listeners: list[Callable] = []
        self._admission: list[Callable] = []
        self._sync_hooks: list[Callable[[Event], None]] = []      # called under the lock (watch hub)
        self._dependents: dict[str, set[tuple[str, str, str]]] = collections.defaultdict(set)
        self._key_version: dict[str, int] = collections.defaultdict(int)      # bumped on every write to a key
        self._sorted: dict[tuple[str, str | None], tuple[int, list[Entry], list[tuple[str, str]]]] = {}
        self.stopped = threading.Event()

    # ------------------------------------------------------------------ registration
    def add_listener(self, fn: Callable) -> None:
        self._listeners.append(fn)

    def add_admission(self, fn: Callable) -> None:
        self._admission.append(fn)

    def add_sync_hook(self, fn: Callable[[Event], None]) -> None:
        """Internal: fn(event) runs under the store lock right after commit (must be fast)."""
        self._sync_hooks.append(fn)

    def remove_sync_hook(self, fn: Callable[[Event], None]) -> None:
        try:
            self._sync_hooks.remove(fn)
        except ValueError:
            pass

    def admit(self, operation: str, key: str, obj: dict, old: dict | None, request: dict) -> dict:
        for fn in list(self._admission):
            result = fn(operation, key, obj, old, request)
            if result is not None:
                obj = result
        return obj

    # ------------------------------------------------------------------ helpers
    def _namespaced(self, key: str, obj_ns: str | None) -> bool:
        rt = self.registry.by_key(key)
        return rt.namespaced if rt else bool(obj_ns)

    def _names(self, key: str) -> tuple[str, str]:
        rt = self.registry.by_key(key)
        if rt:
            return rt.plural, rt.group
        plural, _sep, group = key.partition(".")
        return plural, group

    def _commit(self, key: str, ns: str, name: str, obj: dict | None, type_: str, old: dict | None, events: list) -> None:
        rv = next(self._rv)
        self.current_rv = rv
        self._key_version[key] += 1
        if obj is not None and type_ != "DELETED":
            obj["metadata"]["resourceVersion"] = str(rv)
            self._data[key].setdefault(ns, {})[name] = Entry(obj)
        else:
            bucket = self._data[key].get(ns)
            if bucket is not None:
                bucket.pop(name, None)
                if not bucket:
                    del self._data[key][ns]
            obj = clone(old)
            obj["metadata"]["resourceVersion"] = str(rv)
        self._index_owners(key, ns, name, old, obj if type_ != "DELETED" else None)
        ev = Event(rv, type_, key, ns, obj, old)
        self.history.append(ev)
        for hook in list(self._sync_hooks):
            try:
                hook(ev)
            except Exception as exc:  # noqa: BLE001 - a broken watcher must not break writes
                print(f"kubesim: watch hook failed: {exc!r}", flush=True)
        events.append(ev)

    def _index_owners(self, key: str, ns: str, name: str, old: dict | None, new: dict | None) -> None:
        ref = (key, ns, name)
        for o in (old,):
            if o:
                for r in (o.get("metadata") or {}).get("ownerReferences") or []:
                    s = self._dependents.get(r.get("uid", ""))
                    if s:
                        s.discard(ref)
                        if not s:
                            del self._dependents[r.get("uid", "")]
        if new:
            for r in (new.get("metadata") or {}).get("ownerReferences") or []:
                if r.get("uid"):
                    self._dependents[r["uid"]].add(ref)

    def _notify(self, events: list[Event]) -> None:
        for ev in events:
            for fn in list(self._listeners):
                try:
                    fn(ev.type, ev.key, clone(ev.obj), clone(ev.old) if ev.old is not None else None)
                except Exception as exc:  # noqa: BLE001
                    print(f"kubesim: listener {fn!r} failed: {exc!r}", flush=True)

    def _entry(self, key: str, ns: str | None, name: str) -> Entry | None:
        bucket = self._data.get(key, {}).get(ns or "")
        return bucket.get(name) if bucket else None

    # ------------------------------------------------------------------ reads
    def get_ref(self, key: str, namespace: str | None, name: str) -> dict | None:
        """The stored object itself (do not mutate)."""
        e = self._entry(key, namespace, name)
        return e.obj if e else None

    def get(self, key: str, namespace: str | None, name: str) -> dict | None:
        with self.lock:
            e = self._entry(key, namespace, name)
            return clone(e.obj) if e else None

    def entries(self, key: str, namespace: str | None = None) -> list[Entry]:
        """Stored entries sorted by (namespace, name) (a shared list: do not modify)."""
        return self.sorted_entries(key, namespace)[0]

    def sorted_entries(self, key: str, namespace: str | None = None) -> tuple[list[Entry], list[tuple[str, str]]]:
        """(entries, their (namespace, name) keys), sorted; cached until the next write to ``key``."""
        with self.lock:
            version = self._key_version[key]
            cached = self._sorted.get((key, namespace))
            if cached is not None and cached[0] == version:
                return cached[1], cached[2]
            buckets = self._data.get(key)
            if not buckets:
                entries = []
            elif namespace is not None:
                b = buckets.get(namespace)
                entries = [b[n] for n in sorted(b)] if b else []
            else:
                entries = [b[n] for ns in sorted(buckets) for b in (buckets[ns],) for n in sorted(b)]
            keys = [(e.obj["metadata"].get("namespace") or "", e.obj["metadata"]["name"]) for e in entries]
            self._sorted[(key, namespace)] = (version, entries, keys)
            return entries, keys

    def list(self, key: str, namespace: str | None = None, label_selector: str | None = None) -> list[dict]:
        match = parse_label_selector(label_selector)
        out = []
        for e in self.entries(key, namespace):
            if match is None or match((e.obj.get("metadata") or {}).get("labels") or {}):
                out.append(clone(e.obj))
        return out

    def count(self, key: str) -> int:
        with self.lock:
            return sum(len(b) for b in self._data.get(key, {}).values())

    # ------------------------------------------------------------------ writes
    def create(self, key: str, obj: dict, *, dry_run: bool = False) -> dict:
        events: list[Event] = []
        with self.lock:
            result = self._create(key, obj, dry_run, events)
        self._notify(events)
        return clone(result)

    def _create(self, key: str, obj: dict, dry_run: bool, events: list) -> dict:
        obj = clone(obj)
        md = obj.setdefault("metadata", {})
        plural, group = self._names(key)
        ns = md.get("namespace") or ""
        namespaced = self._namespaced(key, ns)
        if namespaced:
            if not ns:
                raise ApiError(400, "BadRequest", "the server could not find the requested resource: namespace is required")
            nsobj = self.get_ref("namespaces", None, ns)
            if nsobj is None:
                raise not_found("namespaces", ns)
            if (nsobj.get("status") or {}).get("phase") == "Terminating":
                what = md.get("name") or md.get("generateName")
                raise ApiError(403, "Forbidden",
                               f'{plural} "{what}" is forbidden: unable to create new content in namespace {ns} because it is being terminated',
                               {"name": md.get("name", ""), "group": group, "kind": plural,
                                "causes": [{"reason": "NamespaceTerminating", "message": f"namespace {ns} is being terminated",
                                            "field": "metadata.namespace"}]})
        else:
            md.pop("namespace", None)
            ns = ""
        if not md.get("name"):
            if md.get("generateName"):
                for _attempt in range(20):
                    cand = md["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                    if self._entry(key, ns, cand) is None:
                        md["name"] = cand
                        break
            else:
                raise invalid(self._names(key)[0], "", group, [{"field": "metadata.name", "message": "Required value: name or generateName is required"}])
        name = md["name"]
        if self._entry(key, ns, name) is not None:
            raise already_exists(plural, name, group)
        md.pop("resourceVersion", None)
        md["uid"] = str(uuid.uuid4())
        if has_generation(self.registry.by_key(key)):
            md["generation"] = 1
        else:
            md.pop("generation", None)
        md["creationTimestamp"] = now_rfc3339()
        md.pop("deletionTimestamp", None)
        if not md.get("managedFields"):
            md.pop("managedFields", None)       # the HTTP layer records them (fieldmanager.py)
        if dry_run:
            return obj
        self._commit(key, ns, name, obj, "ADDED", None, events)
        return obj

    def update(self, key: str, obj: dict, *, dry_run: bool = False) -> dict:
        events: list[Event] = []
        with self.lock:
            result = self._update(key, obj, dry_run, events, status_only=False)
        self._notify(events)
        return clone(result)

    def update_status(self, key: str, obj: dict, *, dry_run: bool = False) -> dict:
        events: list[Event] = []
        with self.lock:
            result = self._update(key, obj, dry_run, events, status_only=True)
        self._notify(events)
        return clone(result)

    def _update(self, key: str, obj: dict, dry_run: bool, events: list, status_only: bool) -> dict:
        md_in = obj.get("metadata") or {}
        name = md_in.get("name")
        ns = md_in.get("namespace") or ""
        plural, group = self._names(key)
        if not self._namespaced(key, ns):
            ns = ""
        cur = self.get_ref(key, ns, name)
        if cur is None:
            raise not_found(plural, name or "", group)
        rv = md_in.get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise conflict(plural, name, group)
        if md_in.get("uid") and md_in["uid"] != cur["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f'Precondition failed: UID in precondition: {md_in["uid"]}, UID in object meta: {cur["metadata"]["uid"]}')
        if status_only:
            new = clone(cur)
            if "status" in obj:
                new["status"] = clone(obj["status"])
            else:
                new.pop("status", None)
        else:
            new = clone(obj)
            md = new.setdefault("metadata", {})
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                if k in cur["metadata"]:
                    md[k] = cur["metadata"][k]
                else:
                    md.pop(k, None)
            if not md.get("managedFields"):
                md.pop("managedFields", None)
                if cur["metadata"].get("managedFields"):
                    md["managedFields"] = cur["metadata"]["managedFields"]      # kept when a writer sends none
            if ns:
                md["namespace"] = ns
            else:
                md.pop("namespace", None)
            rt = self.registry.by_key(key)
            if has_generation(rt) and generation_part(rt, new) != generation_part(rt, cur):
                md["generation"] = int(cur["metadata"].get("generation") or 1) + 1
        new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        if _strip_volatile(new) == _strip_volatile(cur) and new.get("metadata", {}).get("generation") == cur["metadata"].get("generation"):
            return cur                       # no-op write: no new resourceVersion, no event
        if dry_run:
            return new
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers") and key != "namespaces" and not (
                key == "pods" and self._running_grace(new)):
            self._commit(key, ns, name, None, "DELETED", new, events)
            self._release_owners(new, events)
            self._collect_dependents(new, "Background", events)
            return new
        self._commit(key, ns, name, new, "MODIFIED", cur, events)
        return new

    def delete(self, key: str, namespace: str | None, name: str, propagation: str = "Background", *,
               dry_run: bool = False, preconditions: dict | None = None, grace_period: int | None = None) -> dict | None:
        events: list[Event] = []
        finalize_ns = None
        with self.lock:
            cur = self.get_ref(key, namespace if self._namespaced(key, namespace) else None, name)
            if cur is None:
                plural, group = self._names(key)
                raise not_found(plural, name, group)
            if preconditions:
                if preconditions.get("uid") and preconditions["uid"] != cur["metadata"].get("uid"):
                    raise ApiError(409, "Conflict",
                                   f'Precondition failed: UID in precondition: {preconditions["uid"]}, UID in object meta: {cur["metadata"].get("uid")}')
                if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != cur["metadata"].get("resourceVersion"):
                    raise ApiError(409, "Conflict", "Precondition failed: resourceVersion mismatch")
            if dry_run:
                return clone(cur)
            if key == "namespaces":
                result = self._terminate_namespace(cur, events)
                finalize_ns = name
            else:
                result = self._delete(key, cur, propagation or "Background", events, grace_period)
        self._notify(events)
        if finalize_ns:
            t = threading.Timer(NAMESPACE_FINALIZE_DELAY, self._finalize_namespace, args=(finalize_ns,))
            t.daemon = True
            t.start()
        return clone(result) if result is not None else None

    def _delete(self, key: str, cur: dict, propagation: str, events: list, grace_period: int | None = None) -> dict:
        md = cur["metadata"]
        ns = md.get("namespace") or ""
        if key == "pods" and self._graceful(cur, grace_period):
            return self._mark_terminating(cur, grace_period, events)
        if propagation == "Foreground" and not md.get("deletionTimestamp") and self._live_dependents(md.get("uid")):
            # the API server only marks the owner; the garbage collector deletes the dependents and then
            # removes the foregroundDeletion finalizer, which lets the owner go
            new = clone(cur)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["finalizers"] = list(md.get("finalizers") or []) + [FOREGROUND]
            self._commit(key, ns, md["name"], new, "MODIFIED", cur, events)
            self._collect_dependents(new, "Foreground", events)
            return self.get_ref(key, ns, md["name"]) or new
        if md.get("finalizers"):
            if md.get("deletionTimestamp"):
                if key == "pods" and grace_period == 0 and md.get("deletionGracePeriodSeconds"):
                    new = clone(cur)                 # the kubelet is done; the finalizers still hold the pod
                    new["metadata"]["deletionGracePeriodSeconds"] = 0
                    self._commit(key, ns, md["name"], new, "MODIFIED", cur, events)
                    return new
                return cur
            new = clone(cur)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            self._commit(key, ns, md["name"], new, "MODIFIED", cur, events)
            return new
        if self._entry(key, ns, md["name"]) is not None:
            self._commit(key, ns, md["name"], None, "DELETED", cur, events)
            self._release_owners(cur, events)
        self._collect_dependents(cur, propagation, events)
        if key == "customresourcedefinitions.apiextensions.k8s.io":
            self._drop_crd_objects(cur, events)
        return cur

    @staticmethod
    def _graceful(pod: dict, grace_period: int | None) -> bool:
        """A pod a kubelet runs is deleted gracefully: it is marked and the kubelet removes it once its containers stopped."""
        spec, md = pod.get("spec") or {}, pod["metadata"]
        if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return False
        grace = spec.get("terminationGracePeriodSeconds", 30) if grace_period is None else grace_period
        if md.get("deletionTimestamp"):
            # a second delete may only shorten the grace period; 0 (the kubelet's final delete) removes the pod
            return grace_period is None or grace_period > 0
        return int(grace or 0) > 0

    @staticmethod
    def _running_grace(pod: dict) -> bool:
        """A terminating pod whose kubelet has not yet stopped it (a finalizer removed now does not remove it)."""
        return (bool((pod.get("spec") or {}).get("nodeName")) and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                and int(pod["metadata"].get("deletionGracePeriodSeconds") or 0) > 0)

    def _mark_terminating(self, cur: dict, grace_period: int | None, events: list) -> dict:
        md = cur["metadata"]
        grace = int((cur.get("spec") or {}).get("terminationGracePeriodSeconds", 30) if grace_period is None else grace_period)
        if md.get("deletionTimestamp") and grace >= int(md.get("deletionGracePeriodSeconds") or 0):
            return cur
        new = clone(cur)
        new["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + grace))
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        self._commit("pods", md.get("namespace") or "", md["name"], new, "MODIFIED", cur, events)
        return new

    def _live_dependents(self, uid: str | None) -> list[tuple[str, str, str]]:
        return [d for d in sorted(self._dependents.get(uid or "", ())) if self._entry(*d) is not None]

    def _release_owners(self, dep: dict, events: list) -> None:
        """Garbage collector: an owner waiting in foreground deletion goes once its last dependent is gone."""
        ns = dep["metadata"].get("namespace") or ""
        for ref in dep["metadata"].get("ownerReferences") or []:
            rt = self.registry.by_kind(ref.get("kind", ""), (ref.get("apiVersion") or "").rpartition("/")[0])
            if rt is None:
                continue
            owner_ns = ns if rt.namespaced else ""
            owner = self.get_ref(rt.key, owner_ns, ref.get("name", ""))
            if (owner is None or owner["metadata"].get("uid") != ref.get("uid") or FOREGROUND not in (owner["metadata"].get("finalizers") or [])
                    or self._live_dependents(ref.get("uid"))):
                continue
            new = clone(owner)
            rest = [f for f in new["metadata"]["finalizers"] if f != FOREGROUND]
            if rest:
                new["metadata"]["finalizers"] = rest
                self._commit(rt.key, owner_ns, owner["metadata"]["name"], new, "MODIFIED", owner, events)
            else:
                new["metadata"].pop("finalizers", None)
                self._commit(rt.key, owner_ns, owner["metadata"]["name"], None, "DELETED", new, events)
                self._release_owners(new, events)

    def _collect_dependents(self, owner: dict, propagation: str, events: list) -> None:
        uid = owner["metadata"].get("uid")
        for dkey, dns, dname in sorted(self._dependents.get(uid, ())):
            dep = self.get_ref(dkey, dns, dname)
            if dep is None:
                continue
            refs = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            alive = [r for r in refs if self._owner_alive(r, dns)]
            if propagation == "Orphan" or alive:
                new = clone(dep)
                if refs:
                    new["metadata"]["ownerReferences"] = refs
                else:
                    new["metadata"].pop("ownerReferences", None)
                self._commit(dkey, dns, dname, new, "MODIFIED", dep, events)
            elif not dep["metadata"].get("deletionTimestamp"):
                self._delete(dkey, dep, propagation, events)

    def _owner_alive(self, ref: dict, ns: str) -> bool:
        uid = ref.get("uid")
        rt = self.registry.by_kind(ref.get("kind", ""), (ref.get("apiVersion") or "").rpartition("/")[0])
        if rt is None:
            return False
        o = self.get_ref(rt.key, ns if rt.namespaced else None, ref.get("name", ""))
        return o is not None and o["metadata"].get("uid") == uid

    def _drop_crd_objects(self, crd: dict, events: list) -> None:
        spec = crd.get("spec") or {}
        key = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
        for e in self.entries(key):
            o = e.obj
            self._commit(key, o["metadata"].get("namespace") or "", o["metadata"]["name"], None, "DELETED", o, events)

    def _terminate_namespace(self, cur: dict, events: list) -> dict:
        if (cur.get("status") or {}).get("phase") == "Terminating":
            return cur
        new = clone(cur)
        new["metadata"]["deletionTimestamp"] = now_rfc3339()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        self._commit("namespaces", "", cur["metadata"]["name"], new, "MODIFIED", cur, events)
        return new

    def _finalize_namespace(self, name: str) -> None:
        events: list[Event] = []
        with self.lock:
            for key in list(self._data):
                if key == "namespaces":
                    continue
                for e in self.entries(key, name):
                    if self._entry(key, name, e.obj["metadata"]["name"]) is not None:
                        self._commit(key, name, e.obj["metadata"]["name"], None, "DELETED", e.obj, events)
            cur = self.get_ref("namespaces", None, name)
            if cur is not None and (cur.get("status") or {}).get("phase") == "Terminating":
                self._commit("namespaces", "", name, None, "DELETED", cur, events)
        self._notify(events)

    # ------------------------------------------------------------------ CRD helpers
    def drop_all(self, key: str) -> None:
        events: list[Event] = []
        with self.lock:
            for e in self.entries(key):
                o = e.obj
                self._commit(key, o["metadata"].get("namespace") or "", o["metadata"]["name"], None, "DELETED", o, events)
        self._notify(events)

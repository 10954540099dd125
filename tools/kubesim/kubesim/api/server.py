"""The HTTP layer of kubesim (aiohttp): routing, auth, discovery, OpenAPI stubs, CRUD, LIST,
WATCH, PATCH (merge / JSON / strategic / server-side apply), Table output, faults.

Not a real API server: see README.md for what is simplified.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import hashlib
import json
import random
import time
from typing import Any
from urllib.parse import unquote

import yaml
from aiohttp import web

from . import fieldmanager, protobuf, proxy, tables
from .admission import drop_nulls, service_account_admission, validate
from .defaults import CRD_KEY, apply_defaults, check_type, validate_crd, validate_name
from .errors import ApiError, not_found
from .patch import apply_merge, json_merge, json_patch, strategic_merge
from .registry import REVIEW_KEYS, ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .store import Entry, Event, clone

JSON = "application/json"
BOOKMARK_INTERVAL = 1.0
UNKNOWN_FORMAT = "the body of the request was in an unknown format - accepted media types include: "
STATUS_SUB_CREATE_KEEP = {"nodes", "namespaces", "services", CRD_KEY, "pods"}
try:
    _YAML_LOADER = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _YAML_LOADER = yaml.SafeLoader


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type=JSON, headers=headers)


def error_response(err: ApiError) -> web.Response:
    return json_response(err.status(), status=err.code, headers=err.headers or None)


def _truthy(v: str | None) -> bool:
    return (v or "").lower() in ("1", "true", "yes")


class Api:
    """Request handling; ``cluster`` supplies store, registry, settings and token."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.registry = cluster.registry
        self.settings = cluster.settings
        self.alloc = cluster.alloc
        self._openapi_cache: dict[tuple, bytes] = {}
        # counters for reliability tests and benches: GET /kubesim/v1/stats
        self.stats: dict[str, int] = {"resource_requests": 0, "faults_injected": 0, "faults_429": 0, "faults_5xx": 0}
        self._applied: dict[tuple, tuple[str, dict]] = {}     # (key, ns, name, manager) -> (uid, last applied config)

    # ------------------------------------------------------------------ entry
    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return web.Response(text="ok", content_type="text/plain")
        if not self.authenticated(request):
            return error_response(ApiError(401, "Unauthorized", "Unauthorized"))
        try:
            if path.startswith("/kubesim/v1/settings"):
                return await self.admin_settings(request)
            if path == "/kubesim/v1/stats":
                return json_response(dict(self.stats))
            if path == "/version" or path == "/version/":
                return json_response(self.version())
            if path.startswith("/openapi/"):
                return self.openapi(request)
            parts = [unquote(p) for p in path.strip("/").split("/")]
            if parts in (["api"], ["apis"]) and self._wants_aggregated(request):
                return self.aggregated(parts[0] == "api")
            if parts == ["api"]:
                return json_response({"kind": "APIVersions", "versions": ["v1"],
                                      "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})
            if parts == ["apis"]:
                return json_response(self.group_list())
            if parts[0] == "api" and len(parts) >= 2:
                group, version, rest = "", parts[1], parts[2:]
            elif parts[0] == "apis" and len(parts) >= 2:
                if len(parts) == 2:
                    return json_response(self.group(parts[1]))
                group, version, rest = parts[1], parts[2], parts[3:]
            else:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if not rest:
                return json_response(self.resource_list(group, version))
            await self.faults(request)
            return await self.resource(request, group, version, rest)
        except ApiError as err:
            return error_response(err)

    def authenticated(self, request: web.Request) -> bool:
        """Bearer token; or, only when no Authorization header is sent, a verified client certificate."""
        auth = request.headers.get("Authorization")
        if auth is not None:
            return auth == f"Bearer {self.cluster.token}"
        if self.cluster.client_cert_auth and request.transport is not None:
            peer = request.transport.get_extra_info("peercert")
            return bool(peer)
        return False

    async def faults(self, request: web.Request) -> None:
        s = self.settings
        self.stats["resource_requests"] += 1
        if s.fault_latency > 0:
            await asyncio.sleep(s.fault_latency)
        if s.fault_error_rate > 0 and (not s.fault_paths or s.fault_paths in request.path_qs) and random.random() < s.fault_error_rate:
            code = int(s.fault_error_code)
            self.stats["faults_injected"] += 1
            self.stats["faults_429" if code == 429 else "faults_5xx"] += 1
            if code == 429:
                raise ApiError(429, "TooManyRequests", "the server has received too many requests and has asked us to try again later (kubesim fault)",
                               {"retryAfterSeconds": int(s.fault_retry_after)}, {"Retry-After": str(int(s.fault_retry_after))})
            if code == 503:
                raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request (kubesim fault)",
                               {"retryAfterSeconds": int(s.fault_retry_after)}, {"Retry-After": str(int(s.fault_retry_after))})
            raise ApiError(code, "InternalError", "Internal error occurred: kubesim injected fault", {"causes": [{"message": "kubesim fault"}]})

    async def admin_settings(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return json_response(self.settings.as_dict())
        if request.method in ("PATCH", "PUT", "POST"):
            try:
                changes = json.loads(await request.read() or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("settings body must be a JSON object")
                return json_response(self.settings.update(changes))
            except ValueError as exc:
                return json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": str(exc),
                                      "reason": "BadRequest", "code": 400}, status=400)
        return error_response(ApiError(405, "MethodNotAllowed", "use GET or PATCH"))

    # ------------------------------------------------------------------ discovery
    def version(self) -> dict[str, Any]:
        v = self.settings.kubernetes_version
        major, minor = v.lstrip("v").split(".")[:2]
        return {"major": major, "minor": minor, "gitVersion": v, "gitCommit": "kubesim", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc", "platform": "linux/amd64",
                "emulationMajor": major, "emulationMinor": minor, "minCompatibilityMajor": major, "minCompatibilityMinor": minor}

    @staticmethod
    def _wants_aggregated(request: web.Request) -> bool:
        for part in request.headers.get("Accept", "").split(","):
            params = {k.strip(): v.strip() for k, _sep, v in (p.partition("=") for p in part.split(";")[1:])}
            if params.get("g") == "apidiscovery.k8s.io" and params.get("v") == "v2" and params.get("as") == "APIGroupDiscoveryList":
                return True
        return False

    def aggregated(self, core: bool) -> web.Response:
        """Aggregated discovery (apidiscovery.k8s.io/v2): what kubectl and helm ask for first; one
        request instead of one per group-version."""
        if core:
            groups = [("", ["v1"])]
        else:
            groups = sorted(self.registry.group_versions().items(),
                            key=lambda kv: (not kv[0].endswith("k8s.io") and "." in kv[0], kv[0]))
        items = []
        for g, vs in groups:
            versions = []
            for v in vs:
                resources = []
                for rt in sorted(self.registry.resources_in(g, v), key=lambda r: r.plural):
                    gvk = {"group": g, "version": v, "kind": rt.kind}
                    entry: dict[str, Any] = {"resource": rt.plural, "responseKind": gvk, "scope": "Namespaced" if rt.namespaced else "Cluster",
                                             "singularResource": rt.singular, "verbs": rt.verbs}
                    if rt.short_names:
                        entry["shortNames"] = rt.short_names
                    if rt.categories:
                        entry["categories"] = rt.categories
                    subs = []
                    for sub in rt.subresources:
                        if sub == "status":
                            subs.append({"subresource": "status", "responseKind": gvk, "verbs": ["get", "patch", "update"]})
                        elif sub == "scale":
                            subs.append({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                                         "verbs": ["get", "patch", "update"]})
                    if rt.key == "pods":
                        subs.append({"subresource": "log", "responseKind": {"group": "", "version": "", "kind": "Pod"}, "verbs": ["get"]})
                    if subs:
                        entry["subresources"] = subs
                    resources.append(entry)
                versions.append({"version": v, "resources": resources, "freshness": "Current"})
            items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": versions})
        body = {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
        return web.Response(body=dumps(body), headers={"Content-Type": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})

    def group(self, name: str) -> dict[str, Any]:
        vs = self.registry.group_versions().get(name)
        if not vs:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in vs]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": gvs, "preferredVersion": gvs[0]}

    def group_list(self) -> dict[str, Any]:
        groups = []
        for name, vs in sorted(self.registry.group_versions().items(), key=lambda kv: (not kv[0].endswith("k8s.io") and "." in kv[0], kv[0])):
            gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in vs]
            groups.append({"name": name, "versions": gvs, "preferredVersion": gvs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict[str, Any]:
        rts = self.registry.resources_in(group, version)
        if not rts:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = []
        for rt in sorted(rts, key=lambda r: r.plural):
            entry = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind, "verbs": rt.verbs,
                     "storageVersionHash": base64.b64encode(hashlib.sha256(rt.key.encode()).digest()[:8]).decode()}
            if rt.short_names:
                entry["shortNames"] = rt.short_names
            if rt.categories:
                entry["categories"] = rt.categories
            res.append(entry)
            for sub in rt.subresources:
                if sub == "status":
                    res.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced, "kind": rt.kind,
                                "verbs": ["get", "patch", "update"]})
                elif sub == "scale":
                    res.append({"name": f"{rt.plural}/scale", "singularName": "", "namespaced": rt.namespaced, "group": "autoscaling",
                                "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
            if rt.key in ("pods", "services"):
                res.append({"name": f"{rt.plural}/proxy", "singularName": "", "namespaced": True, "kind": f"{rt.kind}ProxyOptions",
                            "verbs": ["create", "delete", "get", "patch", "update"]})
            if rt.key == "pods":
                res.append({"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]})
                res.append({"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy", "version": "v1",
                            "kind": "Eviction", "verbs": ["create"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version, "resources": res}

    # ------------------------------------------------------------------ OpenAPI
    def openapi(self, request: web.Request) -> web.Response:
        """OpenAPI v3 stub: one document per group-version whose PATCH operations carry the
        ``x-kubernetes-group-version-kind`` extension and the ``fieldValidation`` query parameter,
        so kubectl and helm use server-side field validation (and never need the protobuf v2 doc)."""
        path = request.path.rstrip("/")
        if path == "/openapi/v2":
            raise ApiError(404, "NotFound", "kubesim serves OpenAPI v3 only (/openapi/v3)")
        gen = self.registry.generation
        if path == "/openapi/v3":
            paths = {}
            gvs = [("", "v1")] + [(g, v) for g, vs in self.registry.group_versions().items() for v in vs]
            for g, v in gvs:
                p = f"api/{v}" if not g else f"apis/{g}/{v}"
                h = hashlib.sha256(f"{gen}:{p}".encode()).hexdigest()[:32].upper()
                paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"}
            return json_response({"paths": paths})
        rel = path[len("/openapi/v3/"):]
        parts = rel.split("/")
        if parts[0] == "api" and len(parts) == 2:
            g, v = "", parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            g, v = parts[1], parts[2]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        cache_key = (gen, g, v)
        body = self._openapi_cache.get(cache_key)
        if body is None:
            body = dumps(self._openapi_gv(g, v))
            self._openapi_cache[cache_key] = body
        return web.Response(body=body, content_type=JSON, headers={"Cache-Control": "public, immutable"})

    def _openapi_gv(self, group: str, version: str) -> dict[str, Any]:
        rts = self.registry.resources_in(group, version)
        if not rts:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                  for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
        paths: dict[str, Any] = {}
        for rt in rts:
            gvk = {"group": group, "version": version, "kind": rt.kind}
            ns = "/namespaces/{namespace}" if rt.namespaced else ""
            item = f"{prefix}{ns}/{rt.plural}/{{name}}"
            coll = f"{prefix}{ns}/{rt.plural}"
            op = {"x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {"200": {"description": "OK"}}}
            paths[item] = {"get": dict(op, operationId=f"read{rt.kind}"), "put": dict(op, operationId=f"replace{rt.kind}"),
                           "patch": dict(op, operationId=f"patch{rt.kind}"), "delete": dict(op, operationId=f"delete{rt.kind}")}
            paths[coll] = {"post": dict(op, operationId=f"create{rt.kind}"), "get": dict(op, operationId=f"list{rt.kind}")}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes (kubesim)", "version": self.settings.kubernetes_version},
                "paths": paths, "components": {"schemas": {}}}

    # ------------------------------------------------------------------ resources
    def _lookup(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.get(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rt

    async def resource(self, request: web.Request, group: str, version: str, rest: list[str]) -> web.StreamResponse:
        ns: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            ns = rest[1]
            rest = rest[2:]
        if not group and ns is not None and rest[0] in ("services", "pods") and len(rest) >= 3 and rest[2] == "proxy":
            return await proxy.handle(self, request, rest[0], ns, rest[1])      # services/proxy, pods/proxy
        rt = self._lookup(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:]) if len(rest) > 2 else None
        if rt.namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rt.namespaced and ns is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        m = request.method
        q = request.query
        if name is None:
            if m == "GET":
                if _truthy(q.get("watch")):
                    return await self.watch(request, rt, version, ns, None)
                return self.list(request, rt, version, ns)
            if m == "POST":
                return await self.create(request, rt, version, ns)
            if m == "DELETE":
                return await self.delete_collection(request, rt, version, ns)
            raise ApiError(405, "MethodNotAllowed", f"{m} is not supported on a collection")
        if sub == "eviction" and rt.key == "pods" and m == "POST":
            return await self.evict(request, rt, ns, name)
        if sub is not None and sub not in ("status", "scale", "log", "finalize"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub in ("status", "scale") and sub not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "log":
            self._get_obj(rt, ns, name)
            return web.Response(text="", content_type="text/plain")
        if sub == "scale":
            return await self.scale(request, rt, version, ns, name)
        if m == "GET":
            if _truthy(q.get("watch")):
                return await self.watch(request, rt, version, ns, name)
            obj = self._get_obj(rt, ns, name)
            return self.respond_object(request, rt, version, obj)
        if m == "PUT":
            return await self.update(request, rt, version, ns, name, sub)
        if m == "PATCH":
            return await self.patch(request, rt, version, ns, name, sub)
        if m == "DELETE":
            return await self.delete(request, rt, version, ns, name)
        raise ApiError(405, "MethodNotAllowed", f"{m} is not supported")

    def _get_obj(self, rt: ResourceType, ns: str | None, name: str) -> dict:
        obj = self.store.get_ref(rt.key, ns, name)
        if obj is None:
            raise not_found(rt.plural, name, rt.group)
        return obj

    def _versioned(self, rt: ResourceType, version: str, obj: dict) -> dict:
        av = rt.api_version(version)
        if obj.get("apiVersion") != av:
            obj = dict(obj, apiVersion=av)
        return obj

    def _wants_table(self, request: web.Request) -> bool:
        acc = request.headers.get("Accept", "")
        return "as=Table" in acc and "meta.k8s.io" in acc

    def _wants_partial(self, request: web.Request) -> bool:
        acc = request.headers.get("Accept", "")
        return "as=PartialObjectMetadata" in acc

    def respond_object(self, request: web.Request, rt: ResourceType, version: str, obj: dict, status: int = 200) -> web.Response:
        obj = self._versioned(rt, version, obj)
        if self._wants_table(request):
            return json_response(tables.table(rt.key, [obj], request.query.get("includeObject", "Metadata"),
                                              rt.printer_columns.get(version), {"resourceVersion": obj["metadata"].get("resourceVersion", "")}),
                                 status)
        if self._wants_partial(request):
            return json_response(tables.partial(obj), status)
        return json_response(obj, status)

    # ------------------------------------------------------------------ list / watch
    def _filters(self, request: web.Request):
        return parse_label_selector(request.query.get("labelSelector")), parse_field_selector(request.query.get("fieldSelector"))

    def list(self, request: web.Request, rt: ResourceType, version: str, ns: str | None) -> web.Response:
        q = request.query
        lmatch, fmatch = self._filters(request)
        with self.store.lock:
            entries, keys = self.store.sorted_entries(rt.key, ns)
            rv = str(self.store.current_rv)
        cont = q.get("continue")
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                start_after = (token["ns"], token["name"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "continue key is not valid")
            entries = entries[bisect.bisect_right(keys, start_after):]
        if lmatch or fmatch:
            entries = [e for e in entries if (lmatch is None or lmatch((e.obj["metadata"].get("labels") or {})))
                       and (fmatch is None or fmatch(e.obj))]
        limit = int(q.get("limit") or 0)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if limit > 0 and len(entries) > limit:
            last = entries[limit - 1].obj["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(dumps({"ns": last.get("namespace") or "", "name": last["name"], "rv": rv})).decode()
            meta["remainingItemCount"] = len(entries) - limit
            entries = entries[:limit]
        if self._wants_table(request):
            objs = [self._versioned(rt, version, e.obj) for e in entries]
            return json_response(tables.table(rt.key, objs, q.get("includeObject", "Metadata"), rt.printer_columns.get(version), meta))
        if self._wants_partial(request):
            return json_response({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                                  "items": [tables.partial(e.obj) for e in entries]})
        av = rt.api_version(version)
        chunks = [e.json() if e.obj.get("apiVersion") == av else dumps(self._versioned(rt, version, e.obj)) for e in entries]
        head = dumps({"kind": rt.list_kind, "apiVersion": av, "metadata": meta})[:-1]
        body = head + b',"items":[' + b",".join(chunks) + b"]}"
        return web.Response(body=body, content_type=JSON)

    async def watch(self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str | None) -> web.StreamResponse:
        q = request.query
        lmatch, fmatch = self._filters(request)
        if name is not None:
            prev = fmatch

            def fmatch(o: dict, p=prev) -> bool:
                return o["metadata"]["name"] == name and (p is None or p(o))
        bookmarks = _truthy(q.get("allowWatchBookmarks"))
        timeout = float(q.get("timeoutSeconds") or 1800)
        drop = self.settings.fault_watch_drop_after
        if drop > 0:
            timeout = min(timeout, drop)
        table = self._wants_table(request)
        include = q.get("includeObject", "Metadata")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        key = rt.key

        def hook(ev: Event) -> None:
            if ev.key == key and (ns is None or ev.ns == ns):
                loop.call_soon_threadsafe(queue.put_nowait, ev)

        def matches(o: dict | None) -> bool:
            if o is None:
                return False
            return (lmatch is None or lmatch(o["metadata"].get("labels") or {})) and (fmatch is None or fmatch(o))

        rv_param = q.get("resourceVersion") or ""
        initial: list[tuple[str, dict]] = []
        expired = False
        with self.store.lock:
            start_rv = self.store.current_rv
            if rv_param in ("", "0"):
                initial = [("ADDED", e.obj) for e in self.store.entries(key, ns) if matches(e.obj)]
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resource version {rv_param!r}")
                hist = self.store.history
                if hist and len(hist) == hist.maxlen and since < hist[0].rv - 1:
                    expired = True
                else:
                    for ev in hist:
                        if ev.rv > since and ev.key == key and (ns is None or ev.ns == ns):
                            t = self._translate(ev, matches)
                            if t:
                                initial.append((t, ev.obj))
            if not expired:
                self.store.add_sync_hook(hook)
        resp = web.StreamResponse(status=200, headers={"Content-Type": JSON, "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def send(t: str, o: dict) -> None:
            o = self._versioned(rt, version, o)
            if table and t in ("ADDED", "MODIFIED", "DELETED"):
                o = tables.table(key, [o], include, rt.printer_columns.get(version), {"resourceVersion": o["metadata"].get("resourceVersion", "")})
            await resp.write(dumps({"type": t, "object": o}) + b"\n")

        try:
            if expired:
                err = ApiError(410, "Expired", f"too old resource version: {rv_param} ({self.store.history[0].rv - 1})")
                await resp.write(dumps({"type": "ERROR", "object": err.status()}) + b"\n")
                return resp
            for t, o in initial:
                await send(t, o)
            deadline = time.monotonic() + timeout
            last_rv = start_rv
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout=min(remaining, BOOKMARK_INTERVAL))
                except asyncio.TimeoutError:
                    if bookmarks and time.monotonic() < deadline:
                        await resp.write(dumps({"type": "BOOKMARK", "object": {
                            "kind": rt.kind, "apiVersion": rt.api_version(version),
                            "metadata": {"resourceVersion": str(max(last_rv, self.store.current_rv if queue.empty() else last_rv))}}}) + b"\n")
                    continue
                if ev.rv <= start_rv:
                    continue
                last_rv = ev.rv
                t = self._translate(ev, matches)
                if t:
                    await send(t, ev.obj)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.remove_sync_hook(hook)
        return resp

    @staticmethod
    def _translate(ev: Event, matches) -> str | None:
        if ev.type == "DELETED":
            return "DELETED" if matches(ev.obj) else None
        now_m = matches(ev.obj)
        old_m = matches(ev.old) if ev.type == "MODIFIED" else False
        if ev.type == "ADDED":
            return "ADDED" if now_m else None
        if now_m and old_m:
            return "MODIFIED"
        if now_m:
            return "ADDED"
        if old_m:
            return "DELETED"
        return None

    # ------------------------------------------------------------------ bodies
    async def body(self, request: web.Request, *, patch: bool = False) -> Any:
        raw = await request.read()
        ctype = (request.headers.get("Content-Type") or JSON).split(";")[0].strip().lower()
        if ctype == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(raw)
            except protobuf.Unsupported as exc:
                raise ApiError(415, "UnsupportedMediaType", f"{UNKNOWN_FORMAT}application/json, application/yaml ({exc})")
        if ctype in ("application/json", "application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json"):
            try:
                return json.loads(raw or b"null")
            except ValueError as exc:
                raise ApiError(400, "BadRequest", f"the body of the request could not be decoded: {exc}")
        if ctype in ("application/yaml", "application/apply-patch+yaml"):
            try:
                return yaml.load(raw or b"", Loader=_YAML_LOADER)  # noqa: S506 - CSafeLoader
            except yaml.YAMLError as exc:
                raise ApiError(400, "BadRequest", f"the body of the request could not be decoded: {exc}")
        raise ApiError(415, "UnsupportedMediaType",
                       f'{UNKNOWN_FORMAT}application/json, application/yaml, application/vnd.kubernetes.protobuf (got "{ctype}")')

    def _dry_run(self, request: web.Request) -> bool:
        return "All" in request.query.getall("dryRun", [])

    def _prepare(self, rt: ResourceType, version: str, obj: dict, ns: str | None, old: dict | None) -> dict:
        if not rt.crd and isinstance(obj, dict):
            obj = drop_nulls(obj)           # a built-in object is decoded into typed structs: nulls vanish
        check_type(rt, version, obj)
        md = obj.get("metadata")
        if md is None or not isinstance(md, dict):
            md = obj["metadata"] = {}
        if rt.namespaced:
            if md.get("namespace") and ns and md["namespace"] != ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        for k in ("labels", "annotations"):
            if k in md and md[k] is None:
                del md[k]
            for lk, lv in (md.get(k) or {}).items():
                if not isinstance(lv, str):
                    raise ApiError(400, "BadRequest", f"metadata.{k}.{lk}: expected a string, got {type(lv).__name__}")
        if old is None:
            validate_name(rt, obj)
        if rt.key == CRD_KEY:
            validate_crd(obj)
        if "status" in rt.subresources:
            if old is None:
                if rt.key not in STATUS_SUB_CREATE_KEEP and not rt.crd:
                    obj.pop("status", None)
                elif rt.crd:
                    obj.pop("status", None)
            else:
                if "status" in old:
                    obj["status"] = clone(old["status"])
                else:
                    obj.pop("status", None)
        obj = apply_defaults(rt, obj, old, self.alloc)
        validate(rt, obj, old)
        return obj

    def _admit(self, request: web.Request, rt: ResourceType, op: str, obj: dict, old: dict | None, ns: str | None) -> dict:
        if op == "CREATE" and rt.key == "pods":
            service_account_admission(self.store, obj)
        return self.store.admit(op, rt.key, obj, old, self._request_info(request, ns))

    def _manage(self, request: web.Request, rt: ResourceType, version: str, old: dict | None, obj: dict,
                applied: dict | None = None) -> None:
        """Record metadata.managedFields for this write (fieldmanager.py)."""
        manager = fieldmanager.manager_name(request.query.get("fieldManager"), request.headers.get("User-Agent"))
        obj.setdefault("metadata", {})["managedFields"] = fieldmanager.record(
            old, obj, manager=manager, api_version=rt.api_version(version), applied=applied,
            force=_truthy(request.query.get("force")))

    def _request_info(self, request: web.Request, ns: str | None) -> dict[str, Any]:
        return {"dry_run": self._dry_run(request), "namespace": ns, "field_manager": request.query.get("fieldManager")}

    # ------------------------------------------------------------------ writes
    async def review(self, request: web.Request, rt: ResourceType, version: str) -> web.Response:
        try:
            body = await self.body(request)
        except ApiError:
            body = {}                    # protobuf review bodies are not decoded: the answer does not depend on them
        spec = body.get("spec") if isinstance(body, dict) else None
        status: dict[str, Any]
        if rt.kind in ("SelfSubjectReview", "TokenReview"):
            status = {"userInfo": {"username": "kubesim-admin", "groups": ["system:masters", "system:authenticated"]}}
            if rt.kind == "TokenReview":
                status["authenticated"] = True
        elif rt.kind == "SelfSubjectRulesReview":
            status = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                      "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}
        else:
            status = {"allowed": True, "reason": "kubesim authorizes every authenticated request"}
        return json_response({"kind": rt.kind, "apiVersion": rt.api_version(version), "metadata": {"creationTimestamp": None},
                              "spec": spec or {}, "status": status}, 201)

    async def create(self, request: web.Request, rt: ResourceType, version: str, ns: str | None) -> web.Response:
        if rt.key in REVIEW_KEYS:
            return await self.review(request, rt, version)
        obj = await self.body(request)
        obj = self._prepare(rt, version, obj, ns, None)
        obj = self._admit(request, rt, "CREATE", obj, None, ns)
        self._manage(request, rt, version, None, obj)
        created = self.store.create(rt.key, obj, dry_run=self._dry_run(request))
        return self.respond_object(request, rt, version, created, 201)

    async def update(self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str, sub: str | None) -> web.Response:
        obj = await self.body(request)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body of the request was not a JSON object")
        md = obj.setdefault("metadata", {})
        if md.get("name") and md["name"] != name:
            raise ApiError(400, "BadRequest", f"the name of the object ({md['name']}) does not match the name on the URL ({name})")
        md["name"] = name
        old = self._get_obj(rt, ns, name)
        return self._write(request, rt, version, ns, obj, old, sub)

    def _write(self, request: web.Request, rt: ResourceType, version: str, ns: str | None, obj: dict, old: dict, sub: str | None,
               applied: dict | None = None) -> web.Response:
        dry = self._dry_run(request)
        if sub == "status":
            check_type(rt, version, obj)
            obj["metadata"]["namespace"] = ns
            new = self.store.update_status(rt.key, obj, dry_run=dry)
        else:
            obj = self._prepare(rt, version, obj, ns, old)
            obj = self._admit(request, rt, "UPDATE", obj, old, ns)
            self._manage(request, rt, version, old, obj, applied)
            new = self.store.update(rt.key, obj, dry_run=dry)
        return self.respond_object(request, rt, version, new)

    async def patch(self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str, sub: str | None) -> web.Response:
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        body = await self.body(request, patch=True)
        pinned = isinstance(body, dict) and bool((body.get("metadata") or {}).get("resourceVersion"))
        for attempt in range(8):
            try:
                return self._patch_once(request, rt, version, ns, name, sub, ctype, body)
            except ApiError as err:
                # like the real server: a patch without a resourceVersion is retried when a concurrent
                # writer (e.g. a controller thread) got in between the read and the write
                if pinned or attempt == 7 or err.code != 409 or err.reason not in ("Conflict", "AlreadyExists"):
                    raise
        raise AssertionError("unreachable")

    def _patch_once(self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str, sub: str | None,
                    ctype: str, body: Any) -> web.Response:
        old = self.store.get_ref(rt.key, ns, name)
        if ctype == "application/apply-patch+yaml":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "apply patch must be an object")
            if not request.query.get("fieldManager"):
                raise ApiError(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
            body_md = body.get("metadata") or {}
            if body_md.get("name") and body_md["name"] != name:
                raise ApiError(400, "BadRequest", f"the name of the object ({body_md['name']}) does not match the name on the URL ({name})")
            if old is None:
                if sub:
                    raise not_found(rt.plural, name, rt.group)
                obj = clone(body)
                obj.setdefault("metadata", {})["name"] = name
                obj = self._prepare(rt, version, obj, ns, None)
                obj = self._admit(request, rt, "CREATE", obj, None, ns)
                self._manage(request, rt, version, None, obj, body if rt.crd else drop_nulls(body))
                created = self.store.create(rt.key, obj, dry_run=self._dry_run(request))
                if not self._dry_run(request):
                    self._applied[(rt.key, ns, name, request.query["fieldManager"])] = (created["metadata"]["uid"], clone(body))
                return self.respond_object(request, rt, version, created, 201)
            applied = clone(body)
            if isinstance(applied.get("metadata"), dict):
                applied["metadata"].pop("resourceVersion", None)
            akey = (rt.key, ns, name, request.query["fieldManager"])
            prev = self._applied.get(akey)
            new = apply_merge(old, applied, prev[1] if prev and prev[0] == old["metadata"]["uid"] else None)
            if not self._dry_run(request):
                self._applied[akey] = (old["metadata"]["uid"], clone(body))
        else:
            if old is None:
                raise not_found(rt.plural, name, rt.group)
            if ctype == "application/merge-patch+json":
                new = json_merge(old, body)
            elif ctype == "application/json-patch+json":
                new = json_patch(old, body)
            elif ctype == "application/strategic-merge-patch+json":
                if rt.crd:
                    raise ApiError(415, "UnsupportedMediaType", "strategic merge patch is not supported for custom resources; use a JSON merge patch")
                new = strategic_merge(old, body)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"{UNKNOWN_FORMAT}application/json-patch+json, application/merge-patch+json, "
                                                            f'application/apply-patch+yaml, application/strategic-merge-patch+json (got "{ctype}")')
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "the patch produced something that is not an object")
        new_md = new.setdefault("metadata", {})
        if (new_md.get("name") or name) != name:
            raise ApiError(400, "BadRequest", "the name of the object cannot be changed by a patch")
        new_md["name"] = name
        if not (isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion")) and ctype != "application/json-patch+json":
            new_md["resourceVersion"] = old["metadata"]["resourceVersion"]
        applied_cfg = None
        if ctype == "application/apply-patch+yaml":
            applied_cfg = body if rt.crd else drop_nulls(body)
        return self._write(request, rt, version, ns, new, old, sub, applied_cfg)

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        opts: dict[str, Any] = {}
        if raw:
            ctype = (request.headers.get("Content-Type") or JSON).split(";")[0].strip().lower()
            try:
                opts = protobuf.decode(raw) if ctype == "application/vnd.kubernetes.protobuf" else json.loads(raw)
            except (ValueError, protobuf.Unsupported):
                opts = {}
        q = request.query
        if q.get("propagationPolicy"):
            opts["propagationPolicy"] = q["propagationPolicy"]
        if q.get("gracePeriodSeconds") is not None:
            opts["gracePeriodSeconds"] = q.get("gracePeriodSeconds")
        if q.get("orphanDependents") is not None:
            opts["orphanDependents"] = _truthy(q.get("orphanDependents"))
        if q.getall("dryRun", []):
            opts["dryRun"] = q.getall("dryRun")
        return opts if isinstance(opts, dict) else {}

    def _propagation(self, rt: ResourceType, opts: dict) -> str:
        p = opts.get("propagationPolicy")
        if p:
            if p not in ("Background", "Foreground", "Orphan"):
                raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{p}"')
            return p
        if opts.get("orphanDependents") is True:
            return "Orphan"
        return "Background"

    @staticmethod
    def _grace(opts: dict) -> int | None:
        g = opts.get("gracePeriodSeconds")
        if g is None:
            return None
        try:
            return max(0, int(g))
        except (TypeError, ValueError):
            raise ApiError(400, "BadRequest", f'invalid gracePeriodSeconds "{g}": an integer is required') from None

    async def delete(self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str) -> web.Response:
        opts = await self._delete_options(request)
        dry = "All" in (opts.get("dryRun") or [])
        obj = self.store.delete(rt.key, ns, name, self._propagation(rt, opts), dry_run=dry, preconditions=opts.get("preconditions"),
                                grace_period=self._grace(opts))
        if obj is None:
            raise not_found(rt.plural, name, rt.group)
        if dry or obj["metadata"].get("deletionTimestamp") and self.store.get_ref(rt.key, ns, name) is not None:
            return self.respond_object(request, rt, version, obj)
        if rt.key == "pods":
            return self.respond_object(request, rt, version, obj)
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": obj["metadata"].get("uid")}})

    async def evict(self, request: web.Request, rt: ResourceType, ns: str | None, name: str) -> web.Response:
        """POST pods/<name>/eviction (policy/v1 Eviction): the pod is deleted (PodDisruptionBudgets are not checked)."""
        body = await self.body(request)
        opts = (body or {}).get("deleteOptions") or {} if isinstance(body, dict) else {}
        self._get_obj(rt, ns, name)
        self.store.delete(rt.key, ns, name, self._propagation(rt, opts), dry_run="All" in (opts.get("dryRun") or []),
                          preconditions=opts.get("preconditions"), grace_period=self._grace(opts))
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)

    async def delete_collection(self, request: web.Request, rt: ResourceType, version: str, ns: str | None) -> web.Response:
        opts = await self._delete_options(request)
        dry = "All" in (opts.get("dryRun") or [])
        lmatch, fmatch = self._filters(request)
        deleted = []
        for e in self.store.entries(rt.key, ns):
            o = e.obj
            if (lmatch is None or lmatch(o["metadata"].get("labels") or {})) and (fmatch is None or fmatch(o)):
                try:
                    deleted.append(self.store.delete(rt.key, o["metadata"].get("namespace"), o["metadata"]["name"],
                                                     self._propagation(rt, opts), dry_run=dry, grace_period=self._grace(opts)))
                except ApiError:
                    pass
        return json_response({"kind": rt.list_kind, "apiVersion": rt.api_version(version),
                              "metadata": {"resourceVersion": str(self.store.current_rv)},
                              "items": [self._versioned(rt, version, d) for d in deleted if d]})

    async def scale(self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str) -> web.Response:
        old = self._get_obj(rt, ns, name)

        def as_scale(o: dict) -> dict:
            md = o["metadata"]
            sel = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                    "metadata": {"name": md["name"], "namespace": md.get("namespace"), "uid": md.get("uid"),
                                 "resourceVersion": md.get("resourceVersion"), "creationTimestamp": md.get("creationTimestamp")},
                    "spec": {"replicas": (o.get("spec") or {}).get("replicas", 1)},
                    "status": {"replicas": (o.get("status") or {}).get("replicas", 0),
                               "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items()))}}

        if request.method == "GET":
            return json_response(as_scale(old))
        body = await self.body(request, patch=True)
        cur = as_scale(old)
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if request.method == "PUT":
            new_scale = body
        elif ctype == "application/json-patch+json":
            new_scale = json_patch(cur, body)
        else:
            new_scale = json_merge(cur, body)
        replicas = ((new_scale or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas!r}')
        new = clone(old)
        new.setdefault("spec", {})["replicas"] = replicas
        rv = ((new_scale or {}).get("metadata") or {}).get("resourceVersion")
        if rv:
            new["metadata"]["resourceVersion"] = rv
        stored = self.store.update(rt.key, new, dry_run=self._dry_run(request))
        return json_response(as_scale(stored))


def make_app(cluster) -> web.Application:
    api = Api(cluster)
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", api.handle)
    app["api"] = api
    return app


__all__ = ["Api", "make_app", "Entry"]

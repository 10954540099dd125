"""Patch semantics: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch.

Strategic merge follows the Kubernetes rules for the fields the project's manifests use:
lists of objects merge by a merge key (containers/initContainers/volumes/env/imagePullSecrets
by ``name``, container ports by ``containerPort``, service ports by ``port``, volumeMounts by
``mountPath``, conditions by ``type``, ownerReferences by ``uid``, hostAliases by ``ip``),
``finalizers`` merge as a set, other lists are replaced.  Directives: ``$patch: delete`` /
``replace`` / ``merge``, ``$retainKeys``, ``$deleteFromPrimitiveList/<f>``,
``$setElementOrder/<f>`` (honoured for ordering), and ``null`` to delete a key.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .store import clone

MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "webhooks": "name",          # Mutating/ValidatingWebhookConfiguration (patchMergeKey=name): helm upgrades keep istiod's caBundle
    "subsets": None,
}
SET_LISTS = {"finalizers"}


def json_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = json_merge(result.get(k), v)
    return result


def _ptr(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise ApiError(422, "Invalid", f"JSON patch path not found: /{'/'.join(parts)}")
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise ApiError(422, "Invalid", f"JSON patch path not found: /{'/'.join(parts)}")
    return cur


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    doc = clone(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise ApiError(400, "BadRequest", f"invalid json patch operation {op!r}")
        kind = op["op"]
        parts = _ptr(op.get("path", ""))
        if kind in ("move", "copy"):
            src = _ptr(op.get("from", ""))
            value = clone(_resolve(doc, src))
            if kind == "move":
                doc = _remove(doc, src)
            doc = _add(doc, parts, value)
        elif kind == "add":
            doc = _add(doc, parts, clone(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, parts)
        elif kind == "replace":
            _resolve(doc, parts)
            doc = _remove(doc, parts)
            doc = _add(doc, parts, clone(op.get("value")))
        elif kind == "test":
            if _resolve(doc, parts) != op.get("value"):
                raise ApiError(422, "Invalid", f"json patch test operation failed at {op.get('path')}")
        else:
            raise ApiError(400, "BadRequest", f"unknown json patch operation {kind!r}")
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError:
                raise ApiError(422, "Invalid", f"invalid list index {last!r}")
            if idx > len(parent):
                raise ApiError(422, "Invalid", f"list index {idx} out of range")
            parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, "Invalid", f"cannot add at /{'/'.join(parts)}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return None
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    try:
        if isinstance(parent, list):
            del parent[int(last)]
        else:
            del parent[last]
    except (KeyError, ValueError, IndexError, TypeError):
        raise ApiError(422, "Invalid", f"JSON patch path not found: /{'/'.join(parts)}")
    return doc


def _merge_key(field: str, items: list) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), None)
        if sample is not None and "containerPort" in sample:
            return "containerPort"
        return "port"
    return MERGE_KEYS.get(field)


def strategic_merge(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to ``target`` (returns a new object)."""
    if not isinstance(patch, dict):
        return clone(patch)
    if not isinstance(target, dict):
        target = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = clone(target)
    retain = patch.get("$retainKeys")
    orders: dict[str, list] = {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(result.get(f), list):
                result[f] = [x for x in result[f] if x not in (v or [])]
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            merged = strategic_merge(result.get(k), v)
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        elif isinstance(v, list):
            result[k] = _merge_list(k, result.get(k), v)
        else:
            result[k] = v
    if isinstance(retain, list):
        for k in list(result):
            if k not in retain and k not in patch:
                result.pop(k)
    for f, order in orders.items():
        if isinstance(result.get(f), list):
            result[f] = _apply_order(f, result[f], order)
    return result


def _merge_list(field: str, current: Any, patch: list) -> list:
    if field in SET_LISTS:
        out = list(current) if isinstance(current, list) else []
        for x in patch:
            if x not in out:
                out.append(x)
        return out
    if not patch or not all(isinstance(i, dict) for i in patch):
        return clone(patch)
    mk = _merge_key(field, patch)
    if mk is None or not isinstance(current, list):
        return [i for i in (strategic_merge({}, x) if x.get("$patch") != "delete" else None for x in patch) if i is not None] if mk else clone(patch)
    if any(i.get("$patch") == "replace" for i in patch):
        return [clone({k: v for k, v in i.items() if k != "$patch"}) for i in patch if i.get("$patch") != "replace"]
    out = [clone(i) for i in current]
    for item in patch:
        keyval = item.get(mk)
        idx = next((n for n, c in enumerate(out) if isinstance(c, dict) and c.get(mk) == keyval), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, item))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


def _apply_order(field: str, items: list, order: list) -> list:
    if not order:
        return items
    if all(not isinstance(o, dict) for o in order):
        rank = {o: n for n, o in enumerate(order)}
        return sorted(items, key=lambda x: rank.get(x, len(rank)) if not isinstance(x, dict) else len(rank))
    mk = _merge_key(field, order)
    if not mk:
        return items
    rank = {o.get(mk): n for n, o in enumerate(order) if isinstance(o, dict)}
    return sorted(items, key=lambda x: rank.get(x.get(mk), len(rank)) if isinstance(x, dict) else len(rank))


def prune(live: Any, prev: Any, new: Any, field: str = "") -> Any:
    """Remove from ``live`` what ``prev`` (a manager's last applied configuration) set and
    ``new`` (its current one) no longer sets."""
    if isinstance(live, dict) and isinstance(prev, dict):
        new = new if isinstance(new, dict) else {}
        out = dict(live)
        for k, pv in prev.items():
            if k not in new:
                out.pop(k, None)
            elif k in out:
                out[k] = prune(out[k], pv, new[k], k)
        return out
    if isinstance(live, list) and isinstance(prev, list) and isinstance(new, list):
        items = [i for i in prev + new if isinstance(i, dict)]
        mk = _merge_key(field, items) if items else None
        if mk and all(isinstance(i, dict) for i in prev + new + live):
            gone = {i.get(mk) for i in prev} - {i.get(mk) for i in new}
            prev_by = {i.get(mk): i for i in prev}
            new_by = {i.get(mk): i for i in new}
            return [prune(i, prev_by.get(i.get(mk)), new_by.get(i.get(mk)), "") if i.get(mk) in prev_by and i.get(mk) in new_by else i
                    for i in live if i.get(mk) not in gone]
    return live


def apply_merge(live: dict, applied: dict, previous: dict | None = None) -> dict:
    """Server-side apply, simplified: fields this field manager applied last time and no longer
    applies are removed, then the applied configuration is strategic-merged onto the live object
    (lists with merge keys merge, other lists and scalars are set).  There is no per-field
    ownership between managers, so applies never conflict (``force`` is accepted and ignored)."""
    base = prune(live, previous, applied) if previous else live
    return strategic_merge(base, applied)

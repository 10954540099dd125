"""metadata.managedFields as the API server's field manager keeps them (simplified).

Every write records, per manager, the fields it set: ``manager`` (the ``fieldManager`` query
parameter, else the User-Agent up to its first ``/``, as the real server derives it),
``operation`` (``Update`` or ``Apply``), ``apiVersion``, ``time``, ``fieldsType: FieldsV1`` and a
``fieldsV1`` set computed from the object's fields. A create gives the creating manager every
field; an update or non-apply patch gives the writer the fields whose values it changed and takes
them from the other managers; a server-side apply gives the applier exactly the fields of its
applied configuration and conflicts (409) with another manager that owns a field the apply would
change, unless ``force=true`` (then the field changes hands).

Simplified: list items are keyed by their usual merge key (``name``, ``containerPort``, ``port``,
``type``, ...) when they have one and are atomic otherwise; status is never tracked.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .errors import ApiError

Path = tuple[str, ...]
MERGE_KEYS = ("name", "containerPort", "port", "type", "ip", "mountPath", "devicePath", "uid", "topologyKey")
METADATA_TRACKED = ("labels", "annotations", "ownerReferences", "finalizers")


def manager_name(field_manager: str | None, user_agent: str | None) -> str:
    if field_manager:
        return field_manager
    ua = (user_agent or "").split("/", 1)[0].strip()
    return ua[:128] or "unknown"


def _item_key(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    for k in MERGE_KEYS:
        if k in item and isinstance(item[k], (str, int)):
            extra = {"protocol": item["protocol"]} if k in ("containerPort", "port") and "protocol" in item else {}
            return "k:" + json.dumps({k: item[k], **extra}, separators=(",", ":"), sort_keys=True)
    return None


def leaves(obj: dict[str, Any]) -> dict[Path, Any]:
    """{path: value} for every owned leaf of an object (paths use FieldsV1 element names)."""
    out: dict[Path, Any] = {}
    for k, v in obj.items():
        if k in ("apiVersion", "kind", "status"):
            continue
        if k == "metadata":
            for mk in METADATA_TRACKED:
                if mk in (v or {}):
                    _walk(v[mk], ("f:metadata", "f:" + mk), out)
            continue
        _walk(v, ("f:" + k,), out)
    return out


def _walk(v: Any, path: Path, out: dict[Path, Any]) -> None:
    if isinstance(v, dict) and v:
        if len(path) > 1 or path[0] not in ("f:spec", "f:metadata"):
            out[path + (".",)] = None
        for k, sub in v.items():
            _walk(sub, path + ("f:" + k,), out)
    elif isinstance(v, list) and v and all(_item_key(i) for i in v) and len({_item_key(i) for i in v}) == len(v):
        for item in v:
            ipath = path + (_item_key(item),)  # type: ignore[operator]
            out[ipath + (".",)] = None
            for k, sub in item.items():
                _walk(sub, ipath + ("f:" + k,), out)
    elif isinstance(v, list) and v and all(isinstance(i, str) for i in v) and path[-1] == "f:finalizers":
        for item in v:
            out[path + ("v:" + json.dumps(item),)] = None
    else:
        out[path] = v


def to_fields_v1(paths: set[Path] | list[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for p in sorted(paths):
        node = root
        for el in p:
            node = node.setdefault(el, {})
    return root


def from_fields_v1(fields: dict[str, Any] | None, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for k, sub in (fields or {}).items():
        p = prefix + (k,)
        if sub:
            out |= from_fields_v1(sub, p)
        else:
            out.add(p)
    return out


def path_string(p: Path) -> str:
    """.spec.replicas / .spec.containers[name="app"].image, as the real conflict message prints it."""
    s = ""
    for el in p:
        if el == ".":
            continue
        if el.startswith("f:"):
            s += "." + el[2:]
        elif el.startswith("k:"):
            s += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(el[2:]).items()) + "]"
        elif el.startswith("v:"):
            s += "[=" + el[2:] + "]"
    return s


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], subresource: str | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": api_version,
                         "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "fieldsType": "FieldsV1",
                         "fieldsV1": to_fields_v1(paths)}
    if subresource:
        e["subresource"] = subresource
    return e


def _prune(paths: set[Path], live: dict[Path, Any]) -> set[Path]:
    return {p for p in paths if p in live}


def record(old: dict[str, Any] | None, new: dict[str, Any], *, manager: str, api_version: str,
           applied: dict[str, Any] | None = None, force: bool = False, subresource: str | None = None) -> list[dict[str, Any]]:
    """The managedFields of ``new`` after ``manager`` wrote it (raises 409 on an apply conflict)."""
    entries = [dict(e) for e in ((old or {}).get("metadata") or {}).get("managedFields") or [] if isinstance(e, dict)]
    new_leaves = leaves(new)
    if old is None and applied is None:
        return [_entry(manager, "Update", api_version, set(new_leaves), subresource)]
    old_leaves = leaves(old) if old is not None else {}
    operation = "Apply" if applied is not None else "Update"
    owned = {(e.get("manager"), e.get("operation"), e.get("subresource")): from_fields_v1(e.get("fieldsV1")) for e in entries}
    me = (manager, operation, subresource)
    if applied is not None:
        mine = set(leaves(applied)) & set(new_leaves) | {p for p in leaves(applied) if p[-1] == "."}
        mine = _prune(mine, new_leaves)
        conflicts = []
        for other, paths in owned.items():
            if other == me:
                continue
            for p in sorted(paths & mine):
                if p[-1] != "." and p in old_leaves and old_leaves[p] != new_leaves.get(p):
                    conflicts.append((other, p))
        if conflicts and not force:
            raise conflict_error(conflicts, entries)
        taken = {p for _o, p in conflicts}
        changed = taken
    else:
        changed = {p for p in set(new_leaves) | set(old_leaves) if new_leaves.get(p, KeyError) != old_leaves.get(p, KeyError)}
        if not changed:
            return entries
        mine = (owned.get(me, set()) | (changed & set(new_leaves)))
    result: list[dict[str, Any]] = []
    slot = None
    for e in entries:
        k = (e.get("manager"), e.get("operation"), e.get("subresource"))
        if k == me:
            slot = len(result)             # the writer's entry keeps its place
            continue
        paths = _prune(owned[k] - changed, new_leaves)
        if {p for p in paths if p[-1] != "."}:
            result.append({**e, "fieldsV1": to_fields_v1(paths)})
    mine = _prune(mine, new_leaves)
    mine |= {p[:i] + (".",) for p in mine for i in range(1, len(p)) if p[:i] + (".",) in new_leaves}
    if mine or applied is not None:
        result.insert(len(result) if slot is None else slot, _entry(manager, operation, api_version, mine, subresource))
    return result


def comparable(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """managedFields without their times: a write that changes only times is a no-op."""
    return [{k: v for k, v in e.items() if k != "time"} for e in entries or [] if isinstance(e, dict)]


def conflict_error(conflicts: list[tuple[tuple[Any, Any, Any], Path]], entries: list[dict[str, Any]]) -> ApiError:
    """409 with the message and causes of the real server's apply conflict."""
    by_key = {(e.get("manager"), e.get("operation"), e.get("subresource")): e for e in entries}

    def who(k: tuple[Any, Any, Any]) -> str:
        e = by_key.get(k) or {}
        s = json.dumps(k[0])
        if k[2]:
            s += f" with subresource {json.dumps(k[2])}"
        if k[1] == "Update":
            s += f" using {e.get('apiVersion')}"      # the manager identifier carries no time
        return s

    if len(conflicts) == 1:
        msg = f"Apply failed with 1 conflict: conflict with {who(conflicts[0][0])}: {path_string(conflicts[0][1])}"
    else:
        lines = []
        for k in sorted({c[0] for c in conflicts}, key=lambda x: str(x[0])):
            lines.append(f"conflicts with {who(k)}:")
            lines += [f"- {path_string(p)}" for o, p in conflicts if o == k]
        msg = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who(o)}", "field": path_string(p)} for o, p in conflicts]
    return ApiError(409, "Conflict", msg, {"causes": causes})

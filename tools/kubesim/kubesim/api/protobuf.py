"""Decoder for Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``).

client-go sends typed built-in objects as protobuf: a 4-byte magic ``k8s\\x00`` followed by a
``runtime.Unknown`` message whose ``raw`` field holds the typed message.  This is a small wire
decoder with hand-written field tables for the kinds our clients send that way (Secret,
ConfigMap, Namespace, ServiceAccount, Role/ClusterRole/RoleBinding/ClusterRoleBinding and
DeleteOptions; ObjectMeta with labels, annotations, ownerReferences, finalizers).  Anything else raises ``Unsupported`` -> HTTP 415.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

MAGIC = b"k8s\x00"


class Unsupported(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise Unsupported("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise Unsupported("varint too long")


def fields(buf: bytes):
    """Yield (field_number, wire_type, value) for a protobuf message."""
    pos = 0
    n = len(buf)
    while pos < n:
        tag, pos = _varint(buf, pos)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            if pos + ln > n:
                raise Unsupported("truncated length-delimited field")
            val = buf[pos:pos + ln]
            pos += ln
        elif wt == 1:
            val = buf[pos:pos + 8]
            pos += 8
        elif wt == 5:
            val = buf[pos:pos + 4]
            pos += 4
        else:
            raise Unsupported(f"unsupported wire type {wt}")
        yield num, wt, val


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= (1 << 63) else v


# Schema: field number -> (json name, type, sub-schema).  Types: str, bytes, int, bool, msg,
# map_str, map_bytes, rep_str, rep_msg, time.
TIME = {1: ("seconds", "int", None), 2: ("nanos", "int", None)}
OWNER_REF = {1: ("kind", "str", None), 3: ("name", "str", None), 4: ("uid", "str", None),
             5: ("apiVersion", "str", None), 6: ("controller", "bool", None), 7: ("blockOwnerDeletion", "bool", None)}
OBJECT_META = {
    1: ("name", "str", None), 2: ("generateName", "str", None), 3: ("namespace", "str", None),
    5: ("uid", "str", None), 6: ("resourceVersion", "str", None), 7: ("generation", "int", None),
    8: ("creationTimestamp", "time", None), 9: ("deletionTimestamp", "time", None),
    10: ("deletionGracePeriodSeconds", "int", None), 11: ("labels", "map_str", None),
    12: ("annotations", "map_str", None), 13: ("ownerReferences", "rep_msg", OWNER_REF),
    14: ("finalizers", "rep_str", None),
}
OBJECT_REF = {1: ("kind", "str", None), 2: ("namespace", "str", None), 3: ("name", "str", None), 4: ("uid", "str", None),
              5: ("apiVersion", "str", None), 6: ("resourceVersion", "str", None), 7: ("fieldPath", "str", None)}
LOCAL_REF = {1: ("name", "str", None)}
SUBJECT = {1: ("kind", "str", None), 2: ("apiGroup", "str", None), 3: ("name", "str", None), 4: ("namespace", "str", None)}
ROLE_REF = {1: ("apiGroup", "str", None), 2: ("kind", "str", None), 3: ("name", "str", None)}
POLICY_RULE = {1: ("verbs", "rep_str", None), 2: ("apiGroups", "rep_str", None), 3: ("resources", "rep_str", None),
               4: ("resourceNames", "rep_str", None), 5: ("nonResourceURLs", "rep_str", None)}
LABEL_SELECTOR = {1: ("matchLabels", "map_str", None)}
BINDING = {1: ("metadata", "msg", OBJECT_META), 2: ("subjects", "rep_msg", SUBJECT), 3: ("roleRef", "msg", ROLE_REF)}
SCHEMAS: dict[str, dict] = {
    "ClusterRoleBinding": BINDING,
    "RoleBinding": BINDING,
    "Role": {1: ("metadata", "msg", OBJECT_META), 2: ("rules", "rep_msg", POLICY_RULE)},
    "ClusterRole": {1: ("metadata", "msg", OBJECT_META), 2: ("rules", "rep_msg", POLICY_RULE),
                    3: ("aggregationRule", "msg", {1: ("clusterRoleSelectors", "rep_msg", LABEL_SELECTOR)})},
    "Secret": {1: ("metadata", "msg", OBJECT_META), 2: ("data", "map_bytes", None), 3: ("type", "str", None),
               4: ("stringData", "map_str", None), 5: ("immutable", "bool", None)},
    "ConfigMap": {1: ("metadata", "msg", OBJECT_META), 2: ("data", "map_str", None), 3: ("binaryData", "map_bytes", None),
                  4: ("immutable", "bool", None)},
    "Namespace": {1: ("metadata", "msg", OBJECT_META), 2: ("spec", "msg", {1: ("finalizers", "rep_str", None)}),
                  3: ("status", "msg", {1: ("phase", "str", None)})},
    "ServiceAccount": {1: ("metadata", "msg", OBJECT_META), 2: ("secrets", "rep_msg", OBJECT_REF),
                       3: ("imagePullSecrets", "rep_msg", LOCAL_REF), 4: ("automountServiceAccountToken", "bool", None)},
    "DeleteOptions": {1: ("gracePeriodSeconds", "int", None),
                      2: ("preconditions", "msg", {1: ("uid", "str", None), 2: ("resourceVersion", "str", None)}),
                      3: ("orphanDependents", "bool", None), 4: ("propagationPolicy", "str", None), 5: ("dryRun", "rep_str", None)},
}


def _decode(buf: bytes, schema: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for num, _wt, val in fields(buf):
        spec = schema.get(num)
        if spec is None:
            continue                       # unknown or unneeded field (managedFields, ...)
        name, typ, sub = spec
        if typ == "str":
            if val:                        # gogo-protobuf writes empty strings; JSON omits them
                out[name] = val.decode()
        elif typ == "bytes":
            out[name] = base64.b64encode(val).decode()
        elif typ == "int":
            if val or name in ("gracePeriodSeconds", "deletionGracePeriodSeconds"):
                out[name] = _int64(val)
        elif typ == "bool":
            out[name] = bool(val)
        elif typ == "msg":
            sub_obj = _decode(val, sub)
            if sub_obj or name == "metadata":
                out[name] = sub_obj
        elif typ == "time":
            t = _decode(val, TIME)
            if not t.get("seconds"):
                continue
            out[name] = datetime.datetime.fromtimestamp(t.get("seconds", 0), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif typ in ("map_str", "map_bytes"):
            k = v = None
            for n2, _wire, v2 in fields(val):
                if n2 == 1:
                    k = v2.decode()
                elif n2 == 2:
                    v = v2
            v = v or b""
            out.setdefault(name, {})[k or ""] = v.decode() if typ == "map_str" else base64.b64encode(v).decode()
        elif typ == "rep_str":
            out.setdefault(name, []).append(val.decode())
        elif typ == "rep_msg":
            out.setdefault(name, []).append(_decode(val, sub))
    return out


def decode(body: bytes) -> dict[str, Any]:
    """Decode a k8s protobuf envelope into the JSON form of the object; raises Unsupported."""
    if not body.startswith(MAGIC):
        raise Unsupported("missing k8s protobuf magic prefix")
    type_meta: dict[str, Any] = {}
    raw = b""
    for num, _wire, val in fields(body[len(MAGIC):]):
        if num == 1:
            type_meta = _decode(val, {1: ("apiVersion", "str", None), 2: ("kind", "str", None)})
        elif num == 2:
            raw = val
        elif num == 3 and val:
            raise Unsupported(f"unsupported content encoding {val!r}")
    kind = type_meta.get("kind", "")
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise Unsupported(f"kubesim cannot decode protobuf for kind {kind!r} (send JSON)")
    obj = _decode(raw, schema)
    return {"apiVersion": type_meta.get("apiVersion") or "v1", "kind": kind, **obj}


# --- encoder (used by the tests to send protobuf the way client-go does) -------------------

def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _enc_varint(num << 3 | 2) + _enc_varint(len(payload)) + payload


def _encode(obj: dict[str, Any], schema: dict) -> bytes:
    out = bytearray()
    for num, (name, typ, sub) in sorted(schema.items()):
        if name not in obj or obj[name] is None:
            continue
        val = obj[name]
        if typ == "str":
            out += _field(num, val.encode())
        elif typ in ("int", "bool"):
            out += _enc_varint(num << 3) + _enc_varint(int(val))
        elif typ == "msg":
            out += _field(num, _encode(val, sub))
        elif typ in ("map_str", "map_bytes"):
            for k in sorted(val):
                v = val[k].encode() if typ == "map_str" else base64.b64decode(val[k])
                out += _field(num, _field(1, k.encode()) + _field(2, v))
        elif typ == "rep_str":
            for v in val:
                out += _field(num, v.encode())
        elif typ == "rep_msg":
            for v in val:
                out += _field(num, _encode(v, sub))
    return bytes(out)


def encode(obj: dict[str, Any]) -> bytes:
    """Encode a supported kind into the k8s protobuf envelope (test helper)."""
    kind = obj["kind"]
    raw = _encode(obj, SCHEMAS[kind])
    tm = _field(1, obj.get("apiVersion", "v1").encode()) + _field(2, kind.encode())
    return MAGIC + _field(1, tm) + _field(2, raw) + _field(3, b"") + _field(4, b"")

"""Label and field selectors as the Kubernetes API server parses them (simplified but compatible)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import ApiError

_REQ = re.compile(
    r"""\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*
        (?:(?P<op>==|=|!=)\s*(?P<val>[A-Za-z0-9_.-]*)
          |\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\)
        )?\s*""",
    re.X,
)


def _split_top(expr: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]


Matcher = Callable[[dict[str, str]], bool]


def parse_label_selector(expr: str | None) -> Matcher | None:
    """Return a predicate over a labels dict, or None for 'everything'. Raises ApiError 400."""
    if not expr or not expr.strip():
        return None
    reqs: list[Matcher] = []
    for part in _split_top(expr):
        m = _REQ.fullmatch(part)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r} in label selector {expr!r}")
        key, neg, op, val, setop = m["key"], m["neg"], m["op"], m["val"], m["setop"]
        if neg:
            if op or setop:
                raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
            reqs.append(lambda lb, k=key: k not in lb)
        elif op in ("=", "=="):
            reqs.append(lambda lb, k=key, v=val: lb.get(k) == v)
        elif op == "!=":
            reqs.append(lambda lb, k=key, v=val: lb.get(k) != v)
        elif setop:
            values = {v.strip() for v in m["set"].split(",") if v.strip()}
            if setop == "in":
                reqs.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                reqs.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        else:
            reqs.append(lambda lb, k=key: k in lb)
    return lambda labels: all(r(labels) for r in reqs)


def match_labels(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Match a meta/v1 LabelSelector object (matchLabels + matchExpressions); empty matches all."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        k, op, vals = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(expr: str | None) -> Callable[[dict[str, Any]], bool] | None:
    """Field selectors: ``a.b=v``, ``a.b==v``, ``a.b!=v`` joined by commas (any dotted path is allowed)."""
    if not expr or not expr.strip():
        return None
    reqs = []
    for part in _split_top(expr):
        m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part!r}")
        path, op, val = m.groups()
        if op == "!=":
            reqs.append(lambda o, p=path, v=val: _field_value(o, p) != v)
        else:
            reqs.append(lambda o, p=path, v=val: _field_value(o, p) == v)
    return lambda obj: all(r(obj) for r in reqs)

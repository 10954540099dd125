# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubeconfig logic: read safely, parse (comments kept), shape an OKE kubeconfig, merge, mask, write.

This is a private module_utils file: it may change at any time.
Nothing here talks to OCI or Kubernetes. ``read_state``/``atomic_write`` touch the file system;
everything else works on documents.

Rules kept here (the module documents them):

- Only a regular file, or a symlink to one, is read or written; a dangling symlink, a symlink
  loop, a directory, a FIFO or a device is refused before anything is opened for writing. A
  FIFO is never opened for a blocking read. Files larger than ``MAX_FILE_BYTES`` are refused,
  and so are YAML aliases that would expand past ``MAX_NODES`` nodes.
- An existing file keeps its owner, its group and its owner permission bits; group and other
  bits are dropped (a kubeconfig holds credentials). A new file is 0600.
- A merged file is written by a ruamel.yaml round trip: comments, key order, quoting and the
  list indentation of the existing file survive.
- Errors name the file, line and column, never a value of the file.
- ``mask`` shows a kubeconfig with every credential hidden (see its docstring).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import errno
import io
import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence, Set

try:
    from urllib.parse import urlsplit, urlunsplit
except ImportError:  # pragma: no cover - Python 2 is not supported
    from urlparse import urlsplit, urlunsplit

try:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import YAMLError

    HAS_RUAMEL = True
    RUAMEL_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised only without ruamel.yaml
    HAS_RUAMEL = False
    RUAMEL_IMPORT_ERROR = _exc

try:
    import yaml as _PYYAML  # only to render diff output fast; ruamel.yaml does it otherwise
except ImportError:  # pragma: no cover
    _PYYAML = None

from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError

# kept for callers that checked the former PyYAML flag
HAS_YAML = HAS_RUAMEL

KUBECONFIG_MODE = 0o600
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
MASK = "********"
MASK_CHANGED = "******** (changed)"
MAX_FILE_BYTES = 8 * 1024 * 1024  # a kubeconfig of 1,000 clusters is about 2 MiB
MAX_NODES = 200000  # YAML nodes after alias expansion
MAX_FLOW_DEPTH = 64  # nested [ ] / { } levels (ruamel's scanner is quadratic in them; kubeconfigs use two or three)
_LIST_SECTIONS = ("clusters", "users", "contexts")
_LAYOUT = "_okemesh_layout"  # attribute of a round-trip document: ((mapping, sequence, offset) indent, explicit start)
_SECTION_ITEM = {"clusters": "cluster", "users": "user", "contexts": "context"}

# --- masking policy --------------------------------------------------------------------
# users[].user: what is shown; everything else is masked (an allowlist, not a list of secret key names)
_USER_VISIBLE = frozenset(["username", "as", "as-uid", "as-groups", "client-certificate", "client-key", "tokenFile"])
# always secrets (masked even if a future allowlist named them)
_USER_SECRET = frozenset(["token", "password", "client-key-data", "client-certificate-data"])
_EXEC_VISIBLE = frozenset(["command", "apiVersion", "installHint", "provideClusterInfo", "interactiveMode"])
_CLUSTER_VISIBLE = frozenset(
    ["server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name", "disable-compression", "proxy-url"]
)
_CLUSTER_URLS = frozenset(["server", "proxy-url"])
_CONTEXT_VISIBLE = frozenset(["cluster", "user", "namespace"])
_TOP_VISIBLE = frozenset(["apiVersion", "kind", "current-context"])
# a key that is not one of the kubeconfig's own is shown only if it is shaped like a key name
_KEY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_URL_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9]+)?")
# strings that are credentials wherever they appear, whatever their key
_SECRET_VALUE = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.|^\s*(bearer|basic)\s+\S)",
    re.IGNORECASE,
)


def _where(node):
    """' (line L, column C)' of a ruamel node, or ''."""
    lc = getattr(node, "lc", None)
    if lc is None or getattr(lc, "line", None) is None:
        return ""
    return " (line %d, column %d)" % (lc.line + 1, lc.col + 1)


def _yaml():
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never re-fold long lines
    return yaml


def _expanded_size(doc, limit=MAX_NODES):
    """Number of nodes ``doc`` has once aliases are expanded; stops counting past ``limit``.

    Aliases load as shared objects, so anything that walks the document (compare, mask, copy)
    would visit a shared object once per reference: this counts that cost in linear time.
    A recursive alias (an object that contains itself) counts as over the limit.
    """
    memo = {}
    active = set()

    def size(obj):
        key = id(obj)
        if key in memo:
            return memo[key]
        if isinstance(obj, dict):
            children = list(obj.keys()) + list(obj.values())
        elif isinstance(obj, list):
            children = list(obj)
        else:
            return 1
        if key in active:
            return limit + 1
        active.add(key)
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        active.discard(key)
        memo[key] = total
        return total

    return size(doc)


def _guess_indent(text):
    """(mapping indent, sequence indent, sequence dash offset) of a YAML text; kubectl's by default."""
    mapping = None
    seq = None
    prev = None  # (indent, is_key_only_line)
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if prev is not None and prev[1]:
            if stripped.startswith("- ") or stripped == "-":
                if seq is None:
                    dash = indent - prev[0]
                    body = len(raw) - len(raw.lstrip(" -")) - indent
                    seq = (max(dash, 0), max(body, 1))
            elif mapping is None and indent > prev[0]:
                mapping = indent - prev[0]
        if mapping is not None and seq is not None:
            break
        prev = (indent, stripped.endswith(":") and not stripped.startswith("- "))
    mapping = mapping if mapping in (2, 3, 4, 6, 8) else 2
    offset, body = seq if seq is not None else (0, 2)
    return mapping, offset + body, offset


REPLACE_HINT = "fix or remove it, or use merge=false to replace it"


def parse(text, source="kubeconfig", keep_layout=False, hint=REPLACE_HINT):
    """Parse kubeconfig text; empty text -> empty dict.

    With ``keep_layout`` the result is a ruamel round-trip document (comments kept, see
    ``render``); without, plain dicts and lists. Raises InputError naming ``source`` and a
    line/column, never quoting the file; ``hint`` (what to do) ends each message.
    """
    if text is None or not text.strip():
        return {}
    deep = _flow_too_deep(text)
    if deep:
        raise InputError("%s has flow collections ([ ] or { }) nested more than %d levels deep (line %d); %s" % (source, MAX_FLOW_DEPTH, deep, hint))
    yaml = _yaml()
    try:
        doc = yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = " (line %d, column %d)" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        what = "has a duplicate key" if exc.__class__.__name__ == "DuplicateKeyError" else "is not valid YAML"
        raise InputError("%s %s%s; %s" % (source, what, where, hint))
    except RecursionError:
        raise InputError("%s is nested too deeply to be a kubeconfig; %s" % (source, hint))
    except Exception as exc:  # a constructor refused a scalar (dates, numbers, tags): any class, never a traceback
        raise InputError("%s has a value YAML cannot load (%s); %s" % (source, exc.__class__.__name__, hint))
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError("%s is not a kubeconfig: its top level is a %s, not a mapping; %s" % (source, _kind(doc), hint))
    if _expanded_size(doc) > MAX_NODES:
        raise InputError(
            "%s has YAML aliases that expand to more than %d nodes, or refer to themselves (kubeconfigs need no aliases); %s" % (source, MAX_NODES, hint)
        )
    try:
        _validate(doc, source)
    except InputError as exc:
        raise InputError("%s; %s" % (exc.msg, hint))
    if keep_layout:
        setattr(doc, _LAYOUT, (_guess_indent(text), _explicit_start(text)))
        return doc
    return to_plain(doc)


def _flow_too_deep(text, limit=MAX_FLOW_DEPTH):
    """The line where flow collections nest deeper than ``limit``, or 0. Linear, approximate:
    a ``[``/``{`` counts where YAML can start a collection (after ``:``, ``-``, ``,``, another
    opener or at the start of a line); quoted strings and comments are skipped."""
    depth = 0
    line = 1
    prev = "\n"
    quote = None
    idx = 0
    length = len(text)
    while idx < length:
        char = text[idx]
        if char == "\n":
            line += 1
        if quote:
            if char == quote:
                if quote == "'" and idx + 1 < length and text[idx + 1] == "'":
                    idx += 2
                    continue
                quote = None
                prev = "x"
            elif char == "\\" and quote == '"':
                idx += 1
            idx += 1
            continue
        if char in "'\"" and prev in "\n:-,[{ \t":
            quote = char
        elif char == "#" and prev in "\n \t":
            end = text.find("\n", idx)
            idx = length if end < 0 else end
            continue
        elif char in "[{" and prev in "\n:-,[{":
            depth += 1
            if depth > limit:
                return line
        elif char in "[{":
            char = "x"  # inside a plain scalar: text, not an opener
        elif char in "]}" and depth:
            depth -= 1
        if char not in " \t":
            prev = char
        idx += 1
    return 0


def _explicit_start(text):
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        return stripped.startswith("---")
    return False


def _kind(value):
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (Sequence, Set)):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null (or a recursive alias)"
    return "scalar"


def _check_keys(doc, source):
    """Mapping keys must be scalars (kubectl turns those into strings; it refuses collections as keys)."""
    seen = set()
    stack = [doc]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            for key in obj:
                if not isinstance(key, (str, int, float)) and key is not None:  # bool is an int
                    raise InputError("%s has a mapping key that is a %s, not a string%s" % (source, _kind(key), _where(obj)))
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)


def _validate(doc, source):
    _check_keys(doc, source)
    if "current-context" in doc and doc["current-context"] is not None and not isinstance(doc["current-context"], str):
        raise InputError("%s: 'current-context' must be a string, not a %s%s" % (source, _kind(doc["current-context"]), _where(doc)))
    for section in _LIST_SECTIONS:
        value = doc.get(section)
        if value is None:
            continue
        if not isinstance(value, list):
            raise InputError("%s: '%s' must be a list, not a %s%s" % (source, section, _kind(value), _where(doc)))
        seen = {}
        for idx, item in enumerate(value):
            where = _item_where(value, idx)
            if not isinstance(item, dict):
                raise InputError("%s: entry %d of '%s'%s must be a mapping, not a %s" % (source, idx + 1, section, where, _kind(item)))
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise InputError("%s: entry %d of '%s'%s needs a name (a non-empty string)" % (source, idx + 1, section, where))
            if name in seen:
                raise InputError(
                    "%s: entries %d and %d of '%s'%s have the same name (kubectl refuses such a file)"
                    % (source, seen[name] + 1, idx + 1, section, where)
                )
            seen[name] = idx
            inner = item.get(_SECTION_ITEM[section])
            if inner is not None and not isinstance(inner, dict):
                raise InputError(
                    "%s: '%s' of entry %d of '%s'%s must be a mapping, not a %s" % (source, _SECTION_ITEM[section], idx + 1, section, where, _kind(inner))
                )


def _item_where(seq, idx):
    lc = getattr(seq, "lc", None)
    try:
        line, col = lc.item(idx)
        return " (line %d, column %d)" % (line + 1, col + 1)
    except Exception:
        return ""


def to_plain(obj):
    """Plain dicts, lists, str, int, float, bool and None from a (ruamel) document."""
    if isinstance(obj, dict):
        return dict((to_plain(k), to_plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    value = getattr(obj, "value", None)  # TaggedScalar and other wrappers
    if isinstance(value, str):
        return str(value)
    return obj


def _single(doc, section, source):
    items = doc.get(section) or []
    if len(items) != 1:
        raise InputError("%s: expected exactly one entry in '%s', found %d" % (source, section, len(items)))
    return items[0]


def shape_oke(doc, cluster_id, context=None, exec_args=None, exec_env=None, token=None, source="the OKE kubeconfig"):
    """Turn the kubeconfig OKE returned into the entries to write.

    ``context`` renames the context and, so two endpoints of one cluster can live side by side,
    the cluster and user entries too. ``exec_args`` are appended to the exec plugin's args
    (``--profile``/``--auth``/``--config-file``). ``token`` replaces the exec plugin by a static
    bearer token. Returns a new document (the input is not modified).
    """
    doc = copy.deepcopy(to_plain(doc))
    cluster = _single(doc, "clusters", source)
    user = _single(doc, "users", source)
    ctx = _single(doc, "contexts", source)
    if not isinstance(cluster.get("cluster"), dict) or not cluster["cluster"].get("server"):
        raise InputError("%s for %s has no cluster server" % (source, cluster_id))
    if context:
        cluster["name"] = context
        user["name"] = context
        ctx["name"] = context
        ctx["context"] = dict(ctx.get("context") or {}, cluster=context, user=context)
        doc["current-context"] = context
    if token is not None:
        user["user"] = {"token": token}
    else:
        exec_cfg = (user.get("user") or {}).get("exec")
        if not isinstance(exec_cfg, dict):
            raise InputError("%s for %s has no exec user entry" % (source, cluster_id))
        args = list(exec_cfg.get("args") or [])
        for arg in exec_args or []:
            args.append(arg)
        exec_cfg["args"] = args
        if exec_env:
            env = [e for e in (exec_cfg.get("env") or []) if e.get("name") not in exec_env]
            env.extend({"name": k, "value": v} for k, v in sorted(exec_env.items()))
            exec_cfg["env"] = env
    if not doc.get("current-context"):
        doc["current-context"] = ctx["name"]
    return doc


def names(doc):
    """(cluster, user, context) names of a single-cluster document."""
    return (doc["clusters"][0]["name"], doc["users"][0]["name"], doc["contexts"][0]["name"])


def _upsert(items, entry):
    for idx, item in enumerate(items):
        if item.get("name") == entry["name"]:
            items[idx] = entry
            return
    items.append(entry)


def _commented(obj):
    """Plain data as ruamel round-trip containers (deterministic key order on dump)."""
    if isinstance(obj, dict):
        out = CommentedMap()
        for k, v in obj.items():
            out[k] = _commented(v)
        return out
    if isinstance(obj, list):
        return CommentedSeq([_commented(v) for v in obj])
    return obj


def merge(existing, new, set_current_context=True, in_place=False):
    """Merge the single-cluster document ``new`` into ``existing`` (a copy is returned, or
    ``existing`` itself, changed, with ``in_place``: a deep copy of a large round-trip document
    costs seconds).

    Entries with the same name are replaced, every other cluster/user/context and every other
    top-level key (preferences, extensions) is kept, with its comments when ``existing`` came
    from ``parse(keep_layout=True)``. ``apiVersion``/``kind`` of the existing file win; they are
    filled in only when missing.
    """
    if not existing:
        return replace(new, set_current_context=set_current_context)
    out = existing if in_place else copy.deepcopy(existing)
    if getattr(existing, _LAYOUT, None) is not None:
        setattr(out, _LAYOUT, getattr(existing, _LAYOUT))
    if "apiVersion" not in out:
        out["apiVersion"] = new.get("apiVersion", "v1")
    if "kind" not in out:
        out["kind"] = new.get("kind", "Config")
    for section in _LIST_SECTIONS:
        items = out.get(section)
        if items is None:
            items = out[section] = CommentedSeq() if isinstance(out, CommentedMap) else []
        for entry in new.get(section) or []:
            _upsert(items, _commented(copy.deepcopy(entry)) if isinstance(out, CommentedMap) else copy.deepcopy(entry))
    if set_current_context:
        out["current-context"] = new["current-context"]
    elif "current-context" not in out:
        out["current-context"] = ""
    return out


def replace(new, set_current_context=True):
    """The document to write when the file is replaced: just the new cluster."""
    out = copy.deepcopy(new)
    if not set_current_context:
        out["current-context"] = ""
    return out


def render(doc):
    """YAML text of a kubeconfig document; a round-trip document keeps its comments and layout."""
    yaml = _yaml()
    (mapping, sequence, offset), start = getattr(doc, _LAYOUT, None) or ((2, 2, 0), False)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.explicit_start = start
    out = io.StringIO()
    yaml.dump(doc if isinstance(doc, CommentedMap) else _commented(doc), out)
    return out.getvalue()


def render_plain(doc):
    """YAML text of plain data, for diff output (PyYAML's C dumper when present: ten times faster)."""
    if _PYYAML is None:
        return render(doc)
    dumper = getattr(_PYYAML, "CSafeDumper", _PYYAML.SafeDumper)
    return _PYYAML.dump(doc, Dumper=dumper, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1 << 16)


# --- masking -------------------------------------------------------------------------------
def mask_url(value):
    """``value`` with URL userinfo, query values and fragment masked; all of it when it is not a
    plain URL (whitespace, an odd host, query keys that are not key names)."""
    if not isinstance(value, str) or not value:
        return value
    if any(char.isspace() or ord(char) < 32 for char in value):
        return MASK
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not parts.netloc:
        return MASK if ("@" in value or "?" in value or "#" in value) else value
    netloc = parts.netloc.rsplit("@", 1)[-1]  # host[:port] as written
    if not host or not _URL_HOST.fullmatch(host) or netloc.endswith(":") or (port is None and netloc.rsplit("]", 1)[-1].count(":")):
        return MASK
    if "@" in parts.netloc:
        netloc = "%s@%s" % (MASK, netloc)
    query = ""
    if parts.query:
        pairs = [p.split("=", 1) for p in parts.query.split("&")]
        if not all(_KEY_NAME.fullmatch(pair[0]) for pair in pairs):
            query = MASK
        else:
            query = "&".join("%s=%s" % (pair[0], MASK) if len(pair) == 2 else MASK for pair in pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, MASK if parts.fragment else ""))


def looks_secret(value):
    """True for strings that are credentials whatever their key: private keys, JWTs, Authorization values."""
    return isinstance(value, str) and bool(_SECRET_VALUE.search(value))


class _Masker(object):
    """Masks one document. ``known`` holds the secrets of the 'before' document, so a secret that
    changed is shown as MASK_CHANGED in the 'after' document; ``seen`` collects this document's."""

    def __init__(self, own_user=None, own_args=(), known=None):
        self.own_user = own_user
        self.own_args = frozenset(a for a in own_args if isinstance(a, str))
        self.known = known
        self.seen = set()

    def secret(self, value):
        if value is None or value == "":
            return value
        try:
            self.seen.add(value)
            new = self.known is not None and value not in self.known
        except TypeError:  # unhashable (a mapping or list in a secret's place)
            new = False
        return MASK_CHANGED if new else MASK

    @staticmethod
    def key(key, idx):
        """A mapping key as shown: itself if shaped like a key name, else a numbered mask."""
        if isinstance(key, str) and _KEY_NAME.fullmatch(key) and not looks_secret(key):
            return key
        if isinstance(key, (bool, int, float)) or key is None:
            return key
        return "%s-%d" % (MASK, idx + 1)

    def everything(self, value):
        """Mask every scalar of a subtree except booleans and numbers (structure stays visible)."""
        if isinstance(value, dict):
            return dict((self.key(k, i), self.everything(v)) for i, (k, v) in enumerate(value.items()))
        if isinstance(value, list):
            return [self.everything(v) for v in value]
        if isinstance(value, (bool, int, float)) or value is None:
            return value
        return self.secret(value)

    def visible(self, value):
        """A value shown as is, unless it is a credential by its looks (or a URL with userinfo)."""
        if isinstance(value, dict):
            return dict((self.key(k, i), self.visible(v)) for i, (k, v) in enumerate(value.items()))
        if isinstance(value, list):
            return [self.visible(v) for v in value]
        if looks_secret(value):
            return self.secret(value)
        if isinstance(value, str) and "://" in value:
            masked = _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), value)  # each URL of a text (installHint)
            if masked != value:
                self.seen.add(value)
            return masked
        return value

    def mapping(self, value, visible, special=None):
        if not isinstance(value, dict):
            return self.everything(value)
        out = {}
        for idx, (key, item) in enumerate(value.items()):
            if special and key in special:
                out[key] = special[key](item)
            elif key in visible:
                out[key] = self.visible(item)
            else:
                out[self.key(key, idx)] = self.everything(item)
        return out

    def exec_cfg(self, value, own):
        def args(items):
            if not isinstance(items, list):
                return self.everything(items)
            return [self.visible(a) if own and isinstance(a, str) and a in self.own_args else self.everything(a) for a in items]

        def env(items):
            if not isinstance(items, list):
                return self.everything(items)
            out = []
            for item in items:
                if isinstance(item, dict):
                    out.append(dict((k, v) if k == "name" else (self.key(k, i), self.everything(v)) for i, (k, v) in enumerate(item.items())))
                else:
                    out.append(self.everything(item))
            return out

        return self.mapping(value, _EXEC_VISIBLE, {"args": args, "env": env})

    def user(self, value, own):
        def auth_provider(item):
            return self.mapping(item, ("name",))

        special = {"exec": lambda item: self.exec_cfg(item, own), "auth-provider": auth_provider}
        for key in _USER_SECRET:
            special[key] = self.everything
        return self.mapping(value, _USER_VISIBLE, special)

    def entry(self, item, section):
        if not isinstance(item, dict):
            return self.everything(item)
        own = section == "users" and self.own_user is not None and item.get("name") == self.own_user
        out = {}
        for idx, (key, value) in enumerate(item.items()):
            if key == "name":
                out[key] = value
            elif section == "users" and key == "user":
                out[key] = self.user(value, own)
            elif section == "clusters" and key == "cluster":
                out[key] = self.mapping(value, _CLUSTER_VISIBLE, dict((k, self.url) for k in _CLUSTER_URLS))
            elif section == "contexts" and key == "context":
                out[key] = self.mapping(value, _CONTEXT_VISIBLE)
            else:
                out[self.key(key, idx)] = self.everything(value)
        return out

    def url(self, value):
        if not isinstance(value, str):
            return self.everything(value)
        masked = mask_url(value)
        if masked != value:
            self.seen.add(value)
        return masked

    def document(self, doc):
        if not isinstance(doc, dict):
            return self.everything(doc)
        out = {}
        for idx, (key, value) in enumerate(doc.items()):
            if key in _LIST_SECTIONS and isinstance(value, list):
                out[key] = [self.entry(item, key) for item in value]
            elif key in _TOP_VISIBLE:
                out[key] = self.visible(value)
            elif key == "preferences":
                out[key] = self.mapping(value, ("colors",))
            else:
                out[self.key(key, idx)] = self.everything(value)
        return out


def mask(doc, own_user=None, own_args=(), known=None):
    """A plain copy of ``doc`` with every credential replaced by MASK (for diff output).

    Not a list of secret key names but an allowlist by structure: in ``users`` only the entry
    names, ``username``, impersonation names, the certificate/key/token file paths, the exec
    ``command``/``apiVersion``/``installHint`` and flags, ``env`` names and the auth-provider
    ``name`` are shown. Token, password, client key and certificate data, ``env`` values,
    auth-provider ``config`` and every unknown key are masked. Exec ``args`` are masked in
    every user entry except ``own_user``, the entry this run writes, where an argument is
    shown only if it is one of ``own_args`` (the arguments the module itself writes): tools
    put tokens in arguments (``--token``, ``--password=...``) and no list of flag names is
    complete. ``server`` and ``proxy-url`` lose their userinfo, query values and fragment;
    extensions are masked; any string shaped like a private key, a JWT or an Authorization
    value is masked wherever it is. A key that is not the kubeconfig's own is shown only if
    it is shaped like a key name (letters, digits, ``_.-``), else as a numbered mask. With ``known`` (the secrets a ``mask_pair`` 'before' held), a secret
    not among them shows as MASK_CHANGED.
    """
    return _Masker(own_user, own_args, known).document(to_plain(doc))


def mask_pair(before, after, own_user=None, own_args=()):
    """Masked (before, after) for a diff: a secret that differs shows as MASK_CHANGED in 'after'."""
    first = _Masker(own_user, own_args)
    masked_before = first.document(to_plain(before)) if before is not None else None
    masked_after = _Masker(own_user, own_args, known=first.seen).document(to_plain(after))
    return masked_before, masked_after


def same(a, b):
    """Semantic equality of two kubeconfig documents (formatting, comments and key order ignored)."""
    return to_plain(a or {}) == to_plain(b or {})


# --- files ---------------------------------------------------------------------------------
class FileState(object):
    """What ``read_state`` found at a path: ``target`` is where a write goes (a symlink's target)."""

    def __init__(self, path, target, exists=False, text=None, mode=None, uid=None, gid=None, ident=None, nlink=1, readable=True):
        self.path = path
        self.target = target
        self.exists = exists
        self.text = text
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.ident = ident  # (dev, ino, size, mtime_ns) when read
        self.nlink = nlink
        self.readable = readable  # False: not read (too large and not needed)

    def want_mode(self):
        """The mode to write: 0600 for a new file; an existing one keeps its owner bits (at least
        read), its group and other bits are dropped."""
        if self.mode is None:
            return KUBECONFIG_MODE
        return (self.mode & 0o700) | 0o400


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _file_kind(mode):
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _ident(st):
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_state(path, what="kubeconfig", max_bytes=MAX_FILE_BYTES, need_text=True, option="dest", hint="use merge=false to replace it"):
    """Inspect and read ``path`` safely. Raises InputError for anything but an absent path, a
    regular file or a symlink to one. ``option`` is the option that named the path, ``hint``
    what to do about a file that cannot be decoded or is too large."""
    if not path or "\x00" in path:
        raise InputError("The %s path must be a non-empty path without NUL characters" % what)
    if path.endswith(os.sep):
        raise InputError("The %s path %s ends with %s: name a file, not a directory" % (what, path, os.sep))
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return FileState(path, path)
    except NotADirectoryError:
        raise InputError("The %s path %s is below something that is not a directory" % (what, path))
    except OSError as exc:
        raise InputError("Cannot inspect %s %s: %s" % (what, path, exc.strerror))
    target = path
    st = lst
    if stat.S_ISLNK(lst.st_mode):
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputError("%s %s is a symlink loop; remove the link or point %s at a regular file" % (what, path, option))
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                try:
                    link = os.readlink(path)
                except OSError:
                    link = "?"
                raise InputError(
                    "%s %s is a dangling symlink (to %s, which does not exist); create the target or remove the link, "
                    "the module does not replace a link by a file" % (what, path, link)
                )
            raise InputError("Cannot follow the symlink %s %s: %s" % (what, path, exc.strerror))
        target = os.path.realpath(path)
    if not stat.S_ISREG(st.st_mode):
        raise InputError("%s %s is %s, not a regular file; point %s at a regular file" % (what, path, _file_kind(st.st_mode), option))
    state = FileState(
        path, target, exists=True, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, ident=_ident(st), nlink=st.st_nlink
    )
    if st.st_size > max_bytes:
        if need_text:
            raise InputError(
                "%s %s is %d bytes, more than the %d accepted here; %s" % (what, path, st.st_size, max_bytes, hint)
            )
        state.readable = False
        return state
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags)
    except OSError as exc:
        raise InputError("Cannot read %s %s: %s" % (what, path, exc.strerror))
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise InputError("%s %s was replaced while it was being read; run again" % (what, path))
        chunks = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise InputError("Cannot read %s %s: %s" % (what, path, exc.strerror))
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise InputError("%s %s grew past %d bytes while it was being read; run again" % (what, path, max_bytes))
    try:
        state.text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = int(exc.start)
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise InputError("%s %s is not UTF-8 text (line %d, column %d); fix or remove it, or %s" % (what, path, line, column, hint))
    return state


def read_file(path):
    """(text or None, mode or None) of an existing kubeconfig; InputError if unreadable."""
    state = read_state(path)
    return state.text, state.mode


def _same_file(path, ident):
    try:
        return _ident(os.stat(path)) == ident
    except OSError:
        return False


def atomic_write(state, text, mode=None):
    """Write ``text`` to ``state.target`` atomically (temp file in the same directory + rename).

    ``state`` is a FileState (or a path, for a new file). The temp file gets the owner and group
    of the file it replaces and ``mode`` (default ``state.want_mode()``) before any byte is
    written, so the content is never readable by others and the owner is not locked out; a
    crash leaves either the old or the new file. If the file changed since it was read, or
    appeared since it was found absent, nothing is written. Returns a list of warnings.
    """
    if not isinstance(state, FileState):
        state = FileState(state, state)
    mode = state.want_mode() if mode is None else mode
    warnings = []
    target = state.target
    directory = os.path.dirname(target) or "."
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(target), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError("Cannot write kubeconfig %s: %s" % (state.path, exc.strerror))
    try:
        try:
            if state.exists:
                _keep_owner(fd, state, warnings)
            os.fchmod(fd, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                fd = None
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if state.exists and not _same_file(target, state.ident):
                raise InputError("kubeconfig %s changed while the module ran; nothing was written, run again" % state.path)
            if not state.exists and os.path.lexists(state.path):
                raise InputError("kubeconfig %s was created by something else while the module ran; nothing was written, run again" % state.path)
            os.replace(tmp, target)
            tmp = None
        except OSError as exc:
            raise InputError("Cannot write kubeconfig %s: %s" % (state.path, exc.strerror))
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return warnings


def _keep_owner(fd, state, warnings):
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) == (state.uid, state.gid):
        return
    try:
        os.fchown(fd, state.uid, state.gid)
        return
    except OSError:
        pass
    if st.st_uid != state.uid:
        raise InputError(
            "kubeconfig %s belongs to uid %d and this run (uid %d) cannot give the new file that owner; nothing was written: "
            "run as that user or with become" % (state.path, state.uid, st.st_uid)
        )
    warnings.append("kubeconfig %s: its group (gid %d) could not be kept; the file now has gid %d" % (state.path, state.gid, st.st_gid))


def set_mode(state, mode):
    """chmod an existing file in place (content unchanged)."""
    try:
        os.chmod(state.target, mode)
    except OSError as exc:
        raise InputError("Cannot set mode %04o on %s: %s" % (mode, state.path, exc.strerror))

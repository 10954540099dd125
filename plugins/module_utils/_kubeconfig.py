# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure kubeconfig logic: shape an OKE kubeconfig, merge or replace, render, mask, write.

This is a private module_utils file: it may change at any time.
Nothing here talks to OCI or Kubernetes; everything but ``read_file``/``atomic_write``
works on plain dicts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import stat
import tempfile

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False

from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError

KUBECONFIG_MODE = 0o600
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
MASK = "********"
# keys whose values are credentials wherever they appear in a kubeconfig
SECRET_KEYS = frozenset(
    ["token", "client-key-data", "password", "id-token", "refresh-token", "access-token", "client-secret", "tokenFile"]
)
_LIST_SECTIONS = ("clusters", "users", "contexts")


def parse(text, source="kubeconfig"):
    """Parse kubeconfig YAML text into a dict (empty text -> empty dict)."""
    if text is None or not text.strip():
        return {}
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # the parser message may quote a line of the file: keep only the position
        mark = getattr(exc, "problem_mark", None)
        where = " (line %d, column %d)" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        raise InputError("%s is not valid YAML%s; fix or remove it, or use merge=false to replace it" % (source, where))
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError("%s is not a kubeconfig (top level is %s, not a mapping)" % (source, type(doc).__name__))
    for section in _LIST_SECTIONS:
        value = doc.get(section)
        if value is not None and not isinstance(value, list):
            raise InputError("%s: '%s' must be a list" % (source, section))
        for item in value or []:
            if not isinstance(item, dict) or not item.get("name"):
                raise InputError("%s: every entry of '%s' needs a name" % (source, section))
    return doc


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
    doc = copy.deepcopy(doc)
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


def merge(existing, new, set_current_context=True):
    """Merge the single-cluster document ``new`` into ``existing``.

    Entries with the same name are replaced, every other cluster/user/context and every other
    top-level key (preferences, extensions) is kept. ``apiVersion``/``kind`` of the existing
    file win; they are filled in only when missing.
    """
    out = copy.deepcopy(existing) if existing else {}
    if not out:
        return replace(new, set_current_context=set_current_context)
    out.setdefault("apiVersion", new.get("apiVersion", "v1"))
    if "kind" not in out:
        out["kind"] = new.get("kind", "Config")
    for section in _LIST_SECTIONS:
        items = out.get(section)
        if items is None:
            items = out[section] = []
        for entry in new.get(section) or []:
            _upsert(items, copy.deepcopy(entry))
    if set_current_context:
        out["current-context"] = new["current-context"]
    else:
        out.setdefault("current-context", "")
    return out


def replace(new, set_current_context=True):
    """The document to write when the file is replaced: just the new cluster."""
    out = copy.deepcopy(new)
    if not set_current_context:
        out["current-context"] = ""
    return out


def render(doc):
    """Deterministic YAML text of a kubeconfig document."""
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)


def mask(doc):
    """A copy with every credential value replaced by a mask (for diff output)."""
    if isinstance(doc, dict):
        return dict((k, MASK if k in SECRET_KEYS and v not in (None, "") else mask(v)) for k, v in doc.items())
    if isinstance(doc, list):
        return [mask(v) for v in doc]
    return doc


def same(a, b):
    """Semantic equality of two kubeconfig documents (formatting and key order ignored)."""
    return (a or {}) == (b or {})


def read_file(path):
    """(text or None, mode or None) of an existing kubeconfig; InputError if unreadable."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise InputError("Cannot read kubeconfig %s: %s" % (path, exc.strerror))
    if not stat.S_ISREG(st.st_mode):
        raise InputError("kubeconfig path %s exists and is not a regular file" % path)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read(), stat.S_IMODE(st.st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("Cannot read kubeconfig %s: %s" % (path, getattr(exc, "strerror", None) or exc.__class__.__name__))


def atomic_write(path, text, mode=KUBECONFIG_MODE):
    """Write ``text`` to ``path`` atomically (temp file in the same directory + rename).

    The temp file is created with ``mode`` before any byte is written, so the content is never
    readable by others, and a crash leaves either the old or the new file.
    """
    path = os.path.realpath(path)  # a symlinked kubeconfig keeps its link; its target is replaced
    directory = os.path.dirname(path)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=directory)
    except OSError as exc:
        raise InputError("Cannot write kubeconfig %s: %s" % (path, exc.strerror))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise InputError("Cannot write kubeconfig %s: %s" % (path, exc.strerror))

# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Surgical, comment-preserving edits of Helm values files (pure: no Ansible imports).

This is a private module_utils file: it may change at any time.

How an edit works:

1. The file is parsed with ruamel.yaml (pure Python, safe constructor) twice over: the
   composed node tree gives the exact character span of every key and value, the
   constructed data gives the values to compare with.
2. The requested ``unset`` and ``set`` operations are applied to a plain copy of the data:
   that is the *expected* result, and where the path errors (crossing a scalar, index out of
   range, missing intermediate with ``create=False``) are raised.
3. The node tree is walked against the expected data, only into subtrees that differ, and
   every difference becomes a text splice: a scalar is replaced in place (keeping its quote
   style where the new value allows), a new key is inserted as new lines after the last
   line of its mapping with the sibling indentation, a removed key loses its lines, a value
   that changes shape (scalar <-> mapping/list, ``{}`` -> entries) is re-rendered in block
   style with the file's indentation. Every other byte of the file is left as it was.
4. The result must read back exactly as the expected data (type aware: ``true`` is not
   ``"true"``). Only the top-level or second-level pairs that contain a splice are parsed
   again (everything else is byte-identical, and such block pairs read the same on their
   own); files with anchors, aliases or directives, and multi-document files, are parsed
   again as a whole. Only when a change cannot be spliced (YAML merge keys,
   aliases, complex keys, unusual layouts) or the splice does not read back, the document is
   re-emitted with a full ruamel.yaml round-trip dump instead: comments and key order are
   kept, but indentation and list style are normalised to the file's dominant style, so more
   lines than the edited ones may change. The ``rendering`` field of the result says which
   method was used.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import io
import math
import re

try:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    HAS_RUAMEL = True
    RUAMEL_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised only without ruamel.yaml
    HAS_RUAMEL = False
    RUAMEL_IMPORT_ERROR = _exc

from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError, ValuesFileError

_STR_TYPES = (str,)

_MISSING = object()

# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_/@$%+-][A-Za-z0-9_/@$%+ -]*$")


def parse_path(path):
    """Parse a dotted values path into a tuple of components (``str`` keys, ``int`` indexes).

    Syntax: keys separated by ``.``; ``[N]`` after a key indexes a list (``a.b[0].c``,
    negative indexes count from the end); a key containing dots or brackets is written in
    double or single quotes (``a."b.c".d``) or with backslash escapes (``a.b\\.c.d``).
    A list or tuple is taken as the components themselves (strings are literal keys,
    integers are list indexes), so no escaping is needed.
    """
    if isinstance(path, (list, tuple)):
        if not path:
            raise InputError("A values path given as a list must not be empty.")
        comps = []
        for item in path:
            if isinstance(item, bool) or not isinstance(item, (int,) + _STR_TYPES):
                raise InputError(
                    "A values path given as a list may hold only strings (keys) and integers (list indexes); got %r." % (item,),
                    key=repr(path),
                )
            comps.append(item if isinstance(item, int) else str(item))
        return tuple(comps)
    if not isinstance(path, _STR_TYPES):
        raise InputError("A values path must be a string or a list of keys; got %r." % (path,))
    text = str(path)
    if not text:
        raise InputError("A values path must not be empty.")
    comps = []
    i, n = 0, len(text)

    def fail(why):
        raise InputError("Invalid values path %r: %s." % (text, why), key=text)

    expect_key = True
    while i < n:
        if expect_key:
            ch = text[i]
            if ch in "\"'":
                quote = ch
                i += 1
                buf = []
                while True:
                    if i >= n:
                        fail("unterminated quote")
                    ch = text[i]
                    if quote == '"' and ch == "\\" and i + 1 < n:
                        buf.append(text[i + 1])
                        i += 2
                        continue
                    if ch == quote:
                        if quote == "'" and i + 1 < n and text[i + 1] == "'":
                            buf.append("'")
                            i += 2
                            continue
                        i += 1
                        break
                    buf.append(ch)
                    i += 1
                comps.append("".join(buf))
            elif ch == "[":
                if not comps:
                    fail("it starts with a list index, but the top level of a values file is a mapping")
                fail("empty key before '['")
            else:
                buf = []
                while i < n and text[i] not in ".[":
                    ch = text[i]
                    if ch == "\\" and i + 1 < n:
                        buf.append(text[i + 1])
                        i += 2
                        continue
                    if ch in "\"'" and not buf:
                        break
                    buf.append(ch)
                    i += 1
                if not buf:
                    fail("empty key at position %d" % i)
                comps.append("".join(buf))
            expect_key = False
        else:
            ch = text[i]
            if ch == "[":
                close = text.find("]", i)
                if close < 0:
                    fail("unterminated '['")
                inner = text[i + 1 : close].strip()
                if not re.match(r"^-?[0-9]+$", inner):
                    fail("list index %r is not an integer" % inner)
                comps.append(int(inner))
                i = close + 1
            elif ch == ".":
                i += 1
                if i >= n:
                    fail("it ends with '.'")
                expect_key = True
            else:
                fail("unexpected %r at position %d (quote keys that contain dots, brackets or quotes)" % (ch, i))
    return tuple(comps)


def format_path(comps):
    """Render path components back into the dotted syntax that :func:`parse_path` reads."""
    out = []
    for comp in comps:
        if isinstance(comp, int):
            out.append("[%d]" % comp)
            continue
        text = comp if _BARE_KEY.match(comp) else '"%s"' % comp.replace("\\", "\\\\").replace('"', '\\"')
        out.append(("." if out else "") + text)
    return "".join(out)


# ---------------------------------------------------------------------------
# Values: normalising input, type-aware comparison
# ---------------------------------------------------------------------------


def to_plain(value, where="value"):
    """Convert option values (Ansible's str/dict/list subclasses) into plain Python data."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, _STR_TYPES):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return dict((to_plain(k, where), to_plain(v, where)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [to_plain(v, where) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime, bytes)):
        return value
    raise InputError("Unsupported value type %s for %s; use strings, numbers, booleans, null, mappings and lists." % (type(value).__name__, where))


def _fresh_copy(value):
    if isinstance(value, dict):
        return dict((k, _fresh_copy(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_fresh_copy(v) for v in value]
    return value


def same(a, b):
    """Type-aware equality: ``True`` != ``1``, ``"true"`` != ``True``, ``1`` != ``1.0``."""
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or len(a) != len(b):
            return False
        for key, val in a.items():
            if key not in b or not same(val, b[key]):
                return False
        return True
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return False
        return all(same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def type_name(value):
    """The YAML-ish type name used in change reports."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, _STR_TYPES):
        return "str"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _reportable(value):
    """Data safe to return to Ansible (timestamps and binary become strings)."""
    if isinstance(value, dict):
        return dict((_reportable(k), _reportable(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_reportable(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


# ---------------------------------------------------------------------------
# Applying operations to plain data (the expected result)
# ---------------------------------------------------------------------------


def _lookup_key(mapping, comp):
    """Find the existing key that ``comp`` names (exact, else a non-string key with that text)."""
    if comp in mapping and not isinstance(comp, bool):
        return comp
    if isinstance(comp, _STR_TYPES):
        for key in mapping:
            if not isinstance(key, _STR_TYPES) and render_scalar(key) == comp:
                return key
    return _MISSING


def _list_index(seq, comp, comps, depth, display, for_set):
    """Resolve ``comp`` as an index of ``seq``; ``None`` when absent (unset), errors for set."""
    if isinstance(comp, _STR_TYPES):
        if re.match(r"^-?[0-9]+$", comp):
            comp = int(comp)
        else:
            raise InputError(
                "Values path %r: %r is a list, so the next component must be an index like [0], not the key %r." % (display, format_path(comps[:depth]), comp),
                key=display,
            )
    if -len(seq) <= comp < len(seq):
        return comp % len(seq) if seq else comp
    if not for_set:
        return None
    raise InputError(
        "Values path %r: list index %d is out of range at %r (the list has %d item%s). "
        "To add list items, set the whole list." % (display, comp, format_path(comps[:depth]), len(seq), "" if len(seq) == 1 else "s"),
        key=display,
    )


def apply_set(data, comps, value, create=True, display=None):
    """Set ``comps`` to ``value`` in ``data`` (a dict) in place; returns the previous value or _MISSING."""
    display = display or format_path(comps)
    node = data
    for depth, comp in enumerate(comps):
        last = depth == len(comps) - 1
        if isinstance(node, dict):
            if isinstance(comp, int):
                raise InputError(
                    "Values path %r: %r is a mapping, not a list; index [%d] does not apply." % (display, format_path(comps[:depth]) or "<top level>", comp),
                    key=display,
                )
            key = _lookup_key(node, comp)
            if last:
                before = _MISSING if key is _MISSING else node[key]
                node[comp if key is _MISSING else key] = value
                return before
            if key is _MISSING or node[key] is None:
                if not create:
                    raise InputError(
                        "Values path %r: %r does not exist and create is false." % (display, format_path(comps[: depth + 1])),
                        key=display,
                    )
                if isinstance(comps[depth + 1], int):
                    raise InputError(
                        "Values path %r: cannot create the list %r from an index; set the whole list instead." % (display, format_path(comps[: depth + 1])),
                        key=display,
                    )
                key = comp if key is _MISSING else key
                node[key] = {}
            node = node[key]
        elif isinstance(node, list):
            idx = _list_index(node, comp, comps, depth, display, True)
            if last:
                before = node[idx]
                node[idx] = value
                return before
            if node[idx] is None and create and not isinstance(comps[depth + 1], int):
                node[idx] = {}
            node = node[idx]
        else:
            raise InputError(
                "Values path %r crosses a scalar: %r is a %s, so it has no %r inside."
                % (display, format_path(comps[:depth]), type_name(node), format_path(comps[depth:])),
                key=display,
            )
    raise InputError("Values path %r is empty." % display)  # pragma: no cover


def apply_unset(data, comps, display=None):
    """Remove ``comps`` from ``data`` in place; returns the removed value or _MISSING when absent."""
    display = display or format_path(comps)
    node = data
    for depth, comp in enumerate(comps):
        last = depth == len(comps) - 1
        if isinstance(node, dict):
            if isinstance(comp, int):
                return _MISSING
            key = _lookup_key(node, comp)
            if key is _MISSING:
                return _MISSING
            if last:
                return node.pop(key)
            node = node[key]
        elif isinstance(node, list):
            idx = _list_index(node, comp, comps, depth, display, False)
            if idx is None:
                return _MISSING
            if last:
                return node.pop(idx)
            node = node[idx]
        else:
            return _MISSING
    return _MISSING  # pragma: no cover


# ---------------------------------------------------------------------------
# Rendering scalars and blocks
# ---------------------------------------------------------------------------

# Strings a YAML 1.1 (Helm's go-yaml) or 1.2 reader would not read back as strings when plain.
_SPECIAL_WORDS = frozenset(w.lower() for w in ("y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", "=", "<<", ".inf", "-.inf", "+.inf", ".nan"))
_NUMBERISH = re.compile(
    "|".join(
        (
            # YAML 1.1 ints (binary, octal, decimal, hex, sexagesimal) and floats
            r"^[-+]?0b[0-1_]+$",
            r"^[-+]?0[0-7_]+$",
            r"^[-+]?(0|[1-9][0-9_]*)$",
            r"^[-+]?0x[0-9a-fA-F_]+$",
            r"^[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+$",
            r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$",
            r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*$",
            # YAML 1.2 core schema ints and floats (also what go-yaml parses as numbers)
            r"^[-+]?[0-9]+$",
            r"^0o[0-7]+$",
            r"^0x[0-9a-fA-F]+$",
            r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$",
            r"^[-+]?\.(inf|Inf|INF)$",
            r"^\.(nan|NaN|NAN)$",
        )
    )
)
_TIMESTAMPISH = re.compile(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}")
_INDICATORS = "-?:,[]{}#&*!|>'\"%@`"


def _printable(text):
    for ch in text:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029, 0xFEFF) or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            return False
    return True


def plain_ok(text, flow=False):
    """Whether ``text`` can be written as a plain scalar and read back as the same string."""
    if not text or text != text.strip() or not _printable(text):
        return False
    if text.lower() in _SPECIAL_WORDS or _NUMBERISH.match(text) or _TIMESTAMPISH.match(text):
        return False
    if text[0] in _INDICATORS or ": " in text or " #" in text or text.endswith(":"):
        return False
    if text.startswith("---") or text.startswith("..."):
        return False
    if flow and any(c in text for c in ",[]{}"):
        return False
    return True


def double_quoted(text):
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append("\\x%02x" % code)
        elif code in (0x2028, 0x2029, 0xFEFF) or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            out.append("\\u%04x" % code)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def render_scalar(value, style=None, flow=False):
    """One-line YAML text for a scalar that reads back as exactly ``value`` (type included).

    ``style`` is the quote style of the scalar being replaced (``'``, ``"`` or None): a
    string keeps it when possible.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(float(value))
        if "." not in text and "e" not in text:
            text += ".0"
        if "e" in text and "." not in text.split("e")[0]:
            mant, exp = text.split("e")
            text = "%s.0e%s" % (mant, exp)
        return text
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return double_quoted(value.decode("utf-8", "replace"))
    text = str(value)
    if style == "'" and _printable(text) and "\n" not in text:
        return "'%s'" % text.replace("'", "''")
    if style == '"' or not plain_ok(text, flow=flow):
        return double_quoted(text)
    return text


def render_key(key):
    return render_scalar(key) if not isinstance(key, _STR_TYPES) else (key if plain_ok(key) else double_quoted(key))


def _flow_key(key):
    if not isinstance(key, _STR_TYPES):
        return render_scalar(key)
    return key if plain_ok(key, flow=True) else double_quoted(key)


def render_flow(value):
    """Single-line flow rendering (used when editing inside an existing flow collection)."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{%s}" % ", ".join("%s: %s" % (_flow_key(k), render_flow(v)) for k, v in value.items())
    if isinstance(value, list):
        return "[%s]" % ", ".join(render_flow(v) for v in value)
    return render_scalar(value, flow=True)


def _literal_ok(text):
    if "\n" not in text.rstrip("\n") or text.endswith("\n\n") or not _printable(text.replace("\n", "")):
        return False
    if text[:1] in (" ", "\t") or "\r" in text:
        return False
    return all(line == line.rstrip(" \t") for line in text.split("\n"))


class Layout(object):
    """Indentation of the file: mapping step and list style (dash under the key or indented)."""

    def __init__(self, step=2, seq_indented=True):
        self.step = step
        self.seq_indented = seq_indented
        self.has_anchors = False


def render_inline_or_block(value, col, layout, style=None):
    """Render a value that sits after ``key:`` (or ``-``) whose owner starts at column ``col``.

    Returns ``(inline, lines)``: ``inline`` goes on the owner's line (may be ""), ``lines`` are
    complete following lines (may be empty).
    """
    if isinstance(value, dict) and value:
        return "", render_block(value, col + layout.step, layout)
    if isinstance(value, list) and value:
        return "", render_block(value, col + (layout.step if layout.seq_indented else 0), layout)
    if isinstance(value, dict):
        return "{}", []
    if isinstance(value, list):
        return "[]", []
    if isinstance(value, _STR_TYPES) and "\n" in value and style not in ("'", '"') and _literal_ok(value):
        body = value[:-1] if value.endswith("\n") else value
        header = "|" if value.endswith("\n") else "|-"
        pad = " " * (col + layout.step)
        return header, [(pad + line) if line else "" for line in body.split("\n")]
    return render_scalar(value, style=style), []


def render_block(value, col, layout):
    """Block-style lines for a non-empty mapping or list whose entries start at column ``col``."""
    lines = []
    pad = " " * col
    if isinstance(value, dict):
        for key, val in value.items():
            inline, sub = render_inline_or_block(val, col, layout)
            lines.append(pad + render_key(key) + ":" + (" " + inline if inline else ""))
            lines.extend(sub)
        return lines
    for item in value:
        if isinstance(item, (dict, list)) and item:
            sub = render_block(item, col + 2, layout)
            lines.append(pad + "- " + sub[0][col + 2 :])
            lines.extend(sub[1:])
        else:
            inline, sub = render_inline_or_block(item, col, Layout(2, layout.seq_indented))
            lines.append(pad + "-" + (" " + inline if inline else ""))
            lines.extend(sub)
    return lines


# ---------------------------------------------------------------------------
# Parsing with positions
# ---------------------------------------------------------------------------


class _CannotSplice(Exception):
    """A change the splicer does not handle; the caller falls back to a full dump."""


# Bounds that keep a hostile or broken file from costing more than a clear error (issue 14).
DEFAULT_MAX_ALIAS_NODES = 100000
MAX_DEPTH = 200


def _where(mark):
    return "line %d, column %d" % (mark.line + 1, mark.column + 1)


def _compose_and_construct(text, source, max_alias_nodes=DEFAULT_MAX_ALIAS_NODES):
    """Return ``[(node, data), ...]`` for every document of ``text``.

    The node graph is checked (alias expansion, recursion, nesting depth) before any data is
    built from it, so an alias bomb fails in milliseconds. Errors name the line and column,
    never the file's content.
    """
    yaml = YAML(typ="safe", pure=True)
    nodes = []
    try:
        for node in yaml.compose_all(text):
            nodes.append(node)
        _check_graph(nodes, source, max_alias_nodes)
        return [(node, yaml.constructor.construct_document(node)) for node in nodes]
    except YAMLError as exc:
        raise ValuesFileError("%s is not valid YAML: %s" % (source, yaml_error_summary(exc, text)), path=source)
    except RecursionError:
        raise ValuesFileError("%s nests collections too deeply to be read (more than %d levels)." % (source, MAX_DEPTH), path=source)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
        # e.g. unhashable keys, parser corner cases: still "not a values file we can edit"; the text of such
        # exceptions can hold file content, so only its type is named
        raise ValuesFileError("%s could not be read as YAML data (%s)." % (source, type(exc).__name__), path=source)


def _children(node):
    if isinstance(node, MappingNode):
        out = []
        for knode, vnode in node.value:
            out.append(knode)
            out.append(vnode)
        return out
    if isinstance(node, SequenceNode):
        return node.value
    return ()


def _check_graph(roots, source, max_alias_nodes):
    """Refuse recursive aliases, alias expansion beyond ``max_alias_nodes`` nodes and nesting beyond MAX_DEPTH.

    Walks the composed graph once (each node once, iteratively): the expanded size of a node is
    1 + the expanded sizes of its children, so a node reached through N aliases counts N times.
    """
    sizes = {}  # id(node) -> (expanded size, depth)
    active = set()
    own = 0
    expanded = 0
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            key = id(node)
            if done:
                active.discard(key)
                size, depth = 1, 0
                for child in _children(node):
                    child_size, child_depth = sizes[id(child)]
                    size += child_size
                    depth = max(depth, child_depth)
                if depth + 1 > MAX_DEPTH:
                    raise ValuesFileError(
                        "%s nests collections deeper than %d levels (at %s); a values file that deep is not supported."
                        % (source, MAX_DEPTH, _where(node.start_mark)),
                        path=source,
                    )
                sizes[key] = (size, depth + 1)
                continue
            if key in sizes:
                continue
            if key in active:
                raise ValuesFileError(
                    "%s holds a recursive YAML alias (at %s): an alias inside the collection its anchor names." % (source, _where(node.start_mark)),
                    path=source,
                )
            active.add(key)
            own += 1
            stack.append((node, True))
            for child in _children(node):
                if id(child) not in sizes:
                    stack.append((child, False))
        expanded += sizes[id(root)][0]
    if expanded - own > max_alias_nodes:
        raise ValuesFileError(
            "%s uses YAML aliases that expand to %d more nodes than the %d it holds, over the limit of %d (max_alias_nodes); "
            "raise max_alias_nodes if the file is trusted and meant to be that large." % (source, expanded - own, own, max_alias_nodes),
            path=source,
        )


_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def yaml_error_summary(exc, text=None):
    """A parser/constructor error as "what, at line L, column C" with no content of the file.

    ruamel.yaml's messages quote the offending line (a snippet with a caret) and, for duplicate
    keys, the values; only the problem statement (quoted parts dropped, except token names such
    as '<block end>' and single characters) and the positions are kept.
    """
    position = getattr(exc, "position", None)
    if isinstance(position, int) and hasattr(exc, "character"):  # ReaderError: a character YAML does not allow
        where = ""
        if text is not None:
            line = text.count("\n", 0, position) + 1
            where = " at line %d, column %d" % (line, position - (text.rfind("\n", 0, position) + 1) + 1)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
        return "a character YAML does not allow (#x%04x)%s" % (code, where)
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem and "duplicate key" in problem:
        problem = "found a duplicate key"

    def scrub(text):
        text = _QUOTED.sub(lambda m: m.group(0) if m.group(0)[1:2] == "<" or len(m.group(0)) <= 4 else "", text)
        return re.sub(r"\s+", " ", text).strip(" ,")

    parts = []
    mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    if context:
        where = " (started at %s)" % _where(context_mark) if context_mark is not None else ""
        parts.append(scrub(context) + where)
    if problem:
        parts.append(scrub(problem))
    text = ": ".join(p for p in parts if p) or type(exc).__name__
    if mark is not None:
        text += " at %s" % _where(mark)
    return text


def _detect_layout(root):
    steps, seq_styles = {}, {"indented": 0, "flush": 0}
    stack = [root]
    seen = set()
    anchors = False
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.anchor is not None:
            anchors = True
        if isinstance(node, MappingNode):
            for knode, vnode in node.value:
                if isinstance(vnode, MappingNode) and not vnode.flow_style and vnode.value:
                    diff = vnode.value[0][0].start_mark.column - knode.start_mark.column
                    if diff > 0 and vnode.start_mark.line > knode.start_mark.line:
                        steps[diff] = steps.get(diff, 0) + 1
                if isinstance(vnode, SequenceNode) and not vnode.flow_style and vnode.value and vnode.start_mark.line > knode.start_mark.line:
                    seq_styles["indented" if vnode.start_mark.column > knode.start_mark.column else "flush"] += 1
                stack.append(vnode)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    step = max(steps, key=lambda k: (steps[k], -k)) if steps else 2
    layout = Layout(step=step, seq_indented=seq_styles["indented"] >= seq_styles["flush"])
    layout.has_anchors = anchors
    return layout


# ---------------------------------------------------------------------------
# The splicer
# ---------------------------------------------------------------------------


class _Splicer(object):
    def __init__(self, text, layout, nl):
        self.text = text
        self.layout = layout
        self.nl = nl
        self.edits = []  # (start, end, order, replacement)

    # -- text helpers ---------------------------------------------------
    def line_end(self, pos):
        idx = self.text.find("\n", pos)
        if idx < 0:
            return len(self.text)
        if idx > 0 and self.text[idx - 1] == "\r":
            return idx - 1
        return idx

    def line_start(self, pos):
        return self.text.rfind("\n", 0, pos) + 1

    def after_line(self, pos):
        """Index just after the line break that ends the line containing ``pos``."""
        idx = self.text.find("\n", pos)
        return len(self.text) if idx < 0 else idx + 1

    def replace(self, start, end, new):
        self.edits.append((start, end, len(self.edits), new))

    def apply(self):
        out = []
        pos = len(self.text)
        text = self.text
        for start, end, _order, new in sorted(self.edits, key=lambda e: (e[0], e[1], e[2]), reverse=True):
            if end > pos:
                raise _CannotSplice("overlapping edits")
            out.append(text[end:pos])
            out.append(new)
            pos = start
        out.append(text[:pos])
        return "".join(reversed(out))

    def join(self, lines):
        return self.nl.join(lines)

    # -- node helpers ---------------------------------------------------
    def content_end(self, node):
        if isinstance(node, ScalarNode):
            start, end = node.start_mark.index, node.end_mark.index
            return start + len(self.text[start:end].rstrip())
        if node.flow_style:
            return node.end_mark.index
        if not node.value:
            raise _CannotSplice("empty block collection")
        last = node.value[-1]
        if isinstance(node, MappingNode):
            return self.pair_end(*last)
        if isinstance(last, ScalarNode) and last.start_mark.index == last.end_mark.index:
            raise _CannotSplice("empty last list item")
        return self.content_end(last)

    @staticmethod
    def is_alias(knode, vnode):
        return vnode.start_mark.index < knode.end_mark.index

    def after_colon(self, knode):
        text = self.text
        i = knode.end_mark.index
        while i < len(text) and text[i] in " \t":
            i += 1
        if i >= len(text) or text[i] != ":":
            raise _CannotSplice("no ':' after key")
        return i + 1

    def after_dash(self, item):
        text = self.text
        i = item.start_mark.index - 1
        while i >= 0 and text[i] in " \t":
            i -= 1
        if i < 0 or text[i] != "-":
            raise _CannotSplice("sequence item not on its dash line")
        if text[self.line_start(i) : i].strip():
            raise _CannotSplice("dash not first on its line")
        return i + 1

    def trailing_comment(self, start, end):
        """The ``# comment`` inside text[start:end] when that text is blank apart from it."""
        chunk = self.text[start:end].strip()
        return chunk if chunk.startswith("#") else None

    # -- reconcile --------------------------------------------------------
    def reconcile(self, owner, node, old, new, col):
        """Make the text of ``node`` (value of ``owner``) read as ``new``; ``old`` is its current data."""
        if same(old, new):
            return
        if isinstance(node, (MappingNode, SequenceNode)) and node.flow_style:
            if node.value and isinstance(new, (dict, list)) and new:
                # a non-empty flow collection keeps flow style; an empty one ({} / []) becomes a block
                self.replace(node.start_mark.index, node.end_mark.index, render_flow(new))
                return
            self.replace_value(owner, node, new, col)
            return
        if isinstance(node, MappingNode) and isinstance(old, dict) and isinstance(new, dict) and new:
            self.reconcile_mapping(node, old, new, None if owner[0] == "root" else owner, col)
            return
        if isinstance(node, SequenceNode) and isinstance(old, list) and isinstance(new, list) and new:
            if len(new) > len(old) and same(old, new[: len(old)]):
                self.append_items(node, new[len(old) :])
                return
            if len(old) == len(new):
                for item, o, n in zip(node.value, old, new):
                    self.reconcile(("item", item), item, o, n, None)
                return
            if len(new) == len(old) - 1:
                for idx in range(len(old)):
                    if same(old[:idx] + old[idx + 1 :], new):
                        self.delete_item(node.value[idx])
                        return
        self.replace_value(owner, node, new, col)

    def check_pairs(self, node, old):
        if len(node.value) != len(old):
            raise _CannotSplice("merge keys or duplicates")
        prev = node.start_mark.index - 1
        for knode, _vnode in node.value:
            if not isinstance(knode, ScalarNode) or knode.tag == "tag:yaml.org,2002:merge" or knode.start_mark.index <= prev:
                raise _CannotSplice("merge, complex key or out-of-order pair")
            prev = knode.start_mark.index

    def reconcile_mapping(self, node, old, new, owner=None, col=None):
        self.check_pairs(node, old)
        keys = list(old)
        if owner is not None and not any(key in new for key in keys):
            # nothing of the old mapping survives: write the new one in its place
            self.replace_value(owner, node, new, col)
            return
        key_col = node.value[0][0].start_mark.column
        last_kept = None
        for idx, ((knode, vnode), key) in enumerate(zip(node.value, keys)):
            if self.is_alias(knode, vnode) and not same(old[key], new.get(key, _MISSING)):
                raise _CannotSplice("alias")
            if key in new:
                self.reconcile(("key", knode), vnode, old[key], new[key], key_col)
                last_kept = (knode, vnode)
            else:
                self.delete_pair(node, idx)
        added = [(k, v) for k, v in new.items() if k not in old]
        if added:
            if last_kept is None:
                raise _CannotSplice("no kept key to insert after")
            lines = render_block(dict(added), key_col, self.layout)
            self.insert_lines_after(self.pair_end(*last_kept), lines)

    def pair_end(self, knode, vnode):
        if isinstance(vnode, ScalarNode) and vnode.start_mark.index == vnode.end_mark.index:
            return self.after_colon(knode)
        if self.is_alias(knode, vnode):
            raise _CannotSplice("alias")
        return self.content_end(vnode)

    def delete_pair(self, node, idx):
        knode, vnode = node.value[idx]
        text = self.text
        start = self.line_start(knode.start_mark.index)
        prefix = text[start : knode.start_mark.index]
        if vnode.start_mark.index == vnode.end_mark.index:
            end_pos = self.after_colon(knode)
        else:
            end_pos = self.content_end(vnode)
        if prefix.strip():
            # first key of a compact list item ("- name: x"): drop up to the next key
            if prefix.strip() != "-" or idx + 1 >= len(node.value):
                raise _CannotSplice("key not first on its line")
            self.replace(knode.start_mark.index, node.value[idx + 1][0].start_mark.index, "")
            return
        self.replace(start, self.after_line(end_pos), "")

    def append_items(self, node, items):
        dash = self.after_dash(node.value[-1]) - 1
        col = dash - self.line_start(dash)
        lines = render_block(items, col, self.layout)
        self.insert_lines_after(self.content_end(node), lines)

    def insert_lines_after(self, pos, lines):
        """Insert complete lines after the line that holds ``pos`` (at the start of the next line)."""
        end = self.line_end(pos)
        nxt = self.after_line(pos)
        if nxt <= end:  # last line without a line break
            self.replace(end, end, self.nl + self.join(lines))
        else:
            self.replace(nxt, nxt, self.join(lines) + self.nl)

    def delete_item(self, item):
        dash = self.after_dash(item) - 1
        start = self.line_start(dash)
        if isinstance(item, ScalarNode) and item.start_mark.index == item.end_mark.index:
            end_pos = dash + 1
        else:
            end_pos = self.content_end(item)
        self.replace(start, self.after_line(end_pos), "")

    def replace_value(self, owner, node, new, col):
        kind, onode = owner
        if kind == "root":
            raise _CannotSplice("root replacement")
        if kind == "key":
            anchor = self.after_colon(onode)
            owner_line = onode.start_mark.line
        else:
            anchor = self.after_dash(onode)
            col = anchor - 1 - self.line_start(anchor - 1)
            owner_line = self.text.count("\n", 0, anchor)
        old_style = node.style if isinstance(node, ScalarNode) and node.style in ("'", '"') else None
        empty = isinstance(node, ScalarNode) and node.start_mark.index == node.end_mark.index
        layout = self.layout
        if isinstance(node, SequenceNode) and not node.flow_style and kind == "key" and node.start_mark.line > owner_line:
            # keep this list's own dash style (under the key or indented)
            layout = Layout(layout.step, node.start_mark.column > onode.start_mark.column)
        if kind == "item" and isinstance(new, (dict, list)) and new:
            lines = render_block(new, col + 2, self.layout)
            inline, lines = lines[0][col + 2 :], lines[1:]
        else:
            inline, lines = render_inline_or_block(new, col, layout, style=old_style)
        old_block = (not empty) and (node.start_mark.line > owner_line or (isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style))
        value_end = anchor if empty else self.content_end(node)
        if old_block:
            comment = self.trailing_comment(anchor, self.line_end(anchor)) if node.start_mark.line > owner_line else None
            region = (anchor, value_end)
        elif lines:
            region = (anchor, self.line_end(value_end))
            comment = self.trailing_comment(value_end, region[1])
            if comment is None and self.text[value_end : region[1]].strip():
                raise _CannotSplice("text after value")
        else:
            if empty:
                self.replace(anchor, anchor, " " + inline)
            else:
                self.replace(node.start_mark.index, value_end, inline)
            return
        new_text = (" " + inline if inline else "") + (" " + comment if comment else "")
        if lines:
            new_text += self.nl + self.join(lines)
        self.replace(region[0], region[1], new_text)


def _splice_document(text, node, old, new, layout, nl):
    """Return ``(new_text, splicer)``; ``splicer`` is None when the text was appended to an empty document."""
    splicer = _Splicer(text, layout, nl)
    if node is None or (isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null" and node.start_mark.index == node.end_mark.index):
        # empty document (nothing, comments only): append the new content
        if not new:
            return (text if node is not None else (text or "{}" + nl)), None
        block = splicer.join(render_block(new, 0, layout)) + nl
        if text and not text.endswith("\n"):
            block = nl + block
        if node is not None and node.start_mark.index < len(text):
            raise _CannotSplice("empty document in the middle of a stream")
        return text + block, None
    if isinstance(node, MappingNode) and not node.flow_style and new:
        splicer.reconcile(("root", None), node, old, new, 0)
        return splicer.apply(), splicer
    raise _CannotSplice("top level is not a block mapping")


class _Unit(object):
    """A block key/value pair whose lines can be parsed on their own (after removing its indentation)."""

    def __init__(self, parent, key, start, end, col):
        self.parent = parent  # path (tuple of keys) of the mapping that holds the pair
        self.key = key
        self.start = start
        self.end = end
        self.col = col
        self.splices = []
        self.parsed = None


def _find_unit(splicer, node, old, edit, col, parent=()):
    """The innermost block pair of mapping ``node`` that contains ``edit``.

    ``col`` is the indentation of inserted lines (None for replacements): inserted lines
    belong to a pair that is less indented than they are.
    """
    if len(node.value) != len(old):
        return None
    for (knode, vnode), key in zip(node.value, old):
        if knode.start_mark.index > edit[1]:
            return None
        start = splicer.line_start(knode.start_mark.index)
        end = splicer.after_line(splicer.pair_end(knode, vnode))
        if not (start <= edit[0] and edit[1] <= end):
            continue
        if splicer.text[start : knode.start_mark.index].strip() or (col is not None and knode.start_mark.column >= col):
            return None
        child = old[key]
        if isinstance(vnode, MappingNode) and not vnode.flow_style and isinstance(child, dict) and vnode.value:
            deeper = _find_unit(splicer, vnode, child, edit, col, parent + (key,))
            if deeper is not None:
                return deeper
        return _Unit(parent, key, start, end, knode.start_mark.column)
    return None


def _verify_local(text, result, node, old, new, splicer, source, max_alias_nodes=DEFAULT_MAX_ALIAS_NODES):
    """Check the splice by re-parsing only the innermost block pairs that contain the splices.

    Valid because the text outside those pairs is byte-identical and a block pair reads the
    same on its own once its indentation is removed (no anchors, aliases or directives, which
    are checked here). Returns True/False, or None when the layout does not allow a local check.
    """
    if splicer is None or splicer.layout.has_anchors or re.search(r"^%", text, re.M) or not isinstance(node, MappingNode):
        return None
    edits = sorted(splicer.edits, key=lambda e: (e[0], e[1], e[2]))
    nl = splicer.nl
    units = {}
    try:
        for edit in edits:
            col = None
            if edit[0] == edit[1] and (edit[0] == 0 or text[edit[0] - 1] == "\n" or edit[3].startswith(nl)):
                # complete new lines: they belong to the innermost pair less indented than they are
                body = edit[3][len(nl) :] if edit[3].startswith(nl) else edit[3]
                first = body.split(nl)[0]
                col = len(first) - len(first.lstrip(" "))
            unit = _find_unit(splicer, node, old, edit, col)
            if unit is None:
                if col != 0:
                    return None
                unit = _Unit((), _MISSING, edit[0], edit[1], 0)  # new top-level keys read on their own
            unit = units.setdefault((unit.start, unit.end, unit.key is _MISSING), unit)
            unit.splices.append(edit)
    except _CannotSplice:
        return None
    # a unit inside another touched unit is checked as part of the outer one
    ordered = sorted(units.values(), key=lambda u: (u.start, -u.end))
    touched = []
    for unit in ordered:
        outer = touched[-1] if touched else None
        if outer is not None and outer.key is not _MISSING and outer.start <= unit.start and unit.end <= outer.end and unit.key is not _MISSING:
            outer.splices.extend(unit.splices)
        else:
            touched.append(unit)

    def new_span(unit):
        own_at_start = [e for e in unit.splices if e[0] == unit.start]
        first_key = min(own_at_start) if own_at_start else None
        delta_before = 0
        for e in edits:
            if e in unit.splices:
                continue
            if unit.start < e[0] < unit.end or unit.start < e[1] < unit.end:
                raise _CannotSplice("foreign edit inside a unit")
            if e[1] <= unit.start and (first_key is None or e[0] < unit.start or e < first_key):
                delta_before += len(e[3]) - (e[1] - e[0])
        inside = sum(len(e[3]) - (e[1] - e[0]) for e in unit.splices)
        start = unit.start + delta_before
        return start, start + (unit.end - unit.start) + inside

    rebuilt = dict(old)
    copies = {(): rebuilt}

    def target_of(path):
        if path not in copies:
            holder = target_of(path[:-1])
            copies[path] = holder[path[-1]] = dict(holder[path[-1]])
        return copies[path]

    for unit in touched:
        try:
            start, end = new_span(unit)
        except _CannotSplice:
            return None
        chunk = result[start:end]
        if unit.col:
            chunk = "\n".join(line[min(unit.col, len(line) - len(line.lstrip(" "))) :] for line in chunk.split("\n"))
        try:
            docs = _compose_and_construct(chunk, source, max_alias_nodes)
        except ValuesFileError:
            return False
        if len(docs) > 1:
            return False
        parsed = (docs[0][1] if docs else None) or {}
        if not isinstance(parsed, dict):
            return False
        unit.parsed = parsed
        if unit.key is not _MISSING:
            target_of(unit.parent).pop(unit.key, None)
    for unit in touched:
        target = target_of(unit.parent)
        for key, value in unit.parsed.items():
            if key in target:
                return False  # would be a duplicate key in the whole file
            target[key] = value
    return same(rebuilt, new)


def _dump_document(text, index, operations, create, layout, source):
    """Fallback: full ruamel.yaml round-trip of the whole stream with the edits applied."""
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.default_flow_style = False
    if layout.seq_indented:
        yaml.indent(mapping=layout.step, sequence=layout.step + 2, offset=layout.step)
    else:
        yaml.indent(mapping=layout.step, sequence=layout.step, offset=0)
    try:
        docs = list(yaml.load_all(text))
    except YAMLError as exc:  # pragma: no cover - already parsed once
        raise ValuesFileError("%s is not valid YAML: %s" % (source, yaml_error_summary(exc)), path=source)
    if not docs:
        docs = [None]
    if docs[index] is None:
        from ruamel.yaml.comments import CommentedMap

        docs[index] = CommentedMap()
    for op in operations:
        if op[0] == "unset":
            apply_unset(docs[index], op[1], op[2])
        else:
            apply_set(docs[index], op[1], copy.deepcopy(op[3]), create, op[2])
    stream = io.StringIO()
    if len(docs) == 1:
        yaml.dump(docs[0], stream)
    else:
        yaml.explicit_start = text.lstrip().startswith("---")
        yaml.dump_all(docs, stream)
    return stream.getvalue()


class EditResult(object):
    def __init__(self, text, changes, rendering):
        self.text = text
        self.changes = changes
        self.rendering = rendering


def normalize_set(set_option):
    """``set`` option -> list of (components, display path, value).

    Accepts a mapping ``{dotted.path: value}`` or a list of ``{path: <str or list>, value: <any>}``.
    """
    if set_option is None:
        return []
    items = []
    if isinstance(set_option, dict):
        for key, value in set_option.items():
            comps = parse_path(key)
            items.append((comps, str(key), to_plain(value, "set[%r]" % (key,))))
        return items
    if isinstance(set_option, (list, tuple)):
        for idx, entry in enumerate(set_option):
            if not isinstance(entry, dict) or "path" not in entry or "value" not in entry or set(entry) - {"path", "value"}:
                got = "keys %s" % ", ".join(sorted(repr(str(k)) for k in entry)) if isinstance(entry, dict) else "a %s" % type_name(entry)
                raise InputError("set[%d] must be a mapping with exactly the keys 'path' and 'value'; got %s." % (idx, got))
            comps = parse_path(entry["path"])
            display = format_path(comps) if isinstance(entry["path"], (list, tuple)) else str(entry["path"])
            items.append((comps, display, to_plain(entry["value"], "set[%d]" % idx)))
        return items
    raise InputError("set must be a mapping of paths to values or a list of {path, value} items; got %s." % type(set_option).__name__)


def normalize_unset(unset_option):
    items = []
    for entry in unset_option or []:
        comps = parse_path(entry)
        items.append((comps, format_path(comps) if isinstance(entry, (list, tuple)) else str(entry)))
    return items


def edit_values(text, sets=None, unsets=None, create=True, document=None, source="values file", max_alias_nodes=DEFAULT_MAX_ALIAS_NODES):
    """Apply ``unsets`` then ``sets`` to YAML ``text``; returns an :class:`EditResult`.

    ``text`` None means a new file (written as ``{}`` when nothing is set).

    ``sets``: list of (components, display, value); ``unsets``: list of (components, display).
    Raises InputError / ValuesFileError; the caller's file is never touched here.
    """
    if not HAS_RUAMEL:  # pragma: no cover
        raise ValuesFileError("ruamel.yaml is required to edit values files", path=source)
    new_file = text is None
    text = text or ""
    sets = sets or []
    unsets = unsets or []
    bom = ""
    if text.startswith("\ufeff"):
        bom, text = "\ufeff", text[1:]
    nl = "\r\n" if "\r\n" in text else "\n"
    docs = _compose_and_construct(text, source, max_alias_nodes)
    if len(docs) > 1 and document is None:
        raise ValuesFileError(
            "%s holds %d YAML documents; set document to the index of the one to edit (0 is the first)." % (source, len(docs)),
            path=source,
        )
    index = document or 0
    if docs and not -len(docs) <= index < len(docs) or (not docs and index not in (0, -1)):
        raise ValuesFileError("%s holds %d YAML document(s); document index %d does not exist." % (source, len(docs), index), path=source)
    if docs:
        index %= len(docs)
    node, old = docs[index] if docs else (None, None)
    if old is None:
        old = {}
    if not isinstance(old, dict):
        raise ValuesFileError(
            "The top level of %s is a %s, not a mapping; Helm values files are mappings." % (source, type_name(old)),
            path=source,
        )
    new = _fresh_copy(old)  # no shared (aliased) objects: an edit changes one place only
    changes = []
    operations = []
    for comps, display in unsets:
        before = apply_unset(new, comps, display)
        operations.append(("unset", comps, display))
        if before is not _MISSING:
            changes.append({"path": display, "action": "delete", "before": _reportable(before), "after": None})
    for comps, display, value in sets:
        before = apply_set(new, comps, copy.deepcopy(value), create, display)
        operations.append(("set", comps, display, value))
        if before is _MISSING:
            changes.append({"path": display, "action": "create", "before": None, "after": _reportable(value)})
        elif not same(before, value):
            change = {"path": display, "action": "update", "before": _reportable(before), "after": _reportable(value)}
            if type_name(before) != type_name(value):
                change["before_type"] = type_name(before)
                change["after_type"] = type_name(value)
            changes.append(change)
    if same(old, new) and not new_file:
        return EditResult(bom + text, [], "none")

    expected = [d for _n, d in docs] or [None]
    expected[index] = new
    layout = _detect_layout(node) if node is not None else Layout()
    result, rendering = None, "splice"
    try:
        result, splicer = _splice_document(text, node, old, new, layout, nl)
        verified = _verify_local(text, result, node, old, new, splicer, source, max_alias_nodes) if len(expected) == 1 else None
        if verified is None:
            verified = _reads_as(result, expected, source, max_alias_nodes)
        if not verified:
            result = None
    except _CannotSplice:
        result = None
    if result is None:
        rendering = "dump"
        try:
            result = _dump_document(text, index, operations, create, layout, source)
        except (InputError, ValuesFileError):
            raise
        except Exception:  # ruamel.yaml's round-trip types have corner cases (merge keys, aliases)
            result = None
        if result is None or not _reads_as(result, expected, source, max_alias_nodes):
            raise ValuesFileError(
                "Could not write %s so that it reads back as intended (YAML anchors/aliases or merge keys on the edited paths "
                "are not supported); nothing was changed." % source,
                path=source,
            )
    return EditResult(bom + result, changes, rendering)


def _reads_as(text, expected, source, max_alias_nodes=DEFAULT_MAX_ALIAS_NODES):
    try:
        docs = [d for _n, d in _compose_and_construct(text, source, max_alias_nodes)] or [None]
    except ValuesFileError:
        return False
    if len(docs) != len(expected):
        return False
    for got, want in zip(docs, expected):
        if want == {} and got is None:
            continue
        if not same(got, want):
            return False
    return True

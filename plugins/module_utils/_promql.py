# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure PromQL building and Prometheus answer parsing for Istio's standard metrics.

No I/O and no Ansible imports: the queries are strings, the answers are decoded JSON.

This is a private module_utils file: it may change at any time.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import math
import re

REQUESTS = "istio_requests_total"
TCP_OPENED = "istio_tcp_connections_opened_total"

# Istio's standard labels of istio_requests_total that the checks and the graph group by.
REQUEST_LABELS = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_app",
    "source_version",
    "destination_workload",
    "destination_workload_namespace",
    "destination_app",
    "destination_version",
    "destination_service_name",
    "destination_service_namespace",
    "request_protocol",
    "response_code",
    "connection_security_policy",
)
TCP_LABELS = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_app",
    "source_version",
    "destination_workload",
    "destination_workload_namespace",
    "destination_app",
    "destination_version",
    "destination_service_name",
    "destination_service_namespace",
    "connection_security_policy",
)
# Labels every istio_requests_total series must carry (Istio's standard metric definition).
REQUIRED_REQUEST_LABELS = ("reporter", "source_workload", "destination_service_name", "request_protocol", "response_code")

_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_SECONDS = dict(ms=0.001, s=1, m=60, h=3600, d=86400, w=604800, y=31536000)
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def valid_duration(text: str) -> bool:
    """True for a Prometheus duration such as ``5m``, ``1h30m`` or ``90s``."""
    return bool(text) and bool(_DURATION.match(str(text)))


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration (``1h30m`` -> 5400)."""
    if not valid_duration(text):
        raise ValueError("%r is not a Prometheus duration (for example 5m, 1h, 90s)" % (text,))
    return sum(int(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(str(text)))


def valid_namespace(name: str) -> bool:
    return bool(name) and len(name) <= 63 and bool(_NAME.match(name))


def escape(value: str) -> str:
    """A string usable inside a double-quoted PromQL label value."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def namespace_regex(namespaces) -> str:
    """``ns1|ns2`` (regex-quoted, sorted, de-duplicated) for a ``=~`` matcher."""
    return "|".join(re.escape(n) for n in sorted(set(namespaces)))


def selector(**matchers) -> str:
    """``{a="x",b=~"y"}`` from keyword arguments; a value given as ("=~", text) uses that operator.

    Matchers are sorted by label name so a query is the same string every time.
    """
    parts = []
    for label in sorted(matchers):
        value = matchers[label]
        if value is None:
            continue
        op = "="
        if isinstance(value, tuple):
            op, value = value
        parts.append('%s%s"%s"' % (label, op, escape(value)))
    return "{%s}" % ",".join(parts)


def _in_window(function: str, series: str, window: str) -> str:
    """The per-series expression of ``function`` over ``window``.

    ``observed`` counts what a counter gained in the window *including series born inside it*:
    Istio creates a series on the first request a sidecar sees, so a burst of traffic shorter
    than a scrape interval makes a series whose first sample already holds its count, and
    ``increase()`` (which extrapolates between samples in the window) answers 0 for it. The
    gain is ``max_over_time(c[w]) - c offset w`` for a series that existed at the start of the
    window, and ``max_over_time(c[w])`` for one that did not (``or`` keeps the first form where
    both exist). Counter resets inside the window are not corrected (rare for sidecars).
    ``observed_rate`` is the same divided by the window's seconds.
    """
    if function in ("increase", "rate"):
        return "%s(%s[%s])" % (function, series, window)
    gained = "((max_over_time(%s[%s]) - (%s offset %s)) or max_over_time(%s[%s]))" % (series, window, series, window, series, window)
    if function == "observed":
        return gained
    return "(%s / %s)" % (gained, _format_seconds(duration_seconds(window)))


def _format_seconds(value: float) -> str:
    return ("%d" % value) if value == int(value) else repr(value)


def grouped_increase(metric: str, labels, window: str, namespaces=None, reporter=None, function: str = "observed") -> str:
    """ONE query for ``metric``: ``sum by (labels) (<function> of metric{...} over window)``.

    ``function`` is ``observed`` (requests in the window, new series included; the default),
    ``observed_rate`` (the same per second), or Prometheus' own ``increase`` / ``rate``.
    With ``namespaces`` the series whose destination OR source workload lives in one of them
    are kept (two selectors joined with ``or``: the label sets are identical, so nothing is
    counted twice).
    """
    if not valid_duration(window):
        raise ValueError("window %r is not a Prometheus duration" % (window,))
    if function not in ("observed", "observed_rate", "increase", "rate"):
        raise ValueError("function must be observed, observed_rate, increase or rate")
    by = ", ".join(labels)
    if not namespaces:
        return "sum by (%s) (%s)" % (by, _in_window(function, metric + selector(reporter=reporter), window))
    regex = ("=~", namespace_regex(namespaces))
    parts = []
    for side in ("destination_workload_namespace", "source_workload_namespace"):
        matchers = {side: regex, "reporter": reporter}
        parts.append("sum by (%s) (%s)" % (by, _in_window(function, metric + selector(**matchers), window)))
    return " or ".join(parts)


def vector(data) -> list:
    """[(labels dict, float value)] from a decoded ``/api/v1/query`` answer of result type vector.

    Raises ValueError (with Prometheus' own error text) when the answer is an error or not a vector.
    """
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    if data.get("status") != "success":
        raise ValueError("%s: %s" % (data.get("errorType") or "error", data.get("error") or "no error text"))
    body = data.get("data") or {}
    if body.get("resultType") != "vector":
        raise ValueError("expected a vector, got %s" % body.get("resultType"))
    out = []
    for sample in body.get("result") or []:
        metric = dict(sample.get("metric") or {})
        try:
            value = float((sample.get("value") or [0, "0"])[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isnan(value):  # a rate over a window without two samples
            continue
        out.append((metric, value))
    out.sort(key=lambda s: sorted(s[0].items()))
    return out

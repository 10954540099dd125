"""kubesim: what the pods of Istio's bookinfo sample do when called (no container runs).

The app is recognised by the image the pod runs (``examples-bookinfo-<app>-v<n>``) and behaves
as that image does on its port 9080:

* productpage: ``/productpage`` (and ``/api/v1/products/<id>``...) calls ``details:9080/details/0``
  and ``reviews:9080/reviews/0``, forwarding the ``end-user`` header (bookinfo sets it for a
  logged-in user) and the tracing context; the page shows what they answered;
* details: a JSON book description;
* reviews: v1 answers without ratings; v2 (black stars) and v3 (red stars) call
  ``ratings:9080/ratings/0`` first;
* ratings: a JSON of ratings.

Every downstream call goes through the simulated mesh (:func:`kubesim.behaviour.telemetry.call`),
so VirtualServices, DestinationRules, sidecar metrics and spans apply.  Pods running other images
get the generic answer of :func:`kubesim.behaviour.ingress.generic`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .runtime import Runtime, meta

APPS = ("productpage", "details", "reviews", "ratings")
_IMAGE = re.compile(r"examples-bookinfo-(productpage|details|reviews|ratings)-(v\d+)")
PASS_HEADERS = ("end-user", "user-agent", "cookie", "x-request-id", "traceparent", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled")
SIMULATED = {"x-kubesim-simulated": "true"}

# the top of every simulated productpage (this file's, and the ingress fallback's in ingress.py)
PAGE_HEAD = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Simple Bookstore App</title>
</head>
<body>
<h1>The Comedy of Errors</h1>
"""

PAGE = PAGE_HEAD + """<p>Bookinfo product page, served by the kubesim simulator (no real application runs here).</p>
<p id="details">details: {details}</p>
<p id="reviews">reviews: {reviews}</p>
</body>
</html>
"""


def app_of(pod: dict[str, Any]) -> tuple[str, str] | None:
    """(app, version) of a pod running one of bookinfo's images, or None."""
    for c in (pod.get("spec") or {}).get("containers") or []:
        m = _IMAGE.search(c.get("image") or "")
        if m:
            return m.group(1), m.group(2)
    return None


def _json(code: int, obj: Any) -> tuple[int, dict[str, str], bytes]:
    return code, {"content-type": "application/json", **SIMULATED}, json.dumps(obj).encode()


def serve(rt: Runtime, pod: dict[str, Any], port: int, method: str, path: str, headers: dict[str, str],
          trace: Any = None, parent: str | None = None) -> tuple[int, dict[str, str], bytes] | None:
    """The answer of the app in ``pod`` to one request that reached it on ``port``; None when it runs no bookinfo image."""
    from . import telemetry   # the mesh data path (imports this module too)

    found = app_of(pod)
    bare = path.split("?", 1)[0]
    if found is None:
        return None
    if port != 9080:
        return 404, {"content-type": "text/plain", **SIMULATED}, \
            f"kubesim: {meta(pod).get('name')} has no simulated application on port {port}\n".encode()
    app, version = found
    fwd = {k: v for k, v in headers.items() if k in PASS_HEADERS}
    ns = meta(pod).get("namespace") or ""

    def downstream(svc: str, sub: str) -> tuple[int, Any]:
        code, _h, body = telemetry.call(rt, pod, svc, 9080, "GET", sub, fwd, trace, parent, src_ns=ns)
        try:
            return code, json.loads(body) if code == 200 else None
        except ValueError:
            return code, None

    if app == "productpage":
        if bare in ("/health", "/healthz"):
            return _json(200, {"status": "Product page is healthy"})
        if bare == "/" or bare.startswith(("/static", "/login", "/logout")):
            return 200, {"content-type": "text/html; charset=utf-8", **SIMULATED}, b"<html><body>bookinfo (kubesim simulation)</body></html>"
        if bare not in ("/productpage",) and not bare.startswith("/api/v1/products"):
            return 404, {"content-type": "text/plain", **SIMULATED}, b"Not Found"
        dcode, details = downstream("details", "/details/0")
        rcode, reviews = downstream("reviews", "/reviews/0")
        if bare.startswith("/api/v1/products"):
            return _json(200, {"id": 0, "details": details, "reviews": reviews})
        dtext = json.dumps(details) if details else f"Sorry, product details are currently unavailable (HTTP {dcode})"
        rtext = json.dumps(reviews) if reviews else f"Sorry, product reviews are currently unavailable (HTTP {rcode})"
        return 200, {"content-type": "text/html; charset=utf-8", **SIMULATED}, PAGE.format(details=dtext, reviews=rtext).encode()
    if app == "details":
        return _json(200, {"id": 0, "author": "William Shakespeare", "year": 1595, "type": "paperback", "pages": 200,
                           "publisher": "PublisherA", "language": "English", "ISBN-10": "1234567890", "ISBN-13": "123-1234567890",
                           "served_by": f"details-{version} (kubesim simulation)"})
    if app == "ratings":
        return _json(200, {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}, "served_by": f"ratings-{version} (kubesim simulation)"})
    # reviews
    reviews: list[dict[str, Any]] = [{"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare."},
                                     {"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining."}]
    if version in ("v2", "v3"):
        code, ratings = downstream("ratings", "/ratings/0")
        color = "black" if version == "v2" else "red"
        for r in reviews:
            if ratings:
                r["rating"] = {"stars": (ratings.get("ratings") or {}).get(r["reviewer"], 0), "color": color}
            else:
                r["rating"] = {"error": f"Ratings service is currently unavailable (HTTP {code})"}
    return _json(200, {"id": "0", "podname": meta(pod).get("name"), "clustername": "null", "reviews": reviews,
                       "served_by": f"reviews-{version} (kubesim simulation)"})

# -*- coding: utf-8 -*-
# Copyright (c) okemesh.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send N GET requests to a URL with C workers and print a JSON summary (bookinfo traffic generator).

Run by the bookinfo role on the controller (standard library only):
    loadgen.py http://<gateway>/productpage 100 4
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import sys
import threading
import time
from urllib.error import HTTPError, URLError
from urllib.request import urlopen


def main(argv):
    url, total, workers = argv[1], int(argv[2]), max(1, int(argv[3]))
    if not url.startswith(("http://", "https://")):
        print(json.dumps({"url": url, "error": "only http(s) URLs"}))
        return 2
    counts = {}
    lock = threading.Lock()
    remaining = [total]

    def worker():
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            try:
                with urlopen(url, timeout=10) as resp:  # noqa: S310 - scheme checked in main()
                    resp.read()
                    code = str(resp.status)
            except HTTPError as exc:
                code = str(exc.code)
            except (URLError, OSError) as exc:
                code = "error: %s" % getattr(exc, "reason", exc)
            with lock:
                counts[code] = counts.get(code, 0) + 1

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _worker in range(min(workers, total))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    ok = counts.get("200", 0)
    print(json.dumps({"url": url, "requests": total, "ok": ok, "status_counts": counts, "seconds": round(elapsed, 3)}))
    # Fail when no request at all succeeded: the gateway route is broken, not just flaky.
    return 0 if total == 0 or ok > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

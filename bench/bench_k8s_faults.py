"""How long okemesh.istio.injection_check takes, and how often it retries, when the API misbehaves.

The module runs as a process (``python -m ...injection_check args.json``, as Ansible runs it)
against ScriptedAPI (tests/unit/plugins/module_utils/k8s_stub.py), a stub on a real socket that
never answers, answers 429 with Retry-After, answers 5xx, or resets connections.  Printed per
profile: wall time, the requests the stub saw, ``api_retries`` and the message.  The "healthy
API" run is the start-up cost (interpreter, Ansible and kubernetes imports, 7 quick LISTs):
subtract it to see the time spent on the faults; "bad option" fails before the kubernetes
import.

Numbers only: it asserts nothing.  Before the retry rework, "never answers, wait=2" took about
123 s (16 requests: urllib3's 3 retries of 30 s reads, nested); run it against another
checkout's collection with ``--collections PATH`` to compare.

    .venv/bin/python bench/bench_k8s_faults.py [--collections .collections]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.k8s_stub import ScriptedAPI

REPO = Path(__file__).resolve().parents[1]

MODULE = "ansible_collections.okemesh.istio.plugins.modules.injection_check"
PROFILES = [
    ("bad option", None, {"wait": -1}),
    ("healthy API", None, {"fail_on": "never"}),
    ("never answers, wait=2", ("default", ("hang",)), {"wait": 2}),
    ("never answers, wait=0 (30 s bound)", ("default", ("hang",)), {}),
    ("constant 429 Retry-After 1, wait=2", ("default", ("status", 429, 1)), {"wait": 2}),
    ("constant 429 Retry-After 1, wait=0", ("default", ("status", 429, 1)), {}),
    ("constant 503, wait=5", ("default", ("status", 503, None)), {"wait": 5}),
    ("500 x3, then healthy", ("script", [("status", 500, None)] * 3), {"fail_on": "never"}),
    ("reset x2, then healthy", ("script", [("reset",)] * 2), {"fail_on": "never"}),
]


def run(collections: Path, api: ScriptedAPI, args: dict) -> tuple[float, dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"ANSIBLE_MODULE_ARGS": dict({"host": api.url, "api_key": "bench-token-0000"}, **args)}, f)
    env = dict(os.environ, PYTHONPATH=str(collections))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", MODULE, f.name], capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    os.unlink(f.name)
    return elapsed, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--collections", type=Path, default=REPO / ".collections",
                        help="directory holding ansible_collections/okemesh/istio (default: this checkout's)")
    opts = parser.parse_args()
    print("%-38s %8s %9s %12s  %s" % ("profile", "seconds", "requests", "api_retries", "result"))
    for name, setup, args in PROFILES:
        api = ScriptedAPI()
        if setup:
            setattr(api, setup[0], setup[1])
        try:
            elapsed, out = run(opts.collections, api, args)
        finally:
            api.close()
        retries = out.get("api_retries", (out.get("stats") or {}).get("api_retries", "-"))
        result = out.get("msg") or "ok (%s)" % ", ".join("%s %s" % kv for kv in sorted((out.get("summary") or {}).get("by_status", {}).items()))
        print("%-38s %8.2f %9d %12s  %s" % (name, elapsed, len(api.requests), retries, result[:120]))


if __name__ == "__main__":
    main()

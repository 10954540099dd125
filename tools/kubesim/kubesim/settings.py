"""Run-time knobs of kubesim, the Kubernetes API simulator used by this project's tests.

Shared contract between the API half (server, store) and the cluster-behaviour half
(controllers, injection, load balancers, faults).  Every knob can be set at start
(command-line flag ``--set name=value``, or the dedicated flags in ``__main__``) and at run
time through the simulator's admin endpoint ``/kubesim/v1/settings`` (GET returns the JSON,
PATCH merges a JSON object; same bearer token as the API).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from typing import Any


@dataclasses.dataclass
class Settings:
    # --- cluster shape -------------------------------------------------------------------
    kubernetes_version: str = "v1.33.2"        # what /version reports (gitVersion)
    nodes: int = 3                             # simulated nodes (DaemonSets, node objects)
    # --- workload behaviour --------------------------------------------------------------
    pod_ready_delay: float = 0.2               # seconds Pending -> Running/Ready
    sidecar_mode: str = "native"               # "native" (init container, restartPolicy Always) or "classic"
    never_ready_selector: str = ""             # label selector: matching pods never get Ready (CrashLoopBackOff)
    image_pull_fail_pattern: str = ""          # substring: containers with a matching image stay ImagePullBackOff
    container_run_time_max: float = 300.0      # seconds at most a run-to-completion container runs (its `sleep N`)
    # --- load balancers (emulates the OCI cloud controller manager) ----------------------
    lb_delay: float = 0.5                      # seconds until status.loadBalancer.ingress[0].ip is set
    lb_assign: bool = True                     # False: never assign (tests bounded waits)
    lb_serve: bool = True                      # serve the Istio ingress data path on the assigned IP
    # --- API faults (reliability tests) ---------------------------------------------------
    fault_error_rate: float = 0.0              # fraction of API requests answered with fault_error_code
    fault_error_code: int = 500                # 500 or 429 (429 carries Retry-After: fault_retry_after)
    fault_retry_after: int = 1
    fault_paths: str = ""                      # substring a request path must contain to be faulted ("" = any)
    fault_latency: float = 0.0                 # seconds added to every API request
    fault_watch_drop_after: float = 0.0        # >0: watch streams are cut after this many seconds
    # --- telemetry (behaviour/telemetry.py, behaviour/addons.py) -----------------------------
    prometheus_binary: str = "prometheus"      # the real Prometheus started behind the prometheus add-on ("" = never start one)
    scrape_interval: str = "1s"                # scrape/evaluation interval written into the derived Prometheus config
    trace_sampling_default: float = 100.0      # % of requests traced when neither a Telemetry resource nor meshConfig says (demo profile: 100)
    # --- API internals (added by the API half) ---------------------------------------------
    watch_history: int = 20000                 # watch events kept for "watch from resourceVersion" (older -> 410 Expired); read at start

    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply a partial update; raises ValueError naming an unknown knob or a bad type."""
        known = {f.name: f for f in dataclasses.fields(self) if not f.name.startswith("_")}
        coerced: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown kubesim setting {name!r}; known: {', '.join(sorted(known))}")
            current = getattr(self, name)
            try:
                if isinstance(current, bool):
                    if isinstance(value, str):
                        value = value.strip().lower() in ("1", "true", "yes", "on")
                    coerced[name] = bool(value)
                else:
                    coerced[name] = type(current)(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"kubesim setting {name!r}: {value!r} is not a {type(current).__name__}") from exc
        if "scrape_interval" in coerced and not re.fullmatch(r"([0-9]+(ms|s|m|h))+", coerced["scrape_interval"]):
            raise ValueError("kubesim setting 'scrape_interval' must be a Prometheus duration such as 1s or 500ms")
        if "sidecar_mode" in coerced and coerced["sidecar_mode"] not in ("native", "classic"):
            raise ValueError("kubesim setting 'sidecar_mode' must be 'native' or 'classic'")
        with self._lock:
            for name, value in coerced.items():
                setattr(self, name, value)
        return self.as_dict()

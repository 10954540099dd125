"""Read a kubesim simulator's state back in playbook-level tests (the API through its handle, helm's
per-simulator directories)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from kubesim.testing import BIN


def helm_env(sim: Any) -> dict[str, str]:
    """Per-simulator helm directories; no KUBECONFIG: the roles must use okemesh_kubeconfig."""
    base = Path(sim.kubeconfig).parent
    return {"HELM_CACHE_HOME": str(base / "helm-cache"), "HELM_CONFIG_HOME": str(base / "helm-config"),
            "HELM_DATA_HOME": str(base / "helm-data")}


def get(sim: Any, path: str) -> dict:
    """GET an API path of the simulator; anything but 200 fails the test with the Status body."""
    status, body = sim.request("GET", path)
    assert status == 200, f"GET {path}: HTTP {status}: {body}"
    return body


def kubectl_rc_json(sim: Any, *args: str) -> tuple[int, Any]:
    """kubectl ... -o json that may fail: (0, object) or (rc, stderr)."""
    proc = subprocess.run([str(BIN / "kubectl"), "--kubeconfig", sim.kubeconfig, *args, "-o", "json"],
                          capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, (json.loads(proc.stdout) if proc.returncode == 0 else proc.stderr)

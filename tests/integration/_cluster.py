"""Small helpers shared by the playbook tests that read kubesim's state back."""

from __future__ import annotations

from pathlib import Path


def helm_env(sim) -> dict[str, str]:
    """Per-simulator helm directories; no KUBECONFIG: the roles must use okemesh_kubeconfig."""
    base = Path(sim.kubeconfig).parent
    return {"HELM_CACHE_HOME": str(base / "helm-cache"), "HELM_CONFIG_HOME": str(base / "helm-config"),
            "HELM_DATA_HOME": str(base / "helm-data")}


def get(sim, path: str) -> dict:
    """GET an API path of the simulator; anything but 200 fails the test with the Status body."""
    status, body = sim.request("GET", path)
    assert status == 200, f"GET {path}: HTTP {status}: {body}"
    return body

"""pytest plumbing for kubesim: the ``kubesim`` and ``kubesim_bare`` fixtures (a fresh simulator per
test) and the ``kubesim`` marker.  Register it with ``pytest_plugins = ["kubesim.pytest_plugin"]``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .launcher import KubesimHandle, start

__all__ = ["KubesimHandle", "kubesim", "kubesim_bare", "start"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kubesim(behaviour=True, **knobs): start the kubesim fixture with these settings (knobs of kubesim/settings.py); "
        "behaviour=False runs the API alone, without kubesim/behaviour",
    )


@pytest.fixture
def kubesim(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh simulator for this test (API + cluster behaviour unless marked ``@pytest.mark.kubesim(behaviour=False)``)."""
    marker = request.node.get_closest_marker("kubesim")
    options = dict(marker.kwargs) if marker else {}
    handle = start(tmp_path / "kubesim", **options)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def kubesim_bare(tmp_path: Path):
    """A fresh simulator serving the API only (no controllers: pods stay Pending, no LB IPs)."""
    handle = start(tmp_path / "kubesim-bare", behaviour=False)
    try:
        yield handle
    finally:
        handle.stop()

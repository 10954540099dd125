"""Fixtures every test can use (registered once in tests/conftest.py)."""

from __future__ import annotations

import pytest

from .playbook import run_playbook


@pytest.fixture
def playbook():
    """The run_playbook function, as a fixture."""
    return run_playbook

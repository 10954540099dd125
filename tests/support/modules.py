"""Run a module's main() in-process, as ansible-core's own unit tests do (patch_module_args)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from ansible.module_utils import _internal
from ansible.module_utils.testing import patch_module_args


@contextlib.contextmanager
def on_target() -> Iterator[None]:
    """Run as a module runs on a managed host. Importing controller code (a filter plugin's test, say)
    marks the whole process as the controller, and module warnings then go to the display instead
    of the result."""
    saved = _internal.is_controller
    _internal.is_controller = False
    try:
        yield
    finally:
        _internal.is_controller = saved


def run_module(module: ModuleType, capsys: Any, args: dict) -> dict:
    """The module's result as exit_json/fail_json printed it (``failed`` is set on failure)."""
    with on_target(), patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)
